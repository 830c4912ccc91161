"""The bat network in bfloat16 (OpenVINO) against float32 (ONNX Runtime), and its refusals.

Parity of the calls with batdetect2's own in bfloat16: tests/test_calls_parity.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cpu_flags import BF16_CPU

from pamlive.errors import ModelError
from pamlive.inference import openvino as ov_runner
from pamlive.inference.heatmaps import OUTPUTS, EventModel
from pamlive.inference.package import ModelPackage, load_model_package
from pamlive.windows import make_event_windower

openvino = pytest.importorskip("openvino", reason="the openvino extra is not installed")


needs_bf16 = pytest.mark.skipif(not BF16_CPU, reason="this CPU has no bfloat16 arithmetic")


@pytest.fixture(scope="module")
def bat_package(bats_package_dir: Path) -> ModelPackage:
    return load_model_package(bats_package_dir)


@pytest.fixture(scope="module")
def features(bat_package: ModelPackage, shared_dir: Path) -> np.ndarray:
    """The network input of the first 3 s window of two real recordings (two channels)."""
    paths = sorted((shared_dir / "data" / "bats").glob("*.wav"))[1:3]
    audio = np.stack([sf.read(p, dtype="float32", frames=1_000_000)[0] for p in paths],
                     axis=1)
    windows = make_event_windower(bat_package, 250000, 2, 3.0).push(audio)
    return windows[0].features


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads /proc/cpuinfo")
def test_bfloat16_support_is_what_the_cpu_flags_say() -> None:
    assert ov_runner.has_bfloat16(openvino.Core()) == BF16_CPU


@needs_bf16
@pytest.mark.slow
def test_bfloat16_heatmaps_are_float32_s_to_bfloat16_rounding(bat_package: ModelPackage,
                                                              features: np.ndarray) -> None:
    """Close to ONNX Runtime's float32 (the heatmaps are probabilities), and not equal to
    it: were OpenVINO quietly running float32, they would agree to ~1e-6."""
    exact = EventModel(bat_package).run(features)
    half = EventModel(bat_package, precision="bfloat16").run(features)
    assert len(half) == len(exact) == 2
    for h, e in zip(half, exact, strict=True):
        for name in OUTPUTS:
            assert h[name].shape == e[name].shape and h[name].dtype == np.float32
        assert 1e-4 < np.abs(h["detection"] - e["detection"]).max() < 0.03
        assert np.abs(h["classes"] - e["classes"]).max() < 0.05
    # the calls: where float32's heatmap is high, bfloat16's is too
    high = np.stack([e["detection"] for e in exact]) > 0.3
    deviation = np.abs(np.stack([h["detection"] for h in half]) -
                       np.stack([e["detection"] for e in exact]))
    assert high.sum() > 10 and deviation[high].max() < 0.01


@needs_bf16
def test_each_input_shape_is_compiled_once_and_the_oldest_are_let_go(
        bat_package: ModelPackage, features: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ov_runner, "KEEP_SHAPES", 2)
    runner = ov_runner.BFloat16Runner(bat_package.onnx_path, OUTPUTS)
    narrow = np.ascontiguousarray(features[:, None, :, :512])
    first = runner.run(narrow)
    again = runner.run(narrow)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert list(runner._compiled) == [narrow.shape]
    one = runner.run(narrow[:1])  # a batch of one: its own shape, the same numbers
    assert all(np.allclose(a[0], b[0], atol=1e-6) for a, b in zip(one, first, strict=True))
    runner.run(np.ascontiguousarray(features[:1, None, :, :256]))
    assert list(runner._compiled) == [narrow[:1].shape, (1, 1, features.shape[1], 256)]


def test_an_unknown_precision_is_one_line(bat_package: ModelPackage) -> None:
    with pytest.raises(ModelError, match="precision 'float16': choose one of float32, "
                                         "bfloat16"):
        EventModel(bat_package, precision="float16")


def test_without_openvino_bfloat16_says_what_to_install(bat_package: ModelPackage,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(ModelError, match=r"pip install 'pamlive\[openvino\]'"):
        EventModel(bat_package, precision="bfloat16")


def test_a_cpu_without_bfloat16_is_refused_not_emulated(bat_package: ModelPackage,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ov_runner, "has_bfloat16", lambda core: False)  # another machine
    with pytest.raises(ModelError, match="this CPU has no bfloat16 arithmetic"):
        EventModel(bat_package, precision="bfloat16")


@needs_bf16
def test_a_model_openvino_cannot_read_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"\x08\x07 not a model")
    with pytest.raises(ModelError, match="OpenVINO cannot read the model") as err:
        ov_runner.BFloat16Runner(broken, OUTPUTS)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("line", "message"), [
    ('path = "builtin:narw"\nprecision = "bfloat16"',
     "[model] precision: for event models (bats) only; builtin:narw gives window scores"),
    ('path = "builtin:narw"\nprecision = "float16"',
     "[model] precision must be float32 or bfloat16, got 'float16'"),
])
@pytest.mark.slow
def test_precision_in_a_config_is_checked_in_one_line(tmp_path: Path, line: str,
                                                      message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[model]\n{line}\n")
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(4000, np.float32), 2000)
    run = subprocess.run([sys.executable, "-m", "pamlive", "analyze", str(wav), "-c", str(cfg),
                          "-o", str(tmp_path / "out")], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=False)
    assert run.returncode == 2
    [error] = run.stderr.strip().splitlines()
    assert message in error
