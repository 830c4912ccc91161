"""The package's optional "output" object: absent means window scores; events are checked."""

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pamlive.errors import ModelError
from pamlive.inference.heatmaps import EventModel
from pamlive.inference.package import load_model_package

EVENTS: dict[str, Any] = {
    "kind": "events", "decoder": "batdetect2", "min_freq_hz": 10000, "max_freq_hz": 120000,
    "frame_step_s": 128 / 256000, "frame_offset_s": 384 / 256000, "resize_factor": 0.5,
    "nms_kernel_size": 9, "nms_top_k_per_sec": 200, "detection_threshold": 0.01,
    "width_multiple": 32,
}


def _package(src: Path, dst: Path, output: Any) -> Path:
    shutil.copytree(src, dst)
    meta = dst / "pamlive-model.json"
    doc = json.loads(meta.read_text())
    if output is not None:
        doc["output"] = output
    meta.write_text(json.dumps(doc))
    return dst


def test_no_output_key_is_window_scores(tonal_package: Path) -> None:
    assert load_model_package(tonal_package).events is None


def test_scores_kind_is_window_scores(tonal_package: Path, tmp_path: Path) -> None:
    pkg = load_model_package(_package(tonal_package, tmp_path / "p", {"kind": "scores"}))
    assert pkg.events is None
    assert "output" not in pkg.extra


def test_events_output_is_parsed(tonal_package: Path, tmp_path: Path) -> None:
    pkg = load_model_package(_package(tonal_package, tmp_path / "p", EVENTS))
    spec = pkg.events
    assert spec is not None
    assert (spec.decoder, spec.nms_kernel_size, spec.width_multiple) == ("batdetect2", 9, 32)
    assert spec.sample_rate == pkg.sample_rate
    # 128 / 256000 s at the package's rate (2 kHz here) is 1 sample; 384 / 256000 s is 3
    assert (spec.step_samples, spec.offset_samples) == (1.0, 3.0)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"kind": "heatmap"}, "output.kind must be 'scores' or 'events'"),
        ({"decoder": "sonobat"}, "output.decoder must be one of"),
        ({"nms_kernel_size": 8}, "output.nms_kernel_size must be odd"),
        ({"nms_kernel_size": 2.5}, "output.nms_kernel_size must be"),
        ({"detection_threshold": 1.5}, "output.detection_threshold must be"),
        ({"detection_threshold": "low"}, "output.detection_threshold must be"),
        ({"resize_factor": 0}, "output.resize_factor must be"),
        ({"frame_step_s": -1}, "output.frame_step_s must be"),
        ({"width_multiple": 0}, "output.width_multiple must be"),
        ({"nms_top_k_per_sec": float("nan")}, "output.nms_top_k_per_sec must be"),
        ({"min_freq_hz": 130000}, "min_freq_hz must be below max_freq_hz"),
        ({"colour": "red"}, "output: unknown key"),
        ({"width_multiple": None}, "output.width_multiple must be"),
    ],
)
def test_bad_output_is_one_line_naming_it(tonal_package: Path, tmp_path: Path,
                                          change: dict[str, Any], fragment: str) -> None:
    output = {**EVENTS, **change}
    with pytest.raises(ModelError, match=fragment) as err:
        load_model_package(_package(tonal_package, tmp_path / "p", output))
    assert "\n" not in str(err.value)


def test_missing_event_numbers_are_named(tonal_package: Path, tmp_path: Path) -> None:
    output = {k: v for k, v in EVENTS.items() if k != "frame_offset_s"}
    with pytest.raises(ModelError, match=r"output: missing key.*frame_offset_s"):
        load_model_package(_package(tonal_package, tmp_path / "p", output))


def test_output_must_be_an_object(tonal_package: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="output must be an object"):
        load_model_package(_package(tonal_package, tmp_path / "p", ["events"]))


def test_missing_batdetect2_package_names_the_import_command(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"pamlive import-model batdetect2 -o .*batdetect2-uk"):
        load_model_package(tmp_path / "batdetect2-uk")
    with pytest.raises(ModelError, match=r"model package not found$"):
        load_model_package(tmp_path / "other")


def test_event_model_refuses_a_scores_package(tonal_package: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not an event model"):
        EventModel(load_model_package(tonal_package))
    pkg = load_model_package(_package(tonal_package, tmp_path / "p", EVENTS))
    with pytest.raises(ModelError, match="an event model takes 'spectrogram'"):
        EventModel(pkg)
