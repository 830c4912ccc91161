"""ONNX Runtime (or OpenVINO in bfloat16) for event models: spectrograms in, batdetect2's
three heatmaps out."""

from __future__ import annotations

import numpy as np

from pamlive.errors import ModelError
from pamlive.inference.openvino import PRECISIONS, BFloat16Runner
from pamlive.inference.package import ModelPackage
from pamlive.inference.session import open_session

INPUT = "spectrogram"  # [N, 1, rows, W], W dynamic
OUTPUTS = ("detection", "size", "classes")  # [N, 1|2|C+1, H, W'], classes' last: background


class EventModel:
    """One session of an event model (``"output": {"kind": "events"}``); ``run`` is called
    from a single thread. ``precision``: ``float32`` (ONNX Runtime) or ``bfloat16``
    (OpenVINO, :mod:`pamlive.inference.openvino`)."""

    def __init__(self, package: ModelPackage, threads: int = 1,
                 precision: str = "float32") -> None:
        if precision not in PRECISIONS:
            raise ModelError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        if package.events is None:
            raise ModelError(f"{package.path}: not an event model (its metadata has no "
                             "\"output\": {\"kind\": \"events\"})")
        self.package = package
        self.spec = package.events
        self._session = open_session(package.onnx_path, threads)
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = {o.name: o.shape for o in self._session.get_outputs()}
        if inputs != [INPUT] or not set(OUTPUTS) <= set(outputs):
            raise ModelError(f"{package.onnx_path}: an event model takes '{INPUT}' and gives "
                             f"{', '.join(OUTPUTS)}; this one takes {', '.join(inputs)} and "
                             f"gives {', '.join(outputs)}")
        n = outputs["classes"][1]
        names = len(package.class_names)
        if isinstance(n, int) and n not in (names, names + 1):
            raise ModelError(f"{package.onnx_path}: model gives {n} class maps for {names} "
                             "class names (and a background)")
        self.precision = precision
        self._bfloat16 = (BFloat16Runner(package.onnx_path, OUTPUTS, threads)
                          if precision == "bfloat16" else None)

    def run(self, features: np.ndarray) -> list[dict[str, np.ndarray]]:
        """Spectrograms ``(n, rows, W)`` of equal width -> per window ``detection`` ``(1, H,
        W')``, ``size`` ``(2, H, W')`` and ``classes`` ``(C+1, H, W')``."""
        if features.shape[0] == 0:
            return []
        batch = np.ascontiguousarray(features[:, None], dtype=np.float32)
        out = (self._bfloat16.run(batch) if self._bfloat16 is not None
               else self._session.run(list(OUTPUTS), {INPUT: batch}))
        return [{name: out[k][i] for k, name in enumerate(OUTPUTS)}
                for i in range(features.shape[0])]
