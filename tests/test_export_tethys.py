"""`pamlive export tethys`: a survey's detections as a Tethys Detections document.

The Tethys XSD is not shipped (docs/tethys.md, "The schema"), so the tests check the
structure it requires: the element order of its sequences and their required elements
(``REQUIRED`` below), and round-trip the detections: count, times, species, scores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import soundfile as sf
from conftest import tone_in_noise

from pamlive.alerts.log import DetectionLog, LoggedDetection
from pamlive.alerts.schema import BEARING_SCHEMA, detection_body
from pamlive.alerts.validation import validation_body
from pamlive.cli import main
from pamlive.inference.package import load_model_package
from pamlive.raven import read_selection_table
from pamlive.utc import parse_utc

NS = "{http://tethys.sdsu.edu/schema/1.0}"
START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
NARW = load_model_package("builtin:narw")  # the log says which model made it; export checks
# the Tethys Detections schema's sequences as its documentation and PAMGuard's Tethys
# export (nilus: DetectionEffort, DetectionEffortKind, Detection) use them: each element's
# children in order, and which are required. Written without the XSD at hand (docs/tethys.md,
# "The schema"): validating with the real tethys.xsd is still to do
ORDER = {
    "Detections": ["Id", "Description", "DataSource", "Algorithm", "QualityAssurance",
                   "UserId", "Effort", "OnEffort", "OffEffort"],
    "Description": ["Objectives", "Abstract", "Method"],
    "Algorithm": ["Method", "Software", "Version", "Parameters", "SupportSoftware"],
    "Effort": ["Start", "End", "dBReferenceIntensity_uPa", "AnalysisGaps", "Kind"],
    "Kind": ["SpeciesId", "Call", "Granularity", "Parameters"],
    "Detection": ["Input_file", "Start", "End", "Count", "Event", "UnitId", "SpeciesId",
                  "Call", "Parameters", "Image", "Audio"],
}
REQUIRED = {
    "Detections": {"Id", "DataSource", "Algorithm", "Effort"},
    "DataSource": {"DeploymentId"},
    "Algorithm": {"Software", "Version"},
    "Effort": {"Start", "End", "Kind"},
    "Kind": {"SpeciesId", "Granularity"},
    "Detection": {"Start", "SpeciesId"},
}


def _tag(el: ET.Element) -> str:
    return el.tag.removeprefix(NS)


def check_structure(el: ET.Element) -> None:
    """Every element in its schema sequence's order, every required child present."""
    name, children = _tag(el), [_tag(c) for c in el]
    assert el.tag.startswith(NS), el.tag
    if name in ORDER:
        positions = [ORDER[name].index(c) for c in children]
        assert positions == sorted(positions), f"{name}: {children} out of schema order"
    assert REQUIRED.get(name, set()) <= set(children), f"{name} lacks a required element"
    for child in el:
        check_structure(child)


def detections_of(path: Path) -> list[dict]:
    """The document's detections as plain values (the round trip's far end)."""
    root = ET.parse(path).getroot()
    check_structure(root)
    out = []
    for det in root.iter(f"{NS}Detection"):
        bearing = det.find(f"{NS}Parameters/{NS}UserDefined/{NS}Bearing_deg")
        out.append({"start": parse_utc(det.findtext(f"{NS}Start")),
                    "end": parse_utc(det.findtext(f"{NS}End")),
                    "tsn": int(det.findtext(f"{NS}SpeciesId")),
                    "call": det.findtext(f"{NS}Call"),
                    "score": float(det.findtext(f"{NS}Parameters/{NS}Score")),
                    "bearing": None if bearing is None else float(bearing.text)})
    return out


def _body(seq: int, start_s: float, score: float, cls: str = "right_whale", **extra) -> dict:
    body = detection_body(run_id="R1", station="buoy-7", class_name=cls, score=score,
                          scores={cls: score}, channels=[0], start_sample=int(start_s * 2000),
                          end_sample=int((start_s + 2.5) * 2000), sample_rate=2000,
                          stream_start_utc=START, model_name="narw-upcall",
                          model_version=NARW.version, **extra)
    return {**body, "seq": seq, "latency_ms": 40.0}


def write_log(path: Path, bodies: list[dict]) -> Path:
    """A log as a monitor writes it: the real writer, one run, a clean end."""
    log = DetectionLog(path)
    log.start_run("R1", "buoy-7")
    log.append([LoggedDetection(b["seq"], parse_utc(b["start_utc"]).timestamp(),
                                json.dumps(b), "bearing" if b["schema"] == BEARING_SCHEMA
                                else "detection") for b in bodies])
    log.end_run("duration")
    log.close()
    return path


def pamlive(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pamlive", *args], capture_output=True,
                          text=True, timeout=300)


def test_log_round_trip(tmp_path: Path) -> None:
    later = _body(3, 40.0, 0.97)
    bearing = {"schema": BEARING_SCHEMA, "run_id": "R1", "seq": 4, "class": "right_whale",
               "start_sample": later["start_sample"], "start_utc": later["start_utc"],
               "bearing_deg": 212.5}
    bodies = [_body(1, 10.0, 0.9981, bearing_deg=45.0), _body(2, 25.5, 0.99625), later,
              bearing]
    log = write_log(tmp_path / "detections.sqlite", bodies)
    out = tmp_path / "survey.xml"
    r = pamlive("export", "tethys", "--log", str(log), "-o", str(out), "--project", "NARW26",
                "-c", "builtin:narw", "--deployment", "buoy-7")
    assert r.returncode == 0, r.stderr
    assert "3 detection(s)" in r.stdout
    got = detections_of(out)
    assert [(d["start"], d["end"], d["score"], d["bearing"]) for d in got] == [
        (parse_utc(b["start_utc"]), parse_utc(b["end_utc"]), b["score"], want)
        for b, want in zip(bodies[:3], (45.0, None, 212.5), strict=True)]
    assert {(d["tsn"], d["call"]) for d in got} == {(180537, "upcall")}

    root = ET.parse(out).getroot()
    effort = root.find(f"{NS}Effort")
    assert effort is not None
    assert parse_utc(effort.findtext(f"{NS}Start")) <= got[0]["start"]
    assert parse_utc(effort.findtext(f"{NS}End")) >= got[-1]["end"]
    assert effort.findtext(f"{NS}Kind/{NS}Granularity") == "call"
    alg = root.find(f"{NS}Algorithm")
    assert alg is not None and alg.findtext(f"{NS}Software") == "pamlive"
    assert alg.findtext(f"{NS}Parameters/{NS}Model") == "narw-upcall"
    assert alg.findtext(f"{NS}Parameters/{NS}Threshold") == str(NARW.thresholds["right_whale"])
    assert root.findtext(f"{NS}DataSource/{NS}DeploymentId") == "buoy-7"


@pytest.mark.slow
def test_raven_tables_of_analyze_round_trip(tmp_path: Path, tonal_package: Path) -> None:
    audio = tmp_path / "buoy7_20260301T120000.flac"
    sf.write(audio, tone_in_noise(8000, 30, [(5.2, 6.8, 180), (20.2, 21.8, 180)]), 8000)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'station = "buoy-7"\n[model]\npath = "{tonal_package}"\nhop_s = 0.5\n')
    r = pamlive("analyze", str(audio), "-c", str(cfg), "-o", str(tmp_path / "tables"))
    assert r.returncode == 0, r.stderr
    rows = read_selection_table(tmp_path / "tables" / "buoy7_20260301T120000.selections.txt")
    assert len(rows) == 2

    out = tmp_path / "survey.xml"
    r = pamlive("export", "tethys", "--raven", str(tmp_path / "tables"), "--audio", str(audio),
                "-c", str(cfg), "-o", str(out))
    assert r.returncode == 0, r.stderr
    got = detections_of(out)
    ms = timedelta(milliseconds=1)
    assert len(got) == len(rows)
    for d, row in zip(got, rows, strict=True):
        assert abs(d["start"] - (START + timedelta(seconds=float(row["Begin Time (s)"])))) < ms
        assert abs(d["end"] - (START + timedelta(seconds=float(row["End Time (s)"])))) < ms
        assert d["score"] == float(row["Score"]) and d["tsn"] == 180537
    root = ET.parse(out).getroot()
    assert root.findtext(f"{NS}Effort/{NS}Start") == "2026-03-01T12:00:00.000Z"
    assert root.findtext(f"{NS}Effort/{NS}End") == "2026-03-01T12:00:30.000Z"
    assert root.findtext(f"{NS}Algorithm/{NS}Parameters/{NS}Hop_s") == "0.5"
    assert root.findtext(f"{NS}OnEffort/{NS}Detection/{NS}Input_file") == audio.name


def _refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["export", "tethys", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.xml"
    missing = tmp_path / "none.sqlite"
    assert str(missing) in _refused(capsys, "--log", str(missing), "-o", str(out))
    empty = write_log(tmp_path / "empty.sqlite", [])
    assert "no detections" in _refused(capsys, "--log", str(empty), "-o", str(out))
    log = write_log(tmp_path / "d.sqlite", [_body(1, 10.0, 0.99)])
    unwritable = tmp_path / "no-such-folder" / "x.xml"
    assert str(unwritable) in _refused(capsys, "--log", str(log), "-o", str(unwritable))
    assert not out.exists()


def test_unknown_class_is_refused_until_mapped(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    log = write_log(tmp_path / "d.sqlite", [_body(1, 10.0, 0.99, cls="humpback"),
                                            _body(2, 30.0, 0.98)])
    out = tmp_path / "x.xml"
    err = _refused(capsys, "--log", str(log), "-o", str(out))
    assert "'humpback'" in err and "--species humpback=TSN" in err
    assert not out.exists()
    assert main(["export", "tethys", "--log", str(log), "-o", str(out),
                 "--species", "humpback=180530:song"]) == 0
    assert [(d["tsn"], d["call"]) for d in detections_of(out)] == [(180530, "song"),
                                                                   (180537, "upcall")]


def _verdict(seq: int, detection: dict, verdict: str, operator: str, **extra) -> dict:
    body = validation_body(detection, {"verdict": verdict, "class": extra.get("cls"),
                                       "note": extra.get("note")}, operator)
    return {**body, "run_id": "R1", "seq": seq, "station": "buoy-7"}


def test_each_detection_carries_its_latest_verdict_and_operator(tmp_path: Path) -> None:
    first, second, third = _body(1, 10.0, 0.999), _body(2, 25.0, 0.998), _body(3, 40.0, 0.997)
    verdicts = [_verdict(4, first, "unsure", "ana"),
                _verdict(5, first, "confirmed", "ben", note="clear upcall"),  # the latest
                _verdict(6, second, "rejected", "ana", cls="humpback")]
    log = DetectionLog(tmp_path / "detections.sqlite")
    log.start_run("R1", "buoy-7")
    log.append([LoggedDetection(b["seq"], parse_utc(b["start_utc"]).timestamp(), json.dumps(b),
                                "validation" if "verdict" in b else "detection")
                for b in (first, second, third, *verdicts)])
    log.end_run("duration")
    log.close()
    out = tmp_path / "survey.xml"
    r = pamlive("export", "tethys", "--log", str(tmp_path / "detections.sqlite"), "-o", str(out),
                "-c", "builtin:narw", "--deployment", "buoy-7")
    assert r.returncode == 0, r.stderr
    assert len(detections_of(out)) == 3  # the verdicts are no detections
    states = [{_tag(el): el.text for el in det.iterfind(f"{NS}Parameters/{NS}UserDefined/*")}
              for det in ET.parse(out).getroot().iter(f"{NS}Detection")]
    assert states == [
        {"Validation": "confirmed", "ValidatedBy": "ben",
         "ValidatedUtc": verdicts[1]["validated_utc"], "ValidationNote": "clear upcall"},
        {"Validation": "rejected", "ValidatedBy": "ana",
         "ValidatedUtc": verdicts[2]["validated_utc"], "ValidatedClass": "humpback"},
        {"Validation": "unvalidated"}]
