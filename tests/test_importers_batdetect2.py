"""batdetect2 import (issue 16): the rebuilt network, its ONNX export, the front end and
the package, checked against batdetect2 1.3.1's own numbers (tests/fixtures/batdetect2,
made by scripts/make_batdetect2_reference.py with batdetect2 itself), plus the one-line
errors for checkpoints that are not batdetect2's."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import batdetect2_own as own
import numpy as np
import pytest
import soundfile as sf
from import_helpers import import_fails

from pamlive.dsp.resample import StreamResampler
from pamlive.errors import ModelError
from pamlive.importers import batdetect2 as bd
from pamlive.importers import import_model, main
from pamlive.inference.package import load_model_package

FIXTURES = Path(__file__).parent / "fixtures" / "batdetect2"
REFERENCES = sorted(FIXTURES.glob("*.json"))

needs_batdetect2 = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("batdetect2") is None,
    reason="needs PyTorch and batdetect2's checkpoint (pip install '.[bats]'; "
           "pip install --no-deps batdetect2==1.3.1)")


@pytest.fixture(scope="module")
def package(bats_package_dir):
    return load_model_package(bats_package_dir)


@pytest.fixture(scope="module")
def network():
    path = bd.find_checkpoint("batdetect2")
    params, state = bd.load_checkpoint(path)
    return params, bd.build_network(params, state, path)


def _reference(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _chunk(shared_dir: Path, ref: dict) -> np.ndarray:
    """The fixture's chunk as pamlive makes it: the whole file through the stream
    resampler (as batdetect2 resamples the whole file), then cut."""
    x, rate = sf.read(shared_dir / ref["recording"], dtype="float32")
    resampler = StreamResampler(rate, 256000, 1)
    y = np.concatenate([resampler.process(x[:, None]), resampler.flush()])[:, 0]
    n = int(256000 * 3.0)
    i = ref["excerpt"]["chunk_index"]
    return y[i * n:(i + 1) * n]


# ---------------------------------------------------------------------------- network


@needs_batdetect2
@pytest.mark.parametrize("width", [64, 192, 640])
@pytest.mark.slow
def test_onnx_matches_the_rebuilt_network_at_any_width(package, network, width):
    _, net = network
    x = np.abs(np.random.default_rng(width).standard_normal((2, 220, width))).astype(np.float32)
    ref, got = bd.run_torch(net, x), bd.run_onnx(package.onnx_path.read_bytes(), x)
    assert got["detection"].shape == (2, 1, 128, width // 2)
    assert got["size"].shape == (2, 2, 128, width // 2)
    assert got["classes"].shape == (2, 18, 128, width // 2)
    for k in ("detection", "classes"):
        np.testing.assert_allclose(got[k], ref[k], atol=1e-5)
    np.testing.assert_allclose(got["size"], ref["size"], rtol=1e-4, atol=1e-3)


@needs_batdetect2
def test_exported_graph_has_none_of_the_slow_forms(package, tmp_path):
    """What made ONNX Runtime slow on batdetect2's graph as written (a quarter of its CPU:
    benchmarks/bench_bat_network.py) is gone: no Softmax over the class axis of a feature
    map, no Tile (x.repeat), and no conv past the first takes a coordinate channel that
    leaves its input channels off ONNX Runtime's blocks of 8 (33, 65, 257)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(tmp_path / "folded.onnx")
    ort.InferenceSession(str(package.onnx_path), options, providers=["CPUExecutionProvider"])
    graph = onnx.load(str(tmp_path / "folded.onnx")).graph
    weights = {w.name: list(w.dims) for w in graph.initializer}
    producer = {o: n.op_type for n in graph.node for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    channels = sorted({weights[n.input[1]][1] for n in convs})
    assert channels[0] == 2  # the first: spectrogram and coordinate
    assert all(c % 8 == 0 for c in channels[1:]), channels
    assert not [n for n in graph.node if n.op_type == "Tile"]
    assert [producer.get(n.input[0]) for n in graph.node if n.op_type == "Softmax"] == \
        ["Div"]  # the attention's only (scores / att_dim, (N, T, T))


@needs_batdetect2
def test_package_metadata(package):
    assert package.sample_rate == 256000 and package.segment_s == 3.0
    assert len(package.class_names) == 17 and package.class_names[0] == "Barbastellus barbastellus"
    assert package.input_shape == [-1, 1, 220, 6016]
    out = json.loads((package.path / "pamlive-model.json").read_text())["output"]
    assert package.events is not None and package.events.nms_kernel_size == 9  # parsed
    assert out == {"kind": "events", "decoder": "batdetect2", "min_freq_hz": 10000,
                   "max_freq_hz": 120000, "frame_step_s": 128 / 256000,
                   "frame_offset_s": 384 / 256000, "resize_factor": 0.5, "nms_kernel_size": 9,
                   "nms_top_k_per_sec": 200, "detection_threshold": 0.01,
                   "width_multiple": 32}
    assert package.chain().output_shape(package.segment_samples) == (220, 6016)


@needs_batdetect2
@pytest.mark.parametrize("model_name", ["Net2DFast", "Net2DFastNoAttn", "Net2DFastNoCoordConv"])
def test_rebuild_matches_batdetect2s_own_classes(monkeypatch, model_name):
    """Every architecture batdetect2 1.3.1 can load, with random weights and batch-norm
    statistics, against batdetect2's own class: the state_dict loads strictly and the
    outputs agree."""
    import torch

    from pamlive.importers import batdetect2_net

    models, _ = own.modules(monkeypatch)
    torch.manual_seed(0)
    theirs = getattr(models, model_name)(32, num_classes=3, emb_dim=0, ip_height=128)
    with torch.no_grad():
        for m in theirs.modules():
            if isinstance(m, torch.nn.Linear):  # attention far from uniform, as trained
                m.weight.normal_(0.0, 8.0)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    theirs.eval()
    params = {"model_name": model_name, "num_filters": 32, "class_names": ["a", "b", "c"],
              "ip_height": 128, "resize_factor": 0.5, "emb_dim": 0}
    ours = batdetect2_net.build(params, theirs.state_dict())
    spec = 4.0 * torch.rand((2, 1, 220, 192))  # PCEN-like values: 0 to 4
    with torch.no_grad():
        resized = torch.nn.functional.interpolate(spec, size=(128, 96), mode="bilinear",
                                                  align_corners=False)
        want = theirs(resized)
        det, size, classes = ours(spec)
    torch.testing.assert_close(det, want.pred_det, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(size, want.pred_size, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(classes, want.pred_class, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------- against batdetect2 itself


@needs_batdetect2
@pytest.mark.parametrize("reference", REFERENCES, ids=lambda p: p.stem)
@pytest.mark.slow
def test_front_end_and_onnx_match_batdetect2(package, shared_dir, reference):
    """Resampling, every transform and the ONNX model against batdetect2's own code path
    on one chunk of a real recording (250, 384 and 500 kHz)."""
    ref = _reference(reference)
    ex = ref["excerpt"]
    x = _chunk(shared_dir, ref)
    audio = ex["audio"]
    assert x.shape[0] == audio["samples"]
    np.testing.assert_allclose(x[audio["slice_start"]:][:len(audio["slice"])], audio["slice"],
                               rtol=0, atol=1e-6 * max(audio["max_abs"], 1e-3))
    np.testing.assert_allclose(np.sum(np.square(x, dtype=np.float64)), audio["sum_sq"],
                               rtol=1e-5)

    chain = package.chain()
    sp = ex["spectrogram"]
    cropped = chain.run_steps(chain.steps[:3], x[None])[0]  # pad, |STFT|, crop
    final = chain.apply(x[None])[0]
    assert list(final.shape) == sp["shape"]
    frames = sp["frames"]
    want_mag = np.array(sp["cropped_magnitude"]).T
    np.testing.assert_allclose(cropped[:, frames], want_mag, rtol=1e-4,
                               atol=1e-6 * want_mag.max())
    np.testing.assert_allclose(final[:, frames], np.array(sp["final"]).T, rtol=0, atol=5e-5)
    assert np.sum(final, dtype=np.float64) == pytest.approx(sp["final_sum"], rel=1e-5)

    net = ex["network"]
    got = bd.run_onnx(package.onnx_path.read_bytes(), final[None])
    assert list(got["detection"].shape[2:]) == net["shape"]
    ys, xs = np.array(net["positions"]).T
    np.testing.assert_allclose(got["detection"][0, 0, ys, xs], net["detection"], atol=1e-5)
    np.testing.assert_allclose(got["classes"][0][:, ys, xs].T, net["classes"], atol=1e-5)
    np.testing.assert_allclose(got["size"][0][:, ys, xs].T, net["size"], rtol=1e-5, atol=1e-3)


@needs_batdetect2
@pytest.mark.slow
def test_calls_match_batdetect2s_own(package, shared_dir, monkeypatch):
    """The package's network on every 3 s chunk of the six recordings, decoded by
    batdetect2's own run_nms: batdetect2's calls, every one, far inside issue 16's
    tolerances (1 ms, 1 kHz, 0.01)."""
    import onnxruntime as ort

    _, post_process = own.modules(monkeypatch)
    params, _ = bd.load_checkpoint(bd.find_checkpoint("batdetect2"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(package.onnx_path), options,
                                   providers=["CPUExecutionProvider"])
    total, found_n = own.Parity(), 0
    for rec in own.recordings(shared_dir, package.chain()):
        found = own.calls(lambda x: session.run(None, {"spectrogram": x}), rec,
                          post_process.run_nms, own.nms_config(params), package.class_names)
        total = total + own.parity(found, rec.calls)
        found_n += len(found)
    assert total.reference > 100 and found_n == total.reference
    assert total.matching == total.reference
    assert total.max_dprob < 1e-4 and total.max_dstart_s < 1e-6


@needs_batdetect2
def test_installed_checkpoint_is_the_one_the_fixtures_came_from(package):
    want = {_reference(p)["meta"]["checkpoint_sha256"] for p in REFERENCES}
    assert {package.extra["imported_from"]["sha256"]} == want


def test_fixtures_are_batdetect2s_own_and_small():
    assert len(REFERENCES) == 6
    assert sum(p.stat().st_size for p in REFERENCES) < 1_000_000
    for path in REFERENCES:
        ref = _reference(path)
        assert ref["meta"]["batdetect2"] == "1.3.1"
        assert ref["meta"]["detection_threshold"] == 0.3
        assert all(c["det_prob"] > 0.3 for c in ref["calls"])
    assert sum(len(_reference(p)["calls"]) for p in REFERENCES) > 100


# ------------------------------------------------------------------------------- errors




@needs_batdetect2
def test_truncated_checkpoint(tmp_path):
    data = bd.find_checkpoint("batdetect2").read_bytes()
    cut = tmp_path / "cut.pth.tar"
    cut.write_bytes(data[: len(data) // 2])
    import_fails(cut, tmp_path / "pkg", "cut.pth.tar", "not a readable PyTorch checkpoint")


def test_garbage_checkpoint(tmp_path):
    pytest.importorskip("torch")
    bad = tmp_path / "noise.pth.tar"
    bad.write_bytes(b"\x00not a checkpoint at all" * 10)
    import_fails(bad, tmp_path / "pkg", "noise.pth.tar", "not a readable PyTorch checkpoint")


class _NotWeights:
    """A pickled object of a class: torch's weights-only reader refuses it."""


@pytest.mark.parametrize(("make", "problem"), [
    (lambda p: p.write_text("release notes, saved under the wrong name\n" * 20),
     "corrupt, truncated or not a PyTorch file"),
    (lambda p: p.write_bytes(b"PK\x03\x04" + b"\x00" * 64), "corrupt, truncated or not a "
     "PyTorch file"),
    (lambda p: __import__("torch").save({"params": _NotWeights()}, p),
     "it holds Python objects besides weights, and pamlive runs no code from a file"),
])
@pytest.mark.slow
def test_a_wrong_file_is_one_line_from_the_command(tmp_path, make, problem):
    """A text file, a broken zip, or a checkpoint with pickled objects: one line naming the
    file and the problem, exit 2 (no traceback, no torch advice to load it unsafely)."""
    import subprocess

    pytest.importorskip("torch")
    wrong = tmp_path / "model.pth.tar"
    make(wrong)
    r = subprocess.run([sys.executable, "-m", "pamlive", "import-model", str(wrong), "-o",
                        str(tmp_path / "pkg")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"pamlive: error: {wrong}: not a readable PyTorch checkpoint ({problem})"]
    assert not (tmp_path / "pkg").exists()


def test_other_pytorch_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    other = tmp_path / "resnet.pth.tar"
    torch.save({"epoch": 3, "state_dict": {"fc.weight": torch.zeros(2, 2)}}, other)
    import_fails(other, tmp_path / "pkg", "resnet.pth.tar", "not a batdetect2 checkpoint")


@needs_batdetect2
def test_unknown_model_name_and_misfit_weights(tmp_path):
    torch = pytest.importorskip("torch")
    params, state = bd.load_checkpoint(bd.find_checkpoint("batdetect2"))
    renamed = tmp_path / "other.pth.tar"
    torch.save({"params": {**params, "model_name": "Net2DSkip"}, "state_dict": state}, renamed)
    import_fails(renamed, tmp_path / "a", "unknown batdetect2 model_name 'Net2DSkip'")
    narrow = tmp_path / "narrow.pth.tar"
    torch.save({"params": {**params, "num_filters": 64}, "state_dict": state}, narrow)
    import_fails(narrow, tmp_path / "b", "cannot rebuild the batdetect2 network")
    log = tmp_path / "log.pth.tar"
    torch.save({"params": {**params, "spec_scale": "log"}, "state_dict": state}, log)
    import_fails(log, tmp_path / "c", "spec_scale='log'")


def test_missing_checkpoint(tmp_path):
    import_fails(tmp_path / "missing.pth.tar", tmp_path / "pkg", "missing.pth.tar", "not found")


def test_missing_torch_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    ckpt = tmp_path / "model.pth.tar"
    ckpt.write_bytes(b"whatever")
    assert main([str(ckpt), "-o", str(tmp_path / "pkg")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs PyTorch" in err and "'.[bats]'" in err


def test_classes_option_does_not_apply(tmp_path):
    ckpt = tmp_path / "model.pth.tar"
    ckpt.write_bytes(b"whatever")
    with pytest.raises(ModelError, match="do not apply"):
        import_model(ckpt, tmp_path / "pkg", classes=["a"])
