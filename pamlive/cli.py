"""pamlive: real-time bioacoustic deep-learning monitor for live hydrophone arrays.

Command line (docs/contracts.md §1): ``pamlive demo|run|analyze|dashboard|devices`` and tools.

A user error (bad file, config, model, device) prints one line and exits 2 before any
work starts; ``analyze`` exits 1 when some inputs failed and the others were analysed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pamlive import __version__
from pamlive.errors import PamliveError

# subcommands whose parsing belongs to their own module: name -> (module, help)
DELEGATED = {
    "dashboard": ("pamlive.dashboard", "terminal dashboard subscribed to a running monitor"),
    "devices": ("pamlive.devices", "list the input devices PortAudio sees"),
    "evaluate": ("pamlive.evaluate", "score Raven tables against an annotation CSV"),
    "import-model": ("pamlive.importers", "convert a PAMGuard/Ketos/Koogu model to a package"),
    "keys": ("pamlive.alerts.keys", "make CURVE keypairs for the alert bus"),
}


# `pamlive demo` without a config: the embedded simulated array, data in a temp folder
DEMO_DEFAULTS: dict[str, Any] = {
    "station": "demo",
    "data_dir": str(Path(tempfile.gettempdir()) / "pamlive-demo"),
    "source.kind": "simulator",
    # a lively, reproducible array: a call every ~10 s at 8-25 dB SNR, the same each run
    "simulator.call_interval_s": 10.0,
    "simulator.snr_db_range": [8.0, 25.0],
    "simulator.seed": 2013,
}


def _live_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="input device: stable name (or part of it) or index")
    p.add_argument("--channels", type=int, help="number of input channels")
    p.add_argument("--samplerate", type=int, help="input sample rate in Hz")
    p.add_argument("--publish", help="ZeroMQ endpoint of the alert bus "
                   "(default tcp://127.0.0.1:5556)")
    p.add_argument("--headless", action="store_true", help="no dashboard; log to stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pamlive", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pamlive {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="simulated hydrophone array through the live pipeline")
    demo.add_argument("-c", "--config", type=Path, help="config (default: built-in demo)")
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    _live_flags(demo)

    run = sub.add_parser("run", help="the live monitor: capture -> detect -> publish")
    run.add_argument("-c", "--config", type=Path, required=True)
    run.add_argument("--duration", type=float, help="stop after this many seconds")
    _live_flags(run)

    an = sub.add_parser("analyze", help="the detection pipeline over audio files")
    an.add_argument("paths", nargs="+", type=Path, help="WAV/FLAC/AIFF files or folders")
    an.add_argument("-c", "--config", type=Path, required=True)
    an.add_argument("-o", "--outdir", type=Path, required=True)
    an.add_argument("--hop", type=float, help="window hop in seconds (config: [model] hop_s)")
    an.add_argument("--threshold", type=float,
                    help="score threshold for every detecting class (overrides the config)")
    an.add_argument("--no-progress", action="store_true", help="no progress bar")

    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.device is not None:
        out["source.device"] = int(args.device) if args.device.isdigit() else args.device
    if args.channels is not None:
        out["source.channels"] = args.channels
    if args.samplerate is not None:
        out["source.samplerate"] = args.samplerate
    if args.publish is not None:
        out["alerts.publish"] = args.publish
    return out


def _cmd_analyze(args: argparse.Namespace) -> int:
    from pamlive.analyze import analyze_files
    from pamlive.config import load_config
    from pamlive.inference.package import load_model_package

    cfg = load_config(args.config)
    package = load_model_package(cfg.model.path)
    thresholds = dict(cfg.model.thresholds)
    if args.threshold is not None:
        if not 0.0 <= args.threshold <= 1.0:
            raise PamliveError(f"--threshold must be in 0..1, got {args.threshold}")
        thresholds = {c: args.threshold for c, on in package.binary.items() if on}
    result = analyze_files(
        args.paths, package, args.outdir, hop_s=cfg.model.hop_s if args.hop is None else args.hop,
        max_merge=cfg.model.max_merge, thresholds=thresholds, threads=cfg.model.threads,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    for f in result.files:
        if f.table is not None:
            print(f"{f.path}: {len(f.detections)} detection(s) -> {f.table}")
    if result.failed:
        print(f"pamlive: {len(result.failed)} of {len(result.files)} input(s) failed",
              file=sys.stderr)
        return 1
    return 0


def _cmd_live(args: argparse.Namespace, demo: bool) -> int:
    from pamlive.app import run_demo, run_monitor
    from pamlive.config import load_config

    if args.duration is not None and args.duration <= 0:
        raise PamliveError(f"--duration must be positive, got {args.duration}")
    overrides = _overrides(args)
    if demo and args.config is None:
        overrides = {**DEMO_DEFAULTS, **overrides}
    cfg = load_config(args.config, overrides)
    if demo:
        return run_demo(cfg, headless=args.headless, duration_s=args.duration)
    return run_monitor(cfg, headless=args.headless, duration_s=args.duration)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in DELEGATED:
            module = importlib.import_module(DELEGATED[argv[0]][0])
            return int(module.main(argv[1:]))
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 2
        if args.command == "analyze":
            return _cmd_analyze(args)
        return _cmd_live(args, demo=args.command == "demo")
    except PamliveError as exc:
        print(f"pamlive: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
