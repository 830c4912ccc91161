"""``pamlive import-model`` errors: one line naming the problem, never a half-written
package; plus the PAMGuard generic formats (SavedModel folder, TorchScript) on small
models built here, with ONNX-vs-original parity.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from import_helpers import import_fails

from pamlive.errors import ModelError
from pamlive.importers import import_model, main
from pamlive.importers.ketos_repr import translate
from pamlive.importers.writer import run_onnx

NARW_KT = "models/ketos-narw/narw.kt"
RIGHT_WHALE_PDTF = "models/pamguard-right-whale/right_whale_DL_settings.pdtf"


def _rezip(src: Path, dest: Path, replace: dict[str, bytes | None]) -> Path:
    """Copy a zip archive, replacing (bytes) or dropping (None) some members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for item in zin.infolist():
            if item.filename in replace:
                if replace[item.filename] is not None:
                    zout.writestr(item.filename, replace[item.filename])
            else:
                zout.writestr(item, zin.read(item.filename))
    return dest




def test_corrupt_zip(tmp_path: Path) -> None:
    bad = tmp_path / "broken.kt"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    import_fails(bad, tmp_path / "pkg", "broken.kt", "zip")


def test_truncated_zip(shared_dir: Path, tmp_path: Path) -> None:
    data = (shared_dir / NARW_KT).read_bytes()
    cut = tmp_path / "cut.kt"
    cut.write_bytes(data[: len(data) // 2])
    import_fails(cut, tmp_path / "pkg", "cut.kt")


def test_missing_metadata_file(shared_dir: Path, tmp_path: Path) -> None:
    kt = _rezip(shared_dir / NARW_KT, tmp_path / "norepr.kt", {"audio_repr.json": None})
    import_fails(kt, tmp_path / "pkg", "audio_repr.json", "missing")


def test_transform_pamlive_lacks_is_named(shared_dir: Path, tmp_path: Path) -> None:
    doc = {"spectrogram": {"rate": "1000 Hz", "window": "0.256 s", "step": "0.032 s",
                           "freq_min": "0 Hz", "freq_max": "500 Hz", "window_func": "hamming",
                           "type": "MagSpectrogram", "duration": "3.0 s",
                           "transforms": [{"name": "enhance_signal", "enhancement": 1.0}]}}
    kt = _rezip(shared_dir / NARW_KT, tmp_path / "enhance.kt",
                {"audio_repr.json": json.dumps(doc).encode()})
    import_fails(kt, tmp_path / "pkg", "enhance_signal")


@pytest.mark.parametrize(("change", "needle"), [
    ({"type": "MelSpectrogram"}, "MelSpectrogram"),
    ({"window_func": "blackman"}, "blackman"),
    ({"rate": "fast"}, "rate"),
    ({"waveform_transforms": [{"name": "bandpass_filter"}]}, "bandpass_filter"),
    ({"compute_phase": "true"}, "compute_phase"),
    ({"hop_of_the_day": 3}, "hop_of_the_day"),
])
def test_ketos_representations_pamlive_lacks(change: dict, needle: str) -> None:
    spec = {"rate": "1000 Hz", "window": "0.256 s", "step": "0.032 s", "duration": "3.0 s",
            "type": "MagSpectrogram", **change}
    with pytest.raises(ModelError, match=needle):
        translate({"spectrogram": spec}, "x.kt")


def test_ketos_translation_follows_ketos_rounding() -> None:
    """0.051 s at 10 kHz is 510 samples, 0.01955 s rounds up to an even 196, and
    ceil(5 s / 19.6 ms) = 256 frames: the killer whale model's 256 x 256 input."""
    rep = translate({"spectrogram": {"rate": "10000 Hz", "window": "0.051 s",
                                     "step": "0.01955 s", "duration": "5.0 s",
                                     "type": "MagSpectrogram", "normalize_wav": "true",
                                     "transforms": [{"name": "reduce_tonal_noise"},
                                                    {"name": "normalize", "mean": 0.0,
                                                     "std": 1.0}]}}, "kw")
    assert (rep.win_len, rep.step_len, rep.num_segs, rep.n_bins) == (510, 196, 256, 256)
    assert [t.name for t in rep.transforms] == [
        "load_audio_scipy", "normalize_wav", "spectrogramketos", "amplitude_to_decibel",
        "reduce_tonal_noise", "normalisestd"]
    assert rep.transforms[2].params["all_bins"] is True  # Ketos' fft/2 + 1 bins
    assert rep.segment_samples == 256 * 196 + 510


def test_ketos_waveform_options_translate() -> None:
    """Ketos' ``waveform_transforms`` run before ``normalize_wav``; a non-default
    ``resample_method`` is a band-limited interpolator: the stream resampler's kind."""
    base = {"rate": "1000 Hz", "window": "0.256 s", "step": "0.032 s", "duration": "3.0 s",
            "type": "MagSpectrogram"}
    rep = translate({"s": {**base, "resample_method": "kaiser_best", "normalize_wav": "true",
                           "waveform_transforms": [{"name": "normalize", "mean": 0.0,
                                                    "std": 1.0}]}}, "k")
    assert [t.name for t in rep.transforms[:3]] == ["load_audio", "normalize_wav",
                                                     "normalize_wav"]
    assert translate({"s": base}, "k").transforms[0].name == "load_audio_scipy"
    assert translate([{"s": base}], "k").shape == translate({"s": base}, "k").shape


def test_animalspot_is_refused(tmp_path: Path) -> None:
    pk = tmp_path / "model.pk"
    pk.write_bytes(b"\x80\x04")
    import_fails(pk, tmp_path / "pkg", "AnimalSpot")


def test_existing_target_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "pkg"
    out.mkdir()
    (out / "notes.txt").write_text("not a package")
    assert main([str(tmp_path / "whatever.kt"), "-o", str(out), "--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a pamlive model package" in err
    assert (out / "notes.txt").read_text() == "not a package"


# ------------------------------------------------ PAMGuard generic models (built here)


def _generic_dir(shared_dir: Path, tmp_path: Path, unsupported: bool = False) -> Path:
    """A PAMGuard generic TF model: SavedModel + the right whale .pdtf ([-1, 40, 40, 1])."""
    tf = pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    from pamlive.importers.tfconvert import tensorflow

    tensorflow()  # one thread, quiet
    rng = np.random.default_rng(3)

    class Tiny(tf.Module):
        def __init__(self) -> None:
            self.kernel = tf.Variable(rng.standard_normal((3, 3, 1, 4)).astype(np.float32))
            self.dense = tf.Variable(rng.standard_normal((4, 2)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 40, 40, 1], tf.float32)])
        def __call__(self, x):
            h = tf.nn.relu(tf.nn.conv2d(x * 100.0, self.kernel, 1, "SAME"))
            if unsupported:
                h = tf.math.lgamma(h + 1.0)
            return tf.nn.softmax(tf.reduce_mean(h, axis=[1, 2]) @ self.dense)

    folder = tmp_path / "generic"
    module = Tiny()
    tf.saved_model.save(module, str(folder), signatures=module.__call__)
    shutil.copy(shared_dir / RIGHT_WHALE_PDTF, folder / "right_whale.pdtf")
    return folder


@pytest.mark.slow
def test_generic_savedmodel_imports_with_parity(shared_dir: Path, tmp_path: Path) -> None:
    from pamlive.importers import convert
    from pamlive.inference.package import load_model_package

    folder = _generic_dir(shared_dir, tmp_path)
    model = convert(folder, tmp_path / "work")
    x = np.random.default_rng(5).random((5, 40, 40, 1)).astype(np.float32) * 0.05
    diff = np.abs(model.reference(x) - run_onnx(model.onnx_model, x)).max()
    print(f"generic SavedModel: max |TF - ONNX| = {diff:.2e}")
    assert diff < 1e-5
    out = import_model(folder, tmp_path / "pkg")
    pkg = load_model_package(out)
    assert pkg.sample_rate == 2000 and pkg.segment_s == 2.0
    assert pkg.input_shape == [-1, 40, 40, 1]
    assert pkg.transforms[0].name == "load_audio"


def test_unsupported_op_is_named(shared_dir: Path, tmp_path: Path) -> None:
    folder = _generic_dir(shared_dir, tmp_path, unsupported=True)
    message = import_fails(folder, tmp_path / "pkg", "Lgamma")
    assert "unsupported op" in message


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script
def test_torchscript_imports_with_parity(shared_dir: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from pamlive.importers import convert

    torch.manual_seed(0)

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv(x.permute(0, 3, 1, 2) * 100.0))
            return torch.softmax(self.fc(h.mean(dim=(2, 3))), dim=1)

    folder = tmp_path / "torch"
    folder.mkdir()
    torch.jit.script(Tiny().eval()).save(str(folder / "model.pt"))
    shutil.copy(shared_dir / RIGHT_WHALE_PDTF, folder / "model.pdtf")
    model = convert(folder / "model.pt", tmp_path / "work")
    x = np.random.default_rng(6).random((5, 40, 40, 1)).astype(np.float32) * 0.05
    diff = np.abs(model.reference(x) - run_onnx(model.onnx_model, x)).max()
    print(f"TorchScript: max |torch - ONNX| = {diff:.2e}")
    assert diff < 1e-5
    assert model.output_activation == "none"


def test_failed_write_leaves_nothing(shared_dir: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from pamlive.importers import writer

    folder = _generic_dir(shared_dir, tmp_path)

    def refuse(path: Path) -> None:
        raise ModelError(f"{path}: simulated failure while checking the package")

    monkeypatch.setattr(writer, "load_model_package", refuse)
    import_fails(folder, tmp_path / "pkg", "simulated failure")


def test_pdtf_transform_pamlive_lacks_is_named(shared_dir: Path, tmp_path: Path) -> None:
    folder = _generic_dir(shared_dir, tmp_path)
    pdtf = folder / "right_whale.pdtf"
    doc = json.loads(pdtf.read_text())
    doc["transforms"].append({"name": "spec_flip_sideways", "params": {}})
    pdtf.write_text(json.dumps(doc))
    import_fails(folder, tmp_path / "pkg", "spec_flip_sideways")


KETOS_CROPS = json.loads((Path(__file__).parent / "fixtures/frameworks/ketos_crops.json"
                         ).read_text())


@pytest.mark.parametrize("case", KETOS_CROPS,
                         ids=[f"{c['rate']}Hz-{c['freq_min']:g}-{c['freq_max']:g}"
                              for c in KETOS_CROPS])
def test_ketos_crop_keeps_the_bins_ketos_keeps(case: dict) -> None:
    """``freq_min``/``freq_max``: the bins Ketos 2.7.1 itself keeps (its cropped
    MagSpectrogram located in the full one, scripts/make_reference_scores.py), and the
    chain's output is exactly the model input."""
    from pamlive.dsp.chain import TransformChain

    spec = {"rate": f"{case['rate']} Hz", "window": f"{case['window']} s",
            "step": f"{case['step']} s", "duration": "3.0 s", "type": "MagSpectrogram",
            "freq_min": f"{case['freq_min']} Hz", "freq_max": f"{case['freq_max']} Hz"}
    rep = translate({"spectrogram": spec}, "k")
    full = translate({"spectrogram": {**spec, "freq_min": "0 Hz",
                                      "freq_max": f"{case['rate'] / 2} Hz"}}, "k")
    x = np.random.default_rng(1).standard_normal((1, rep.segment_samples)).astype(np.float32)
    got = TransformChain(rep.transforms).apply(x)
    everything = TransformChain(full.transforms).apply(x)
    assert got.shape[1:] == rep.shape
    assert rep.shape[1] == case["bins"]
    first = case["first_bin"]
    np.testing.assert_array_equal(got[0], everything[0][:, first:first + case["bins"]])


def test_koogu_savedmodel_without_rate_asks_for_it(shared_dir: Path, tmp_path: Path) -> None:
    """Koogu's right whale model has no assets/audio_settings.json: no rate is guessed."""
    import_fails(shared_dir / "models/koogu-narw/koogu_narw_model", tmp_path / "pkg",
           "no sample rate", "--sample-rate")


def test_koogu_savedmodel_rate_must_agree_with_its_settings(shared_dir: Path,
                                                            tmp_path: Path) -> None:
    folder = tmp_path / "koogu"
    shutil.copytree(shared_dir / "models/koogu-narw/koogu_narw_model", folder)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # ../shared is read-only
    (folder / "assets/audio_settings.json").write_text(json.dumps({"desired_fs": 1000}))
    with pytest.raises(ModelError, match="contradicts"):
        import_model(folder, tmp_path / "pkg", sample_rate=2000)


def test_wrong_number_of_class_names(shared_dir: Path, tmp_path: Path) -> None:
    folder = _generic_dir(shared_dir, tmp_path)
    with pytest.raises(ModelError, match="3 class names given for a model with 2 outputs"):
        import_model(folder, tmp_path / "pkg", classes=["a", "b", "c"])
    assert not (tmp_path / "pkg").exists()


# ------------------------------------------ PAMGuard's packaging: a zip of model + .pdtf


def _zip_folder(folder: Path, dest: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + str(path.relative_to(folder)))
    return dest


def test_pamguard_zip_of_savedmodel_and_pdtf_imports_as_is(shared_dir: Path,
                                                           tmp_path: Path) -> None:
    from pamlive.importers import convert
    from pamlive.inference.package import load_model_package

    folder = _generic_dir(shared_dir, tmp_path)  # SavedModel + the right whale .pdtf
    archive = _zip_folder(folder, tmp_path / "right_whale.zip", prefix="right_whale/")
    model = convert(archive, tmp_path / "work")
    x = np.random.default_rng(8).random((4, 40, 40, 1)).astype(np.float32) * 0.05
    assert np.abs(model.reference(x) - run_onnx(model.onnx_model, x)).max() < 1e-5
    pkg = load_model_package(import_model(archive, tmp_path / "pkg"))
    assert pkg.sample_rate == 2000 and pkg.segment_s == 2.0
    assert pkg.input_shape == [-1, 40, 40, 1]
    pdtf = json.loads((shared_dir / RIGHT_WHALE_PDTF).read_text())
    assert pkg.class_names == pdtf["class_info"]["name_class"]  # from the metadata
    assert pkg.extra["imported_from"]["file"] == "right_whale.zip"


def test_pamguard_zip_of_onnx_and_pdtf_imports_as_is(shared_dir: Path, tmp_path: Path) -> None:
    """An ONNX model (built here: flatten, dense, softmax) beside the right whale .pdtf."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from pamlive.importers import convert

    w = np.random.default_rng(9).standard_normal((1600, 2)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["scores"], axis=1)],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 40, 40, 1])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 2])],
        [numpy_helper.from_array(w, "w")])
    folder = tmp_path / "onnx"
    folder.mkdir()
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
              str(folder / "model.onnx"))
    shutil.copy(shared_dir / RIGHT_WHALE_PDTF, folder / "model.pdtf")
    archive = _zip_folder(folder, tmp_path / "tiny.zip")
    model = convert(archive, tmp_path / "work")
    x = np.random.default_rng(10).random((3, 40, 40, 1)).astype(np.float32)
    logits = x.reshape(3, -1).astype(np.float64) @ w
    want = np.exp(logits - logits.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    assert np.abs(run_onnx(model.onnx_model, x) - want).max() < 1e-5
    assert model.input_shape == [-1, 40, 40, 1] and model.output_activation == "none"


def test_pamguard_zip_pdtf_with_a_transform_pamlive_lacks(shared_dir: Path,
                                                          tmp_path: Path) -> None:
    folder = _generic_dir(shared_dir, tmp_path)
    pdtf = folder / "right_whale.pdtf"
    doc = json.loads(pdtf.read_text())
    doc["transforms"].append({"name": "clahe", "params": {}})
    pdtf.write_text(json.dumps(doc))
    import_fails(_zip_folder(folder, tmp_path / "m.zip"), tmp_path / "pkg", "clahe", "m.zip")


def test_pamguard_zip_needs_one_model_and_one_pdtf(shared_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "only-metadata"
    folder.mkdir()
    shutil.copy(shared_dir / RIGHT_WHALE_PDTF, folder / "a.pdtf")
    import_fails(_zip_folder(folder, tmp_path / "m.zip"), tmp_path / "pkg", "exactly one model")


def test_segment_resampling_only_for_load_audio_scipy_at_another_rate() -> None:
    from pamlive.dsp.chain import TransformChain, TransformSpec
    from pamlive.dsp.segment_resample import needs_segment_resampling

    scipy_chain = TransformChain([TransformSpec("load_audio_scipy", {"sr": 1000})])
    poly_chain = TransformChain([TransformSpec("load_audio", {"sr": 1000})])
    assert needs_segment_resampling(scipy_chain, 2000)
    assert not needs_segment_resampling(scipy_chain, 1000)
    assert not needs_segment_resampling(poly_chain, 2000)
