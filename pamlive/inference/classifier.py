"""ONNX Runtime classifier: feature batches in, class probabilities out."""

from __future__ import annotations

import numpy as np

from pamlive.errors import ModelError
from pamlive.inference.package import ModelPackage
from pamlive.inference.session import open_session


class Classifier:
    """One ONNX Runtime session; ``predict`` is called from a single worker thread."""

    def __init__(self, package: ModelPackage, threads: int = 1) -> None:
        self.package = package
        self._session = open_session(package.onnx_path, threads)
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"{package.onnx_path}: expected one model input, found {len(inputs)}")
        self._input_name = inputs[0].name
        self._input_shape = [d if isinstance(d, int) else -1 for d in inputs[0].shape]
        n_out = self._session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(package.class_names):
            raise ModelError(f"{package.onnx_path}: model gives {n_out} scores for "
                             f"{len(package.class_names)} class names")

    def check_features(self, feature_shape: tuple[int, ...]) -> None:
        """Fail at start-up, not at the first window, when the chain does not fit the model."""
        want = self._input_shape[1:]
        if int(np.prod(feature_shape)) != int(np.prod([d for d in want if d > 0])) and all(
            d > 0 for d in want
        ):
            raise ModelError(
                f"{self.package.path}: transform chain gives {feature_shape}, model input is "
                f"{self._input_shape}"
            )

    def predict(self, features: np.ndarray) -> np.ndarray:
        """``(n, *feature_shape)`` -> ``(n, n_classes)`` scores in 0..1."""
        n = features.shape[0]
        if n == 0:
            return np.zeros((0, len(self.package.class_names)), np.float32)
        want = self._input_shape[1:]
        shaped = features.reshape((n, *want)) if all(d > 0 for d in want) else features
        out = self._session.run(None, {self._input_name: shaped.astype(np.float32, copy=False)})
        scores: np.ndarray = np.asarray(out[0], dtype=np.float32).reshape(n, -1)
        act = self.package.output_activation
        if act == "softmax":
            e = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores = e / e.sum(axis=1, keepdims=True)
        elif act == "sigmoid":
            scores = 1.0 / (1.0 + np.exp(-scores))
        return scores
