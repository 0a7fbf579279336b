"""The diabetes network: a small MLP over the encoded features, with one linear output.

Called as build_model(keras, input_shape, num_outputs, params); the Keras module is passed in
so the same code trains on one worker (keras) or many (tf_keras). The training code wraps the
output in the target's standardisation (adapters/training.build), so the last layer predicts a
standardised value and needs no activation.
"""

from __future__ import annotations

from typing import Any


def build_model(
    keras: Any, input_shape: tuple[int, ...], num_outputs: int, params: dict[str, Any]
) -> Any:
    """Dense layers of params["units"] units, each followed by dropout, then one linear unit."""
    layers = [keras.Input(shape=input_shape)]
    for units in params.get("units", [32, 16]):
        layers += [
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dropout(params.get("dropout", 0.1)),
        ]
    layers.append(keras.layers.Dense(num_outputs))
    return keras.Sequential(layers)
