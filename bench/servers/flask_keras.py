"""The baseline: a Flask app around Keras ``model.predict``, the way seed examples serve models.

Usage: python flask_keras.py MODEL.keras PORT
"""

import sys

import numpy as np
import tensorflow as tf
from flask import Flask, jsonify, request

model = tf.keras.models.load_model(sys.argv[1])
app = Flask(__name__)


@app.route("/v1/models/digits:predict", methods=["POST"])
def predict():
    instances = np.array(request.get_json()["instances"], dtype=np.float32) / 16.0
    probabilities = model.predict(instances.reshape(-1, 8, 8, 1), verbose=0)
    return jsonify(
        {
            "predictions": [
                {"class": int(p.argmax()), "probabilities": p.tolist()} for p in probabilities
            ]
        }
    )


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[2]), threaded=True)
