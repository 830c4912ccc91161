"""``pamlive export tethys``: a survey's detections as a Tethys Detections document, for
a lab's end-of-survey hand-over (docs/tethys.md).

From the durable detection log (``--log``) or from analyze's Raven tables (``--raven``
with ``--audio``, whose names give the recordings' start times). ``-c CONFIG`` gives the
station and the detector's settings (threshold, hop, merge); a table export needs it for
the model's name. Bad input is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path

from pamlive.builtin import resolve_config
from pamlive.config import Config, load_config
from pamlive.errors import PamliveError
from pamlive.export import species as species_codes
from pamlive.export import tethys
from pamlive.export.survey import Survey, from_log, from_raven
from pamlive.inference.package import load_model_package


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pamlive export", description=__doc__.splitlines()[0])
    formats = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    t = formats.add_parser("tethys", help="a Tethys Detections document (XML)")
    source = t.add_mutually_exclusive_group(required=True)
    source.add_argument("--log", type=Path, help="the monitor's detection log (SQLite)")
    source.add_argument("--raven", type=Path, nargs="+", metavar="TABLE",
                        help="analyze's Raven tables, or folders of them")
    t.add_argument("--audio", type=Path, nargs="+", metavar="PATH",
                   help="with --raven: the recordings (files or folders) the tables were "
                   "made from; their names hold their start times")
    t.add_argument("-c", "--config", help="the config the detections were made with "
                   "(file or builtin:NAME): station, model, threshold, hop, max_merge")
    t.add_argument("-o", "--output", type=Path, required=True, help="the XML file to write")
    t.add_argument("--species", action="append", default=[], metavar="CLASS=TSN[:CALL]",
                   help="map a model class to its ITIS TSN (and call type); repeatable; "
                   "built in: right_whale=180537:upcall (Eubalaena glacialis)")
    t.add_argument("--deployment", help="Tethys deployment id (default: the config's station)")
    t.add_argument("--project", default="", help="project name, in the description and id")
    t.add_argument("--user", default=None, help="who made the document (default: login name)")
    t.add_argument("--id", dest="doc_id", help="document id (default: "
                   "[project_]deployment_model_start)")
    return p


def _config(args: argparse.Namespace) -> Config | None:
    if args.config is None:
        if args.raven:
            raise PamliveError("--raven needs -c CONFIG: the tables do not name the model")
        return None
    cfg = load_config(resolve_config(args.config))
    if cfg.model.members:
        raise PamliveError(f"{args.config}: an ensemble config; export from the monitor's "
                           "detection log (--log) instead, which names its model")
    return cfg


def _survey(args: argparse.Namespace) -> Survey:
    if args.log is not None:
        return from_log(args.log)
    if not args.audio:
        raise PamliveError("--raven needs --audio: the recordings give the tables' UTC times")
    return from_raven(args.raven, args.audio)


def _model(survey: Survey, cfg: Config | None) -> tuple[str, str, dict[str, float]]:
    """Model name, version and per-class thresholds, from the config's package or the log."""
    if cfg is not None:
        package = load_model_package(cfg.model.path)
        thresholds = {c: t for c, t in {**package.thresholds, **cfg.model.thresholds}.items()
                      if package.binary.get(c)}
        if survey.models and survey.models != {(package.name, package.version)}:
            raise PamliveError(f"the log's detections were made by {_names(survey.models)}, "
                               f"not by {package.name} {package.version} of the config")
        return package.name, package.version, thresholds
    if len(survey.models) != 1:
        raise PamliveError(f"the log holds detections of {_names(survey.models)}: "
                           "export one model's at a time")
    ((name, version),) = survey.models
    return name, version, {}


def _names(models: frozenset[tuple[str, str]]) -> str:
    return ", ".join(f"{n} {v}" for n, v in sorted(models)) or "no named model"


def _deployment(survey: Survey, cfg: Config | None) -> str:
    if cfg is not None:
        return cfg.station
    if len(survey.stations) != 1:
        raise PamliveError(f"the log names stations {', '.join(sorted(survey.stations))}: "
                           "give the Tethys deployment id with --deployment")
    return next(iter(survey.stations))


def export_tethys(args: argparse.Namespace) -> Path:
    cfg = _config(args)
    table = species_codes.species_table(args.species)
    survey = _survey(args)
    codes = species_codes.species_of({r.class_name for r in survey.records}, table)
    name, version, thresholds = _model(survey, cfg)
    deployment = args.deployment or _deployment(survey, cfg)
    header = tethys.Header(
        id=args.doc_id or "_".join(filter(None, (args.project, deployment, name,
                                                 f"{survey.start:%Y%m%dT%H%M%SZ}"))),
        deployment=deployment, user=args.user or getpass.getuser(), model=name,
        model_version=version, project=args.project,
        hop_s=cfg.model.hop_s if cfg is not None else None,
        max_merge=cfg.model.max_merge if cfg is not None else None, thresholds=thresholds)
    tethys.write(args.output, tethys.document(survey, header, codes))
    print(f"{args.output}: {len(survey.records)} detection(s), effort "
          f"{survey.start:%Y-%m-%d %H:%M:%S} to {survey.end:%Y-%m-%d %H:%M:%S} UTC")
    return args.output


def main(argv: list[str]) -> int:
    """Run by ``pamlive export``, which prints a :class:`PamliveError` in one line, exit 2."""
    export_tethys(_parser().parse_args(argv))
    return 0
