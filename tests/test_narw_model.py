"""The committed right whale package: loads, runs in ONNX Runtime, and separates real
held-out upcalls from background (recordings it was not trained on)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import soundfile as sf

from pamlive.dsp.chain import TransformChain
from pamlive.dsp.pdtf import read_pdtf
from pamlive.evaluate import read_annotations
from pamlive.inference.package import load_model_package

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pamlive" / "models" / "narw"
DATA = Path("data/narw-dclde2013/train")
HELD_OUT_CALLS = "narw/NOPP6_EST_20090328_001500.wav"
HELD_OUT_BACKGROUND = "background/GSC_2000-05-19_00-30-00.wav"


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((PACKAGE / "pamlive-model.json").read_text())


@pytest.fixture(scope="module")
def session() -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(PACKAGE / "model.onnx"), opts,
                                providers=["CPUExecutionProvider"])


def test_metadata_follows_the_package_contract(meta, shared_dir):
    assert meta["schema"] == "pamlive.model/1" and meta["name"] == "narw-upcall"
    assert meta["class_names"] == ["noise", "right_whale"]
    assert meta["binary"] == {"noise": False, "right_whale": True}
    assert meta["thresholds"]["noise"] == 1.0 and 0 < meta["thresholds"]["right_whale"] < 1
    assert meta["version"].split(".")[0] == "2"  # the retrained, calibrated model
    assert (meta["segment_s"], meta["sample_rate"]) == (2.0, 2000)
    assert meta["input_shape"] == [-1, 40, 40, 1] and meta["output_activation"] == "none"
    pdtf = shared_dir / "models/pamguard-right-whale/right_whale_DL_settings.pdtf"
    assert meta["transforms"] == TransformChain(read_pdtf(pdtf).transforms).to_json()
    assert (PACKAGE / "model.onnx").stat().st_size < 400_000


def test_builtin_name_loads_this_package(meta):
    package = load_model_package("builtin:narw")
    assert package.onnx_path.resolve() == (PACKAGE / "model.onnx").resolve()
    assert (package.name, package.version) == (meta["name"], meta["version"])
    assert package.thresholds == meta["thresholds"]
    assert package.chain().output_shape(package.segment_samples) == (40, 40)


def test_onnx_io_and_dynamic_batch(session):
    (inp,) = session.get_inputs()
    (out,) = session.get_outputs()
    assert inp.name == "input" and inp.shape[1:] == [40, 40, 1]
    assert out.name == "probabilities" and out.shape[1:] == [2]
    rng = np.random.default_rng(0)
    for n in (1, 7):
        x = rng.dirichlet(np.ones(40), size=(n, 40))[..., None].astype(np.float32)
        p = session.run(None, {"input": x})[0]
        assert p.shape == (n, 2)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_export_path_agrees_with_torch(tmp_path, shared_dir):
    """The exporter that wrote model.onnx gives what PyTorch computes (train extra only)."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(REPO / "training"))
    try:
        from narw_net import UpcallNet
        from train_narw import export_package
    finally:
        sys.path.remove(str(REPO / "training"))
    torch.manual_seed(3)
    net = UpcallNet(log_input=True, bg_sub=True)
    with torch.no_grad():  # non-trivial batch-norm statistics and a calibration temperature
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        net.temperature.fill_(1.7)
    net.eval()
    pdtf = shared_dir / "models/pamguard-right-whale/right_whale_DL_settings.pdtf"
    export_package(net, TransformChain(read_pdtf(pdtf).transforms), tmp_path, 0.5)
    x = np.random.default_rng(1).dirichlet(np.ones(40), size=(5, 40))[..., None]
    x = x.astype(np.float32)
    got = ort.InferenceSession(str(tmp_path / "model.onnx")).run(None, {"input": x})[0]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
        # independent of the module: softmax of the logits divided by the temperature
        z = net.logits(torch.from_numpy(x)).numpy() / 1.7
    assert np.max(np.abs(got - want)) < 1e-5
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(axis=1, keepdims=True), atol=1e-5)


def test_pseudo_calls_are_sure_teacher_runs():
    """A run of clips >= 0.99 becomes one 1-s call around its centre only if it peaks
    at >= 0.999; single clips and runs that never get sure are not calls."""
    sys.path.insert(0, str(REPO / "training"))
    try:
        from narw_data import pseudo_calls
    finally:
        sys.path.remove(str(REPO / "training"))
    t = np.arange(20) * 0.25 + 1.125
    s = np.zeros(20)
    s[2:6] = [0.991, 0.9995, 0.995, 0.992]  # sure run, centres 1.625..2.375
    s[9:11] = [0.995, 0.998]  # never reaches 0.999
    s[15] = 0.9999  # a single sure clip, centre 4.875
    calls = pseudo_calls(t, s)
    assert [(c.start, c.end) for c in calls] == [(1.5, 2.5), (4.375, 5.375)]


def _window_scores(session, chain, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """right_whale score of every 2-s window at the default 0.5-s hop, and start times."""
    audio, rate = sf.read(str(path), dtype="float32")
    assert rate == 2000
    starts = np.arange(0, len(audio) - 4000 + 1, 1000)
    feats = chain.apply(np.stack([audio[s : s + 4000] for s in starts]))[..., None]
    return session.run(None, {"input": feats})[0][:, 1], starts / 2000.0


def test_held_out_calls_score_above_background(session, meta, shared_dir):
    root = shared_dir / DATA
    chain = TransformChain(read_pdtf(
        shared_dir / "models/pamguard-right-whale/right_whale_DL_settings.pdtf").transforms)
    thr = meta["thresholds"]["right_whale"]
    scores, starts = _window_scores(session, chain, root / HELD_OUT_CALLS)
    calls = read_annotations(root / "annotations_train.csv")[Path(HELD_OUT_CALLS).stem]
    assert len(calls) == 24
    best = [scores[(starts < c.end) & (starts + 2.0 > c.start)].max() for c in calls]
    found = np.mean(np.asarray(best) >= thr)
    assert found >= 0.8, f"only {found:.0%} of held-out calls reach the threshold {thr}"
    bg_scores, _ = _window_scores(session, chain, root / HELD_OUT_BACKGROUND)
    # not one of 1797 held-out background windows reaches the default threshold
    assert bg_scores.max() < thr, f"background window scores {bg_scores.max():.4f}"
    assert np.median(best) > np.quantile(bg_scores, 0.999)
