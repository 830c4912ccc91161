"""Shared fixtures: where the real recordings and models live (never in this repo)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Give the suite's child processes a working Ctrl-C. A shell starts a background job
    (``pytest ... &``, ``nohup``) with SIGINT ignored, an ignored signal stays ignored
    across exec, and Python then never raises KeyboardInterrupt: the tests that interrupt
    ``pamlive analyze`` would see it run to the end."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _find_shared() -> Path | None:
    env = os.environ.get("PAMLIVE_SHARED")
    for candidate in ([Path(env)] if env else []) + [REPO.parent / "shared"]:
        if (candidate / "data").is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (or ``$PAMLIVE_SHARED``); skips only where it is absent (a user's machine)."""
    found = _find_shared()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("../shared is missing in CI; it must sit beside the checkout")
        pytest.skip("../shared (real recordings and models) is not available on this machine")
    return found


RIGHT_WHALE_CHAIN = [
    {"name": "load_audio", "params": {"sr": 2000}},
    {"name": "spectrogram", "params": {"fft": 256, "hop": 100}},
    {"name": "freq_compression", "params": {"bins": 40, "fmin": 47, "fmax": 357}},
    {"name": "norm_row_sum", "params": {}},
]


def write_tonal_package(target: Path, threshold: float = 0.5) -> Path:
    """A tiny, transparent ONNX model package on the right whale chain, for plumbing tests.

    ``right_whale`` logit = sum of squared features - 6: each frame of the chain sums to
    one, so a narrow-band tone (energy in one or two of the 40 bins) scores ~ +14 over a
    2 s window while broadband noise scores ~ -4. Its answers are predictable from the
    audio alone, independently of the trained detector.
    """
    import json

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    target.mkdir(parents=True, exist_ok=True)
    nodes = [
        helper.make_node("Reshape", ["input", "flat_shape"], ["flat"]),
        helper.make_node("Mul", ["flat", "flat"], ["squared"]),
        helper.make_node("MatMul", ["squared", "weights"], ["summed"]),
        helper.make_node("Add", ["summed", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    weights = np.zeros((1600, 2), np.float32)
    weights[:, 1] = 1.0
    inits = [
        numpy_helper.from_array(np.array([-1, 1600], np.int64), "flat_shape"),
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(np.array([0.0, -6.0], np.float32), "bias"),
    ]
    graph = helper.make_graph(
        nodes, "tonal",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 40, 40, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(target / "model.onnx"))
    meta = {
        "schema": "pamlive.model/1", "name": "tonal-test", "version": "0",
        "description": "test model: narrow-band energy detector",
        "class_names": ["noise", "right_whale"],
        "thresholds": {"noise": 1.0, "right_whale": threshold},
        "binary": {"noise": False, "right_whale": True},
        "segment_s": 2.0, "sample_rate": 2000, "input_shape": [-1, 40, 40, 1],
        "output_activation": "none", "freq_range": [47, 357],
        "transforms": RIGHT_WHALE_CHAIN,
    }
    (target / "pamlive-model.json").write_text(json.dumps(meta, indent=1))
    return target


@pytest.fixture(scope="session")
def bats_package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """batdetect2's UK model as `pamlive import-model batdetect2` converts it from the
    installed checkpoint (CC-BY-NC-4.0: made per test session, never committed)."""
    pytest.importorskip("torch", reason="the bats extra (PyTorch) is not installed")
    pytest.importorskip("batdetect2", reason="batdetect2 (its checkpoint) is not installed: "
                        "pip install --no-deps batdetect2==1.3.1")
    from pamlive.importers import import_model

    return import_model("batdetect2", tmp_path_factory.mktemp("bats") / "batdetect2-uk")


@pytest.fixture(scope="session")
def tonal_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tonal_package(tmp_path_factory.mktemp("tonal-model"))


def tone_in_noise(rate: int, seconds: float, tones: list[tuple[float, float, float]],
                  noise_rms: float = 0.01, seed: int = 0, channels: int = 1):
    """White noise with tones ``(start_s, end_s, freq_hz)`` of amplitude 0.2 on every channel."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    x = rng.normal(0, noise_rms, (n, channels))
    t = np.arange(n) / rate
    for start, end, freq in tones:
        on = (t >= start) & (t < end)
        x[on, :] += 0.2 * np.sin(2 * np.pi * freq * t[on])[:, None]
    return x.astype(np.float32)
