"""What every importer produces: an ONNX model, its metadata, and the original to compare."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pamlive.dsp.chain import TransformSpec
from pamlive.errors import ModelError


@dataclass(frozen=True)
class ImportOptions:
    """What the user says on the command line: package name, class names, sample rate
    (for models whose metadata lacks one)."""

    name: str
    classes: Sequence[str] | None = None
    sample_rate: int | None = None


# class names that mean "nothing of interest": they never raise detections by default
_NEGATIVE_NAMES = {"noise", "background", "other", "negative", "none", "non-target", "ambient"}
DEFAULT_THRESHOLD = 0.5


@dataclass
class ImportedModel:
    """A converted model before it is written as a package (docs/contracts.md §4)."""

    name: str
    description: str
    class_names: list[str]
    segment_s: float
    sample_rate: int
    transforms: list[TransformSpec]
    input_shape: list[int]  # with -1 for the batch, as the ONNX model takes it
    onnx_model: bytes
    # the original framework on the same input (parity tests): (n, *input_shape[1:]) -> scores
    reference: Callable[[np.ndarray], np.ndarray]
    version: str = "1.0.0"
    freq_range: tuple[float, float] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    # the package's "output" object (docs/contracts.md §4): None for window scores; an
    # event model (batdetect2) names its decoder, and every class is a species to report
    output: dict[str, Any] | None = None

    @property
    def binary(self) -> dict[str, bool]:
        if self.output is not None:
            return dict.fromkeys(self.class_names, True)
        return positive_classes(self.class_names)

    @property
    def thresholds(self) -> dict[str, float]:
        if self.output is not None:
            return dict.fromkeys(self.class_names, float(self.output["detection_threshold"]))
        return {c: (DEFAULT_THRESHOLD if on else 1.0) for c, on in self.binary.items()}

    @property
    def output_activation(self) -> str:
        if self.output is not None:  # its class outputs are a softmax already
            return "none"
        return output_activation(self.onnx_model, len(self.class_names))


def class_names(given: Sequence[str] | None, own: Sequence[str], source: object) -> list[str]:
    """``--classes`` if given (one per model output), else the model's own names."""
    if not given:
        return list(own)
    if len(given) != len(own):
        raise ModelError(f"{source}: {len(given)} class names given for a model with "
                         f"{len(own)} outputs")
    return list(given)


def positive_classes(class_names: Sequence[str]) -> dict[str, bool]:
    """Noise/background-like classes do not detect; the rest do (all but the first if none
    looks like noise, PAMGuard's convention)."""
    negative = [c.strip().lower() in _NEGATIVE_NAMES for c in class_names]
    if not any(negative) and len(class_names) > 1:
        negative = [i == 0 for i in range(len(class_names))]
    return {c: not neg for c, neg in zip(class_names, negative, strict=True)}


def output_activation(onnx_model: bytes, n_classes: int) -> str:
    """``none`` if the graph ends in Softmax/Sigmoid (scores are probabilities), else the
    activation that turns its logits into probabilities."""
    import onnx

    graph = onnx.load_from_string(onnx_model).graph
    producer = {out: node for node in graph.node for out in node.output}
    node = producer.get(graph.output[0].name)
    while node is not None and node.op_type in ("Identity", "Reshape", "Squeeze", "Flatten"):
        node = producer.get(node.input[0])
    if node is not None and node.op_type in ("Softmax", "Sigmoid"):
        return "none"
    return "softmax" if n_classes > 1 else "sigmoid"
