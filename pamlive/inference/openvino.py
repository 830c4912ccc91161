"""OpenVINO in bfloat16 for event models: the bat network at about half the CPU.

batdetect2's network is 37.6 GFLOP per 3 s channel window, and float32 on one core cannot
go much below 0.4 s for it. CPUs with bfloat16 arithmetic (AVX512-BF16: AMD Zen 4 and later,
Intel Cooper Lake, Sapphire Rapids and later; AMX) do twice the multiply-adds per cycle, and
OpenVINO uses them; ONNX Runtime does not on x86. bfloat16 keeps 8 bits of mantissa, so
probabilities move by up to ~0.007 (docs/bats.md, "bfloat16"). The model is compiled for each
input shape it meets (a static shape is ~13 % faster than a dynamic one; compiling takes
~0.3 s of CPU), and the last few compiled shapes are kept.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from pamlive.errors import ModelError, first_line

PRECISIONS = ("float32", "bfloat16")
KEEP_SHAPES = 8  # live: one shape per number of channels the activity gate lets through


def _core() -> Any:
    try:
        import openvino
    except ImportError:
        raise ModelError("[model] precision = 'bfloat16' needs OpenVINO: "
                         "pip install 'pamlive[openvino]' (or set precision = 'float32')"
                         ) from None
    return openvino.Core()


def has_bfloat16(core: Any) -> bool:
    """Whether this CPU does bfloat16 arithmetic natively (OpenVINO's own check)."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class BFloat16Runner:
    """Runs an ONNX model in bfloat16 with OpenVINO; refuses, in one line, a machine where
    that would be emulated (slower than float32, not faster)."""

    def __init__(self, onnx_path: Path, outputs: tuple[str, ...], threads: int = 1) -> None:
        self._core = _core()
        if not has_bfloat16(self._core):
            raise ModelError("[model] precision = 'bfloat16': this CPU has no bfloat16 "
                             "arithmetic (AVX512-BF16 or AMX); set precision = 'float32'")
        try:
            self._model = self._core.read_model(str(onnx_path))
        except Exception as exc:  # OpenVINO raises its own RuntimeError subclasses
            raise ModelError(f"{onnx_path}: OpenVINO cannot read the model "
                             f"({first_line(exc)})") from None
        self._path = onnx_path
        self._outputs = outputs
        self._config = {"INFERENCE_NUM_THREADS": int(threads), "NUM_STREAMS": 1,
                        "INFERENCE_PRECISION_HINT": "bf16"}
        self._compiled: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """The model's ``outputs`` (copies) for one input batch."""
        request = self._request(batch.shape)
        # the outputs (~130 MB for four 3 s channels) are copied once, here, not twice
        result = request.infer({0: batch}, share_inputs=True, share_outputs=True)
        compiled = request.get_compiled_model()
        return [np.array(result[compiled.output(name)]) for name in self._outputs]

    def _request(self, shape: tuple[int, ...]) -> Any:
        if shape in self._compiled:
            self._compiled.move_to_end(shape)
            return self._compiled[shape]
        model = self._model.clone()
        try:
            model.reshape({0: list(shape)})
            compiled = self._core.compile_model(model, "CPU", self._config)
        except Exception as exc:
            raise ModelError(f"{self._path}: OpenVINO cannot compile the model for input "
                             f"{list(shape)} ({first_line(exc)})") from None
        self._compiled[shape] = compiled.create_infer_request()
        if len(self._compiled) > KEEP_SHAPES:
            self._compiled.popitem(last=False)
        return self._compiled[shape]
