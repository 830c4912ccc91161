"""pamlive: real-time bioacoustic deep-learning monitor for live hydrophone arrays.

Command line (docs/contracts.md §1): ``pamlive demo|run|analyze|dashboard|devices`` and tools
(``config`` prints a shipped example config, ``sink`` forwards alerts, ``export``
writes them for an archive).

A user error (bad file, config, model, device) prints one line and exits 2 before any
work starts; ``analyze`` exits 1 when some inputs failed and the others were analysed.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
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
    "export": ("pamlive.export.cli", "archive detections: export tethys writes a Tethys "
               "Detections document"),
    "import-model": ("pamlive.importers", "convert a PAMGuard/Ketos/Koogu model to a package"),
    "keys": ("pamlive.alerts.keys", "make CURVE keypairs for the alert bus"),
    "sink": ("pamlive.sinks.cli", "forward alerts to a webhook, an MQTT broker or a serial "
             "line, resuming where it left"),
}


# `pamlive demo` without a config: the embedded simulated array; its data (and that of a
# demo config without data_dir) in a private per-user folder, pamlive.private.demo_data_dir
DEMO_ARRAY = [[0.0, 0.0], [40.0, 0.0], [0.0, 40.0], [40.0, 40.0]]  # metres: a 40 m square
DEMO_DEFAULTS: dict[str, Any] = {
    "station": "demo",
    "source.kind": "simulator",
    # a lively, reproducible array: a call every ~10 s at 8-25 dB SNR, the same each run
    "simulator.call_interval_s": 10.0,
    "simulator.snr_db_range": [8.0, 25.0],
    "simulator.seed": 2013,
    "simulator.geometry": DEMO_ARRAY,
    "array": {"positions": DEMO_ARRAY},  # a bearing for every detection (docs/array.md)
}


CONFIG_HELP = "config file, or builtin:NAME for a shipped example (pamlive config list)"


def finite(text: str) -> float:
    """argparse type: a finite number (``nan`` and ``inf`` parse as floats, and are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _live_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="input device: stable name (or part of it) or index")
    p.add_argument("--channels", type=int, help="number of input channels")
    p.add_argument("--samplerate", type=int, help="input sample rate in Hz")
    p.add_argument("--publish", help="ZeroMQ endpoint of the alert bus "
                   "(default tcp://127.0.0.1:5556)")
    p.add_argument("--replay", help="ZeroMQ endpoint of the replay server (config: [alerts] "
                   "replay); give a second monitor on one machine its own")
    p.add_argument("--headless", action="store_true", help="no dashboard; log to stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pamlive", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pamlive {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="simulated hydrophone array through the live pipeline")
    demo.add_argument("-c", "--config", help="config file or builtin:NAME "
                      "(default: the embedded demo)")
    demo.add_argument("--duration", type=finite, help="stop after this many seconds")
    demo.add_argument("--truth", type=Path, help="write the simulated calls and transients "
                      "as JSON lines (start_utc, end_utc, bearing_deg, snr_db, kind)")
    _live_flags(demo)

    run = sub.add_parser("run", help="the live monitor: capture -> detect -> publish")
    run.add_argument("-c", "--config", required=True, help=CONFIG_HELP)
    run.add_argument("--duration", type=finite, help="stop after this many seconds")
    run.add_argument("--play", nargs="+", metavar="FILE", help="play these recordings "
                     "through the live path at their own pace instead of the configured "
                     "source (config: [source] kind = 'replay', files)")
    _live_flags(run)

    an = sub.add_parser("analyze", help="the detection pipeline over audio files")
    an.add_argument("paths", nargs="+", type=Path, help="WAV/FLAC/AIFF files or folders")
    an.add_argument("-c", "--config", required=True, help=CONFIG_HELP)
    an.add_argument("-o", "--outdir", type=Path, required=True)
    an.add_argument("--hop", type=finite, help="window hop in seconds (config: [model] hop_s)")
    an.add_argument("--threshold", type=finite,
                    help="window-score threshold for every detecting class (overrides the "
                    "config's thresholds)")
    an.add_argument("--detection-threshold", type=finite,
                    help="an event model's (bats) call threshold (config: [model] "
                    "detection_threshold)")
    an.add_argument("--scores", action="store_true",
                    help="also write <stem>.scores.csv: every window's scores, every channel")
    an.add_argument("--no-progress", action="store_true", help="no progress bar")
    an.add_argument("--cluster", metavar="ADDRESS",
                    help="run on Dask: local, local:N (N worker processes) or tcp://HOST:8786 "
                         "(config: [cluster] address); needs pamlive[cluster]")
    an.add_argument("--raven-rows", choices=("detection", "channel"),
                    help="one table row per merged detection (default) or per channel it "
                    "was heard on, Raven's multichannel convention (config: [analyze] "
                    "raven_rows)")

    cfg = sub.add_parser("config", help="the example configs shipped with pamlive")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    cfg_sub.add_parser("list", help="names of the built-in configs")
    show = cfg_sub.add_parser("show", help="print a config, to copy and edit: "
                              "pamlive config show builtin:narw > station.toml")
    show.add_argument("name", help="builtin:NAME (or NAME) or a config file")

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
    if args.replay is not None:
        out["alerts.replay"] = args.replay
    if getattr(args, "play", None):
        out["source.kind"] = "replay"
        out["source.files"] = [str(Path(f).resolve()) for f in args.play]  # from here
    return out


def _cmd_config(args: argparse.Namespace) -> int:
    from pamlive.builtin import PREFIX, config_names, resolve_config

    if args.config_command == "list":
        print("\n".join(PREFIX + name for name in config_names()))
        return 0
    name = args.name if args.name.startswith(PREFIX) or Path(args.name).exists() \
        else PREFIX + args.name
    path = resolve_config(name)
    try:
        sys.stdout.write(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PamliveError(f"cannot read config {path}: {exc.strerror or exc}") from None
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from pamlive.analyze import Outputs, analyze_kind
    from pamlive.builtin import resolve_config
    from pamlive.config import load_config
    from pamlive.kinds import open_kind

    cfg = load_config(resolve_config(args.config),
                      None if args.hop is None else {"model.hop_s": args.hop})
    model = cfg.model
    for flag, value in (("--threshold", args.threshold),
                        ("--detection-threshold", args.detection_threshold)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise PamliveError(f"{flag} must be in 0..1, got {value}")
    kind = open_kind(model).with_thresholds(args.threshold, args.detection_threshold)
    progress = not args.no_progress and sys.stderr.isatty()
    array = cfg.array
    raven_rows = args.raven_rows or cfg.analyze.raven_rows
    address = args.cluster or cfg.cluster.address
    if address:
        package = kind.clustered()
        from pamlive.cluster.run import analyze_on_cluster, connect
        from pamlive.inference.locate import locate_package

        if array is not None or args.scores or raven_rows != "detection":
            raise PamliveError("--cluster runs one model with one row per detection, without "
                               "[array] or --scores, for now: run analyze without --cluster "
                               "for those")
        model_path = model.path
        if not model_path.startswith("builtin:"):
            # workers read it from shared storage
            model_path = str(locate_package(model_path).resolve())
        with connect(address) as client:
            print(f"pamlive: Dask dashboard: {client.dashboard_link}", file=sys.stderr)
            run = analyze_on_cluster(
                client, args.paths, package, model_path, args.outdir,
                hop_s=model.hop_s, max_merge=model.max_merge,
                thresholds=kind.model.thresholds, chunk_s=cfg.cluster.chunk_s,
                progress=progress)
        for skipped in run.skipped:
            print(f"{skipped}: complete in an earlier run, skipped")
        result = run.result
    else:
        result = analyze_kind(args.paths, kind, args.outdir, progress=progress,
                              outputs=Outputs(args.scores, array, raven_rows))
    for f in result.files:
        if f.table is not None:
            found = len(f.calls) + len(f.detections)
            print(f"{f.path}: {found} {kind.noun} -> {f.table}")
    if result.gate is not None:
        print(f"pamlive: {result.gate.share()}")
    if result.failed:
        print(f"pamlive: {len(result.failed)} of {len(result.files)} input(s) failed",
              file=sys.stderr)
        return 1
    return 0


def _cmd_live(args: argparse.Namespace, demo: bool) -> int:
    from pamlive.app import run_demo, run_monitor
    from pamlive.builtin import resolve_config
    from pamlive.config import load_config
    from pamlive.private import claim_private_dir, demo_data_dir

    if args.duration is not None and args.duration <= 0:
        raise PamliveError(f"--duration must be positive, got {args.duration}")
    overrides = _overrides(args)
    if demo and args.config is None:
        overrides = {**DEMO_DEFAULTS, **overrides}
    demo_dir = demo_data_dir()  # the demo's unless its config names one
    cfg = load_config(None if args.config is None else resolve_config(args.config), overrides,
                      defaults={"data_dir": str(demo_dir)} if demo else None)
    if demo:
        if cfg.data_dir == demo_dir:
            claim_private_dir(demo_dir)
        return run_demo(cfg, headless=args.headless, duration_s=args.duration,
                        truth_path=args.truth)
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
        if args.command == "config":
            return _cmd_config(args)
        return _cmd_live(args, demo=args.command == "demo")
    except PamliveError as exc:
        print(f"pamlive: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
