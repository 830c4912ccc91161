"""A Tethys Detections document (Tethys 3, namespace ``http://tethys.sdsu.edu/schema/1.0``).

Why this format: NOAA's passive acoustic archive and PAMGuard's export hold detections as
Tethys documents, so a lab hands over a survey in it. Element order follows the schema's
sequences (docs/tethys.md, "The document"): Detections = Id, Description, DataSource,
Algorithm, UserId, Effort, OnEffort; Effort = Start, End, Kind+ (SpeciesId, Call,
Granularity); Detection = Input_file, Start, End, Event, SpeciesId, Call, Parameters
(Score, UserDefined). A detection's validation state (the operator's latest verdict,
``docs/alerts.md``, "Validation") goes in its ``Parameters/UserDefined``, which the
schema leaves open: ``Validation``, ``ValidatedBy``, ``ValidatedUtc``, ``ValidatedClass``
(a species correction), ``ValidationNote``; a detection without a verdict has
``Validation`` ``unvalidated``. The document's ``QualityAssurance`` stays out: its
content model was not at hand to check against.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pamlive import __version__
from pamlive.errors import PamliveError
from pamlive.export.species import Species
from pamlive.export.survey import Record, Survey
from pamlive.utc import utc_iso

NS = "http://tethys.sdsu.edu/schema/1.0"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
GRANULARITY = "call"  # one Detection per detection, with its own start and end


@dataclass(frozen=True)
class Header:
    """Who made the document, for what, and how the detector was set."""

    id: str
    deployment: str
    user: str
    model: str  # name
    model_version: str
    project: str = ""
    hop_s: float | None = None
    max_merge: int | None = None
    thresholds: Mapping[str, float] = field(default_factory=dict)  # class -> threshold


def _sub(parent: ET.Element, tag: str, text: object = None) -> ET.Element:
    el = ET.SubElement(parent, f"{{{NS}}}{tag}")
    if text is not None:
        el.text = str(text)
    return el


def document(survey: Survey, header: Header, species: Mapping[str, Species]) -> ET.Element:
    """The Detections element of a survey; ``species`` maps every class it names."""
    root = ET.Element(f"{{{NS}}}Detections")
    root.set(f"{{{XSI}}}schemaLocation", f"{NS} tethys.xsd")
    _sub(root, "Id", header.id)
    description = _sub(root, "Description")
    if header.project:
        _sub(description, "Objectives", f"passive acoustic monitoring, project {header.project}")
    _sub(description, "Abstract", f"{len(survey.records)} detection(s) of "
         f"{', '.join(sorted(species))} by pamlive at {header.deployment}")
    _sub(description, "Method", f"deep-learning detector {header.model} "
         f"{header.model_version}: windows at or over threshold merged into detections")
    _sub(_sub(root, "DataSource"), "DeploymentId", header.deployment)
    _algorithm(_sub(root, "Algorithm"), header, species)
    _sub(root, "UserId", header.user)
    effort = _sub(root, "Effort")
    _sub(effort, "Start", utc_iso(survey.start))
    _sub(effort, "End", utc_iso(survey.end))
    for code in sorted(set(species.values()), key=lambda s: (s.tsn, s.call)):
        kind = _sub(effort, "Kind")
        _sub(kind, "SpeciesId", code.tsn)
        if code.call:
            _sub(kind, "Call", code.call)
        _sub(kind, "Granularity", GRANULARITY)
    on = _sub(root, "OnEffort")
    for record in survey.records:
        _detection(_sub(on, "Detection"), record, species[record.class_name], survey.judged)
    return root


def _algorithm(alg: ET.Element, header: Header, species: Mapping[str, Species]) -> None:
    _sub(alg, "Method", "pamlive detector: model scores over sliding windows, merged")
    _sub(alg, "Software", "pamlive")
    _sub(alg, "Version", __version__)
    params = _sub(alg, "Parameters")
    _sub(params, "Model", header.model)
    _sub(params, "ModelVersion", header.model_version)
    for name in sorted(species):
        if name in header.thresholds:
            _sub(params, "Threshold", repr(header.thresholds[name])).set("Class", name)
    if header.hop_s is not None:
        _sub(params, "Hop_s", repr(header.hop_s))
    if header.max_merge is not None:
        _sub(params, "MaxMerge", header.max_merge)


def _detection(det: ET.Element, record: Record, code: Species, judged: bool) -> None:
    if record.input_file is not None:
        _sub(det, "Input_file", record.input_file)
    _sub(det, "Start", utc_iso(record.start))
    _sub(det, "End", utc_iso(record.end))
    _sub(det, "Event", record.event)
    _sub(det, "SpeciesId", code.tsn)
    if code.call:
        _sub(det, "Call", code.call)
    params = _sub(det, "Parameters")
    _sub(params, "Score", repr(record.score))
    fields = [("Bearing_deg", repr(record.bearing_deg))] if record.bearing_deg is not None \
        else []
    if judged:  # tables keep no verdicts: nothing is said for them
        fields += _validation(record)
    if fields:
        user = _sub(params, "UserDefined")
        for tag, value in fields:
            _sub(user, tag, value)


def _validation(record: Record) -> list[tuple[str, str]]:
    """The operator's latest verdict as ``UserDefined`` fields, or ``unvalidated``."""
    verdict = record.verdict
    if verdict is None:
        return [("Validation", "unvalidated")]
    fields = [("Validation", str(verdict["verdict"])), ("ValidatedBy", str(verdict["operator"])),
              ("ValidatedUtc", str(verdict["validated_utc"]))]
    if verdict.get("validated_class", record.class_name) != record.class_name:
        fields.append(("ValidatedClass", str(verdict["validated_class"])))
    if verdict.get("note"):
        fields.append(("ValidationNote", str(verdict["note"])))
    return fields


def write(path: Path, root: ET.Element) -> None:
    """Write whole or not at all: a half-written archive must not look like a survey."""
    ET.register_namespace("", NS)
    ET.register_namespace("xsi", XSI)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    tmp = path.with_name(path.name + ".part")
    try:
        tree.write(tmp, encoding="UTF-8", xml_declaration=True)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PamliveError(f"cannot write {path}: {exc.strerror or exc}") from None
