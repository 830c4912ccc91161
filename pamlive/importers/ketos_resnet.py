"""Rebuild a Ketos ResNet (``ResNetInterface``) from ``recipe.json`` + a TF2 checkpoint.

A ``.kt`` archive holds no graph, only an object checkpoint of Ketos' Keras model, so
the network is rebuilt here in plain TensorFlow ops following
``ketos.neural_networks.resnet``: an initial 3x3 convolution, ``sum(block_sets)``
pre-activation residual blocks (BN-ReLU-conv twice; the first block of every set after
the first strides by ``strides`` and has a BN-ReLU-1x1-conv shortcut), a final BN-ReLU,
global average pooling, a dense layer and a softmax. Keras' BatchNormalization epsilon
(1e-3) and "same" padding are kept, so the scores are Ketos' own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from pamlive.errors import ModelError, first_line
from pamlive.importers.tfconvert import tensorflow

BN_EPSILON = 1e-3  # tf.keras.layers.BatchNormalization default
_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


class Weights(Protocol):
    """Variables by Keras object path, e.g. ``blocks/layer-0/conv_1/kernel``."""

    def has(self, path: str) -> bool: ...

    def __call__(self, path: str) -> np.ndarray: ...


class CheckpointWeights:
    """Checkpoint variables by their object path, a missing one named in the error."""

    def __init__(self, prefix: str, where: str) -> None:
        tf = tensorflow()
        try:
            reader = tf.train.load_checkpoint(prefix)
        except Exception as exc:  # NotFoundError, DataLossError, ...
            raise ModelError(f"{where}: cannot read the TF2 checkpoint ({first_line(exc)})"
                             ) from None
        self._reader = reader
        self._names = set(reader.get_variable_to_shape_map())
        self._where = where

    def has(self, path: str) -> bool:
        return path + _SUFFIX in self._names

    def __call__(self, path: str) -> np.ndarray:
        if not self.has(path):
            raise ModelError(f"{self._where}: checkpoint lacks '{path}' that the ResNet recipe "
                             "needs (not a Ketos ResNet checkpoint?)")
        return np.asarray(self._reader.get_tensor(path + _SUFFIX), dtype=np.float32)


def _int(recipe: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = recipe.get(key, default)
    if isinstance(value, list | tuple):  # Ketos allows [s, s]
        value = value[0] if len(set(value)) == 1 else None
    if not isinstance(value, int) or value <= 0:
        raise ModelError(f"{where}: recipe {key}={recipe.get(key)!r} is not supported")
    return value


def resnet_function(recipe: Mapping[str, Any], weights: Weights, where: str) -> Any:
    """A function ``(n, time, freq, 1) -> (n, n_classes)`` softmax scores, to trace."""
    tf = tensorflow()
    interface = recipe.get("interface", "ResNetInterface")
    if interface != "ResNetInterface" or "block_sets" not in recipe:
        raise ModelError(f"{where}: Ketos network '{interface}' cannot be rebuilt from a "
                         "checkpoint (pamlive rebuilds ResNetInterface; export a .ktpb instead)")
    block_sets = recipe["block_sets"]
    if not (isinstance(block_sets, list) and block_sets
            and all(isinstance(b, int) and b > 0 for b in block_sets)):
        raise ModelError(f"{where}: recipe block_sets={block_sets!r} is not a list of counts")
    initial_strides = _int(recipe, "initial_strides", 1, where)
    strides = _int(recipe, "strides", 2, where)
    w = weights
    n_blocks = sum(block_sets)
    if w.has(f"blocks/layer-{n_blocks}/conv_1/kernel"):
        raise ModelError(f"{where}: checkpoint holds more residual blocks than block_sets "
                         f"{block_sets}")

    def const(path: str) -> Any:
        return tf.constant(w(path))

    def batch_norm(x: Any, path: str) -> Any:
        scale = w(f"{path}/gamma") / np.sqrt(w(f"{path}/moving_variance") + BN_EPSILON)
        shift = w(f"{path}/beta") - w(f"{path}/moving_mean") * scale
        return x * tf.constant(scale) + tf.constant(shift)

    def conv(x: Any, path: str, stride: int) -> Any:
        return tf.nn.conv2d(x, const(f"{path}/kernel"), strides=stride, padding="SAME")

    blocks: list[tuple[str, int, bool]] = []
    for set_id, count in enumerate(block_sets):
        for block_id in range(count):
            path = f"blocks/layer-{len(blocks)}"
            stride = strides if set_id != 0 and block_id == 0 else 1
            blocks.append((path, stride, w.has(f"{path}/conv_down/kernel")))
    dense_kernel, dense_bias = const("fully_connected/kernel"), const("fully_connected/bias")
    n_classes = recipe.get("n_classes")
    if n_classes is not None and int(n_classes) != int(dense_bias.shape[0]):
        raise ModelError(f"{where}: recipe says {n_classes} classes, checkpoint has "
                         f"{dense_bias.shape[0]}")

    def forward(x: Any) -> Any:
        out = conv(x, "conv_initial", initial_strides)
        for path, stride, has_shortcut in blocks:
            h = conv(tf.nn.relu(batch_norm(out, f"{path}/batch_norm_1")), f"{path}/conv_1", stride)
            h = conv(tf.nn.relu(batch_norm(h, f"{path}/batch_norm_2")), f"{path}/conv_2", 1)
            if has_shortcut:
                out = conv(tf.nn.relu(batch_norm(out, f"{path}/batch_norm_down")),
                           f"{path}/conv_down", stride)
            out = h + out
        out = tf.nn.relu(batch_norm(out, "batch_norm_final"))
        pooled = tf.reduce_mean(out, axis=[1, 2])
        return tf.nn.softmax(tf.matmul(pooled, dense_kernel) + dense_bias)

    return forward
