"""One ONNX Runtime session on the CPU, opened the same way for every kind of model."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from pamlive.errors import ModelError, first_line


def open_session(onnx_path: Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU session with ``threads`` intra-op threads; a broken file is one ModelError line."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types
        raise ModelError(f"{onnx_path}: cannot load ONNX model ({first_line(exc)})") from None
