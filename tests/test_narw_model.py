"""The committed right whale package: loads, runs in ONNX Runtime, and hears right whales
off the site it learned: PAMGuard's own example clip above PAMGuard's own bar (its
GenericDLClassifierTest expects > 0.98), a southern right whale upcall, nothing on vessel
noise -- recordings no part of training reads."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from pamlive.dsp.chain import TransformChain
from pamlive.dsp.pdtf import read_pdtf
from pamlive.inference.package import load_model_package

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pamlive" / "models" / "narw"


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
    assert meta["version"].split(".")[0] == "3"  # trained on three days and synthetic calls
    assert (meta["segment_s"], meta["sample_rate"]) == (2.0, 2000)
    assert meta["input_shape"] == [-1, 40, 40, 1] and meta["output_activation"] == "none"
    pdtf = shared_dir / "models/pamguard-right-whale/right_whale_DL_settings.pdtf"
    assert meta["transforms"] == TransformChain(read_pdtf(pdtf).transforms).to_json()
    assert (PACKAGE / "model.onnx").stat().st_size < 600_000  # five small networks


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


@pytest.mark.parametrize("time_pool", ["avg", "max"])
def test_export_path_agrees_with_torch(tmp_path, shared_dir, time_pool):
    """The exporter that wrote model.onnx gives what PyTorch computes (train extra only)."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(REPO / "training"))
    try:
        from narw_net import UpcallNet
        from train_narw import export_package
    finally:
        sys.path.remove(str(REPO / "training"))
    torch.manual_seed(3)
    net = UpcallNet(time_pool=time_pool)
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    net.eval()
    pdtf = shared_dir / "models/pamguard-right-whale/right_whale_DL_settings.pdtf"
    export_package(net, TransformChain(read_pdtf(pdtf).transforms), tmp_path, 0.5, "test")
    x = np.random.default_rng(1).dirichlet(np.ones(40), size=(5, 40))[..., None]
    x = x.astype(np.float32)
    got = ort.InferenceSession(str(tmp_path / "model.onnx")).run(None, {"input": x})[0]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
        z = net.logits(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(got - want)) < 1e-5
    e = np.exp(z - z.max(axis=1, keepdims=True))  # softmax written out, not the module's
    np.testing.assert_allclose(got, e / e.sum(axis=1, keepdims=True), atol=1e-5)
    meta = json.loads((tmp_path / "pamlive-model.json").read_text())
    assert meta["thresholds"]["right_whale"] == 0.5 and meta["version"].startswith("3.")


def test_a_wider_band_exports_its_own_input_shape_and_range(tmp_path, shared_dir):
    """``train_narw.py --band``: the package says the chain it was trained on (train
    extra only)."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(REPO / "training"))
    try:
        from narw_data import feature_chain
        from narw_net import UpcallNet
        from train_narw import chain_bins, export_package
    finally:
        sys.path.remove(str(REPO / "training"))
    chain = feature_chain(shared_dir, (47.0, 700.0, 48))
    assert chain_bins(chain) == 48
    torch.manual_seed(4)
    export_package(UpcallNet(bins=48).eval(), chain, tmp_path, 0.5, "test")
    package = load_model_package(tmp_path)
    assert package.input_shape == [-1, 40, 48, 1]
    assert json.loads((tmp_path / "pamlive-model.json").read_text())["freq_range"] == [47, 700]
    compress = [t.params for t in package.chain().specs if t.name == "freq_compression"]
    assert compress == [{"bins": 48, "fmin": 47.0, "fmax": 700.0}]
    x = np.random.default_rng(2).dirichlet(np.ones(48), size=(3, 40))[..., None]
    got = ort.InferenceSession(str(tmp_path / "model.onnx")).run(
        None, {"input": x.astype(np.float32)})[0]
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_spec_masks_flatten_one_run_of_frames_and_bins_the_network_then_ignores():
    """``train_narw.py --mask``: a masked run is a flat spectrum, the rest untouched, and
    a masked bin reads as zero after the network's background subtraction (train extra)."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(REPO / "training"))
    try:
        from train_narw import mask_features
    finally:
        sys.path.remove(str(REPO / "training"))
    x = np.random.default_rng(5).dirichlet(np.ones(40), size=(64, 40))[..., None]
    masked = mask_features(torch.from_numpy(x.copy()), np.random.default_rng(6), 5, 4).numpy()
    flat = np.isclose(masked, 1 / 40) & ~np.isclose(x, 1 / 40)
    frames = flat.all(axis=(2, 3)).sum(axis=1)  # whole frames set flat
    bins = flat.all(axis=(1, 3)).sum(axis=1)  # whole bins set flat
    assert frames.max() <= 5 and bins.max() <= 4 and frames.max() > 0 and bins.max() > 0
    changed = masked != x
    for i in range(len(x)):  # nothing outside the masked runs moved
        rows, cols = flat[i].all(axis=(1, 2)), flat[i].all(axis=(0, 2))
        assert not changed[i][~rows][:, ~cols].any()
    log = np.log(masked * 40 + 0.01)
    centred = log - log.mean(axis=1, keepdims=True)
    for i in np.flatnonzero(bins):
        cols = flat[i].all(axis=(0, 2))
        np.testing.assert_allclose(centred[i][:, cols], 0.0, atol=1e-6)


def test_seed_ensemble_is_the_mean_of_its_members(tmp_path, shared_dir):
    """ensemble_narw.py: one graph whose output is the members' mean (train extra only)."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(REPO / "training"))
    try:
        from ensemble_narw import main as ensemble
        from narw_net import UpcallNet
        from train_narw import export_package
    finally:
        sys.path.remove(str(REPO / "training"))
    pdtf = shared_dir / "models/pamguard-right-whale/right_whale_DL_settings.pdtf"
    chain = TransformChain(read_pdtf(pdtf).transforms)
    members = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        members.append(tmp_path / f"m{seed}")
        export_package(UpcallNet().eval(), chain, members[-1], 0.5, "test")
    assert ensemble([str(tmp_path / "mean"), *map(str, members), "--threshold", "0.7"]) == 0
    x = np.random.default_rng(4).dirichlet(np.ones(40), size=(6, 40))[..., None]
    x = x.astype(np.float32)

    def run(d: Path) -> np.ndarray:
        return ort.InferenceSession(str(d / "model.onnx")).run(None, {"input": x})[0]

    outs = [run(m) for m in members]
    assert max(np.abs(a - b).max() for a, b in itertools.pairwise(outs)) > 1e-3  # members differ
    np.testing.assert_allclose(run(tmp_path / "mean"), np.mean(outs, axis=0), atol=1e-6)
    meta = json.loads((tmp_path / "mean/pamlive-model.json").read_text())
    assert meta["thresholds"]["right_whale"] == 0.7 and "Mean of 3" in meta["description"]
    (members[2] / "pamlive-model.json").write_text(json.dumps(
        {**json.loads((members[2] / "pamlive-model.json").read_text()), "segment_s": 3.0}))
    with pytest.raises(SystemExit, match="segment_s"):
        ensemble([str(tmp_path / "bad"), *map(str, members)])


def _analyze(files: list[Path], out: Path) -> tuple[dict, dict]:
    """``pamlive analyze`` with the shipped package and config: (detections by stem,
    highest window score by stem)."""
    from pamlive.analyze import analyze_files
    from pamlive.evaluate import load_tables

    package = load_model_package("builtin:narw")
    result = analyze_files(files, package, out, hop_s=0.5, scores=True, progress=False)
    assert not result.failed
    top = {}
    for f in files:
        rows = (out / f"{f.stem}.scores.csv").read_text().splitlines()
        col = rows[0].split(",").index("right_whale")
        top[f.stem] = max(float(r.split(",")[col]) for r in rows[1:])
    return load_tables([out], "right_whale"), top


def test_off_site_right_whales_are_heard_and_vessel_noise_is_not(shared_dir, tmp_path):
    files = [shared_dir / "data/pamguard-tutorial/right_whale_example.wav",
             shared_dir / "data/other-sites/southern_right_whale_clip1.wav",
             shared_dir / "data/other-sites/vessel_noise_2min.wav"]
    dets, top = _analyze(files, tmp_path)
    assert top["right_whale_example"] > 0.98  # PAMGuard's GenericDLClassifierTest bar
    assert len(dets["right_whale_example"]) >= 1
    assert len(dets["southern_right_whale_clip1"]) == 1  # 1.6 s: one padded window
    assert dets["vessel_noise_2min"] == []


def test_judge_lists_each_false_alarm_with_the_koogu_score_inside_it(monkeypatch):
    """judge_narw.false_alarms: detections overlapping an annotated call are not false
    alarms; each other one carries the Koogu model's highest clip score inside it."""
    sys.path.insert(0, str(REPO / "training"))
    try:
        import judge_narw
        import narw_teacher
    finally:
        sys.path.remove(str(REPO / "training"))
    from pamlive.evaluate import Event

    starts = np.arange(0.0, 30.0, 0.5)
    scores = np.zeros_like(starts)
    scores[(starts >= 2.5) & (starts <= 3.0)] = 0.999  # the annotated call at 4-5 s
    scores[starts == 12.0] = 0.995  # unannotated, where Koogu hears an upcall
    scores[starts == 20.0] = 0.99  # unannotated, where Koogu hears nothing
    koogu_t = np.arange(1.125, 30.0, 0.25)
    koogu_s = np.where(np.abs(koogu_t - 13.125) < 0.2, 0.97, 0.1)
    monkeypatch.setattr(narw_teacher, "cached_koogu", lambda shared, path: (koogu_t, koogu_s))
    run = judge_narw.Analysed({"day": starts}, {"day": scores}, {"day": 30 / 3600}, {})
    calls = {"day": [Event(4.0, 5.0, 1.0)]}
    found = judge_narw.false_alarms(run, calls, 0.98, 10, Path("shared"), [Path("day.wav")])
    assert [(d.start, d.end) for _, d, _ in found] == [(12.0, 14.0), (20.0, 22.0)]
    assert [k for *_, k in found] == pytest.approx([0.97, 0.1])
    assert judge_narw.false_alarms(run, calls, 0.999, 10, Path("shared"), [Path("day.wav")]) == []
