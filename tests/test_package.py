import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pamlive.errors import ModelError
from pamlive.inference.classifier import Classifier
from pamlive.inference.package import load_model_package


def test_directory_and_zip_load_the_same(tonal_package: Path, tmp_path: Path) -> None:
    zpath = tmp_path / "pkg.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in tonal_package.iterdir():
            zf.write(f, f"tonal/{f.name}")
    a, b = load_model_package(tonal_package), load_model_package(zpath)
    assert a.class_names == b.class_names == ["noise", "right_whale"]
    assert b.chain().output_shape(b.segment_samples) == (40, 40)
    x = np.random.default_rng(0).random((3, 40, 40), dtype=np.float32)
    np.testing.assert_array_equal(Classifier(a).predict(x), Classifier(b).predict(x))


def test_scores_are_probabilities_from_the_graph(tonal_package: Path) -> None:
    clf = Classifier(load_model_package(tonal_package))
    x = np.random.default_rng(1).random((4, 40, 40), dtype=np.float32)
    logit = (x.reshape(4, -1) ** 2).sum(axis=1) - 6.0  # what the test graph computes
    expect = 1 / (1 + np.exp(-logit))
    np.testing.assert_allclose(clf.predict(x)[:, 1], expect, rtol=1e-5)


def copy_pkg(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize(
    ("breakage", "fragment"),
    [
        (lambda d: (d / "model.onnx").unlink(), "model.onnx is missing"),
        (lambda d: (d / "pamlive-model.json").write_text("{"), "unreadable model metadata"),
        (lambda d: (d / "model.onnx").write_bytes(b"garbage"), "cannot load ONNX model"),
        (lambda d: _edit(d, class_names=["a", "b", "c"]), "thresholds must name every class"),
        (lambda d: _edit(d, transforms=[{"name": "load_audio", "params": {"sr": 2000}},
                                        {"name": "warp_drive", "params": {}}]),
         "unknown transform 'warp_drive'"),
    ],
)
def test_broken_packages_name_the_problem(tonal_package: Path, tmp_path: Path, breakage,
                                          fragment: str) -> None:
    d = copy_pkg(tonal_package, tmp_path / "p")
    breakage(d)
    with pytest.raises(ModelError, match=fragment):
        pkg = load_model_package(d)
        pkg.chain()
        Classifier(pkg)


def _edit(d: Path, **changes) -> None:
    meta = json.loads((d / "pamlive-model.json").read_text())
    meta.update(changes)
    (d / "pamlive-model.json").write_text(json.dumps(meta))


def test_corrupt_zip(tmp_path: Path) -> None:
    (tmp_path / "m.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelError, match="not a valid zip"):
        load_model_package(tmp_path / "m.zip")


def test_pamguard_pdtf_beside_onnx_is_accepted(tonal_package: Path, tmp_path: Path,
                                               shared_dir: Path) -> None:
    d = tmp_path / "pg"
    d.mkdir()
    shutil.copy(tonal_package / "model.onnx", d / "right_whale.onnx")
    shutil.copy(shared_dir / "models/pamguard-right-whale/right_whale_DL_settings.pdtf", d)
    pkg = load_model_package(d)
    assert pkg.class_names == ["Noise", "Right Whale"]
    assert pkg.segment_s == 2.0 and pkg.sample_rate == 2000
    assert pkg.binary == {"Noise": False, "Right Whale": True}
    assert pkg.chain().output_shape(pkg.segment_samples)[-1] == 40
    # a PAMGuard-trained model gets PAMGuard's own transform numerics
    exact = {t.name for t in pkg.transforms if t.params.get("pamguard_exact")}
    assert exact == {"spectrogram", "freq_compression", "norm_row_sum"}


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [  # issue 13, fault 3: each of these was a traceback, a 74 GiB allocation or silence
        ({"segment_s": -2}, "segment_s must be positive, got -2.0"),
        ({"segment_s": 1e7}, "segment_s must be at most 600 s, got 10000000.0"),
        ({"segment_s": float("nan")}, "segment_s must be a finite number, got nan"),
        ({"segment_s": 500, "sample_rate": 384000}, "samples per window, must be 1..16777216"),
        ({"sample_rate": 2000.5}, "sample_rate must be a whole number of Hz"),
        ({"thresholds": {"noise": 1.0, "right_whale": 7}},
         "thresholds.right_whale must be in 0..1, got 7.0"),
        ({"thresholds": {"noise": 1.0, "right_whale": float("nan")}},
         "thresholds.right_whale must be a finite number, got nan"),
        ({"thresholds": {"noise": 1.0, "right_whale": "0.9"}},
         "thresholds.right_whale must be a number, got '0.9'"),
        ({"freq_range": [47, float("inf")]}, "freq_range must be a finite number, got inf"),
    ],
)
def test_bad_package_numbers_name_the_problem(tonal_package: Path, tmp_path: Path, changes,
                                              fragment: str) -> None:
    d = copy_pkg(tonal_package, tmp_path / "p")
    _edit(d, **changes)
    with pytest.raises(ModelError) as err:
        load_model_package(d)
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(str(d / "pamlive-model.json"))


def test_analyze_refuses_a_hop_that_is_not_a_finite_number(tonal_package: Path, tmp_path: Path,
                                                            capsys) -> None:
    from pamlive.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[model]\npath = '{tonal_package}'\n")
    wav = tmp_path / "x.wav"
    for hop in ("nan", "inf"):
        with pytest.raises(SystemExit) as exit_:
            main(["analyze", str(wav), "-c", str(cfg), "-o", str(tmp_path / "o"), "--hop", hop])
        assert exit_.value.code == 2
        assert f"argument --hop: must be a finite number, got '{hop}'" in capsys.readouterr().err
    assert main(["analyze", str(wav), "-c", str(cfg), "-o", str(tmp_path / "o"),
                 "--hop", "1e9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"pamlive: error: {cfg}: [model] hop_s must be at most 600 s, got 1000000000.0"
