"""The digits network: a small CNN in the spirit of the classic Keras MNIST example.

Loaded by the train stage from this folder; ``keras`` is passed in so that importing this file
never imports TensorFlow by itself.
"""

from __future__ import annotations

from typing import Any


def build_model(
    keras: Any, input_shape: tuple[int, int, int], num_classes: int, params: dict[str, Any]
) -> Any:
    """The digits CNN: conv blocks (params["filters"]) then a softmax over num_classes."""
    filters = params.get("filters", [16, 32])
    layers = keras.layers
    model = keras.Sequential(name="digits_cnn")
    model.add(keras.Input(shape=input_shape, name="image"))
    for f in filters:
        # 8x8 inputs are tiny: "same" padding keeps two conv blocks possible before pooling.
        model.add(layers.Conv2D(f, 3, padding="same", activation="relu"))
    model.add(layers.MaxPooling2D(2))
    model.add(layers.Flatten())
    model.add(layers.Dropout(params.get("dropout", 0.25)))
    model.add(layers.Dense(params.get("dense", 64), activation="relu"))
    model.add(layers.Dense(num_classes, activation="softmax", name="probabilities"))
    return model
