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


def _fails(source: Path, out: Path, *needles: str) -> str:
    with pytest.raises(ModelError) as info:
        import_model(source, out)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    return message


def test_corrupt_zip(tmp_path: Path) -> None:
    bad = tmp_path / "broken.kt"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    _fails(bad, tmp_path / "pkg", "broken.kt", "zip")


def test_truncated_zip(shared_dir: Path, tmp_path: Path) -> None:
    data = (shared_dir / NARW_KT).read_bytes()
    cut = tmp_path / "cut.kt"
    cut.write_bytes(data[: len(data) // 2])
    _fails(cut, tmp_path / "pkg", "cut.kt")


def test_missing_metadata_file(shared_dir: Path, tmp_path: Path) -> None:
    kt = _rezip(shared_dir / NARW_KT, tmp_path / "norepr.kt", {"audio_repr.json": None})
    _fails(kt, tmp_path / "pkg", "audio_repr.json", "missing")


def test_transform_pamlive_lacks_is_named(shared_dir: Path, tmp_path: Path) -> None:
    doc = {"spectrogram": {"rate": "1000 Hz", "window": "0.256 s", "step": "0.032 s",
                           "freq_min": "0 Hz", "freq_max": "500 Hz", "window_func": "hamming",
                           "type": "MagSpectrogram", "duration": "3.0 s",
                           "transforms": [{"name": "enhance_signal", "enhancement": 1.0}]}}
    kt = _rezip(shared_dir / NARW_KT, tmp_path / "enhance.kt",
                {"audio_repr.json": json.dumps(doc).encode()})
    _fails(kt, tmp_path / "pkg", "enhance_signal")


@pytest.mark.parametrize(("change", "needle"), [
    ({"type": "MelSpectrogram"}, "MelSpectrogram"),
    ({"window_func": "blackman"}, "blackman"),
    ({"rate": "fast"}, "rate"),
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
        "load_audio", "normalize_wav", "spectrogramketos", "freq_compression",
        "amplitude_to_decibel", "reduce_tonal_noise", "normalisestd"]
    assert rep.segment_samples == 256 * 196 + 510


def test_animalspot_is_refused(tmp_path: Path) -> None:
    pk = tmp_path / "model.pk"
    pk.write_bytes(b"\x80\x04")
    _fails(pk, tmp_path / "pkg", "AnimalSpot")


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
    message = _fails(folder, tmp_path / "pkg", "Lgamma")
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
    _fails(folder, tmp_path / "pkg", "simulated failure")


def test_pdtf_transform_pamlive_lacks_is_named(shared_dir: Path, tmp_path: Path) -> None:
    folder = _generic_dir(shared_dir, tmp_path)
    pdtf = folder / "right_whale.pdtf"
    doc = json.loads(pdtf.read_text())
    doc["transforms"].append({"name": "spec_flip_sideways", "params": {}})
    pdtf.write_text(json.dumps(doc))
    _fails(folder, tmp_path / "pkg", "spec_flip_sideways")


@pytest.mark.parametrize(("fmin", "fmax"), [(0, 500), (50, 300), (100, 500)])
def test_ketos_chain_shape_is_the_model_input(fmin: float, fmax: float) -> None:
    """The translated chain produces exactly the (frames, bins) the model is given."""
    from pamlive.dsp.chain import TransformChain

    rep = translate({"spectrogram": {"rate": "1000 Hz", "window": "0.256 s", "step": "0.032 s",
                                     "duration": "3.0 s", "type": "MagSpectrogram",
                                     "freq_min": f"{fmin} Hz", "freq_max": f"{fmax} Hz"}}, "k")
    shape = TransformChain(rep.transforms).output_shape(rep.segment_samples)
    assert tuple(shape) == rep.shape
    assert rep.shape[0] == 94  # ceil(3.0 s / 32 ms)
    width = 1000 / 256
    assert rep.shape[1] == sum(fmin <= k * width <= fmax for k in range(129))


def test_koogu_savedmodel_without_rate_asks_for_it(shared_dir: Path, tmp_path: Path) -> None:
    """Koogu's right whale model has no assets/audio_settings.json: no rate is guessed."""
    _fails(shared_dir / "models/koogu-narw/koogu_narw_model", tmp_path / "pkg",
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
