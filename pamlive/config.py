"""TOML configuration -> one frozen, validated dataclass per table, parsed once.

Each table of the file is a :class:`~pamlive.checks.Section`: its fields declare their
type, range and choices, checked by the one checker in :mod:`pamlive.checks` on
construction, and :meth:`rules` checks what spans fields. An unknown section or key, a
wrong type, NaN/Inf or an out-of-range value is a :class:`~pamlive.errors.ConfigError`
naming it (``c.toml: [model] hop_s must be a finite number, got nan``). The field
sections (``[watchdog]``, ``[clips]``, ``[archive]``, ``[position]``) and ``[array]`` are
declared here too, so the core config imports no field or array module.
"""

from __future__ import annotations

import importlib.util
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pamlive.checks import Range, Section, build_section, check_value, path_fields
from pamlive.errors import ConfigError

BUILTIN_MODEL = "builtin:narw"

Positive = Annotated[float, Range(gt=0)]
PositiveInt = Annotated[int, Range(gt=0)]
Seconds = Annotated[float, Range(gt=0, le=86400, unit=" s")]
NonNegative = Annotated[float, Range(ge=0)]
Port = Annotated[int, Range(ge=1, le=65535)]
AudioRate = Annotated[int, Range(ge=2000, le=384000, unit=" Hz")]
Probability = Annotated[float, Range(ge=0, le=1)]


@dataclass(frozen=True)
class SourceConfig(Section):
    SECTION = "source"
    kind: Literal["device", "replay", "simulator"] = "device"
    device: str | Annotated[int, Range(ge=0)] | None = None  # stable name or PortAudio index
    channels: Annotated[int, Range(ge=1, le=1024)] = 1
    samplerate: AudioRate | None = None  # None: the device's default rate
    blocksize: Annotated[int, Range(ge=0, le=1 << 20)] = 0  # frames per callback; 0: PortAudio's
    latency: Literal["low", "high"] | Annotated[float, Range(gt=0, le=10, unit=" s")] = "low"
    files: list[Path] = field(default_factory=list)  # replay inputs
    speed: Positive = 1.0  # replay pace: 1.0 is real time
    loop: bool = False

    def rules(self) -> None:
        if self.kind == "replay" and not self.files:
            raise ConfigError("[source] kind = 'replay' needs files = [...]")


@dataclass(frozen=True)
class SimulatorConfig(Section):
    SECTION = "simulator"
    channels: Annotated[int, Range(ge=1, le=64)] = 4
    samplerate: AudioRate = 8000
    call_interval_s: Positive = 20.0  # mean time between simulated upcalls
    snr_db_range: tuple[float, float] = (0.0, 20.0)
    geometry: list[tuple[float, float]] = field(  # hydrophone [x, y] in metres
        default_factory=lambda: [(0.0, 0.0), (30.0, 0.0), (0.0, 30.0), (30.0, 30.0)]
    )
    sound_speed: Positive = 1500.0
    ship_probability: Probability = 0.3
    noise_level_dbfs: Annotated[float, Range(le=0, unit=" dBFS")] = -50.0
    seed: Annotated[int, Range(ge=0)] | None = None
    # mean gap between single-channel knocks, flow noise and strum (array tests); 0: none
    transient_interval_s: Annotated[float, Range(ge=0, unit=" s")] = 0.0

    def rules(self) -> None:
        if len(self.geometry) < self.channels:
            raise ConfigError(f"[simulator] geometry lists {len(self.geometry)} hydrophones "
                              f"for {self.channels} channels")
        lo, hi = self.snr_db_range
        if lo > hi:
            raise ConfigError(f"[simulator] snr_db_range must be [low, high], got [{lo:g}, {hi:g}]")


HopSeconds = Annotated[float, Range(gt=0, le=600, unit=" s")]


@dataclass(frozen=True)
class MemberConfig(Section):
    """One ``[[model.members]]`` entry: a model package of an ensemble (see ensemble.py)."""

    SECTION = "model.members"
    path: str = ""
    hop_s: HopSeconds | None = None  # None: [model] hop_s
    thresholds: dict[str, Probability] = field(default_factory=dict)  # override the package's
    classes: dict[str, str] = field(default_factory=dict)  # ensemble class -> member's class

    def rules(self) -> None:
        if not self.path:
            raise ConfigError("[[model.members]] needs path")


@dataclass(frozen=True)
class FusionConfig(Section):
    """``[model.fusion] <class> = { rule = ..., threshold = ..., k = ... }``."""

    SECTION = "model.fusion"
    rule: Literal["mean", "all", "k_of_n"] = "all"
    threshold: Probability | None = None  # mean: on the mean score (default: members' mean)
    k: Annotated[int, Range(ge=1)] | None = None  # k_of_n: members that must agree

    def rules(self) -> None:
        if self.threshold is not None and self.rule != "mean":
            raise ConfigError("[model.fusion] threshold is for rule = 'mean' (the vote rules "
                              "use each member's own thresholds)")
        if (self.k is not None) != (self.rule == "k_of_n"):
            raise ConfigError("[model.fusion] k goes with rule = 'k_of_n' (and it needs one)")


@dataclass(frozen=True)
class ModelConfig(Section):
    SECTION = "model"
    path: str = BUILTIN_MODEL
    hop_s: HopSeconds = 1.0
    max_merge: Annotated[int, Range(ge=1, le=100000)] = 10
    thresholds: dict[str, Probability] = field(default_factory=dict)  # override the package's
    # an event model's (bats) detection threshold; None: the package's "output" one
    detection_threshold: Probability | None = None
    # an event model's activity gate (pamlive/calls/gate.py): the network skips channel-
    # windows whose features' activity is below this level; false or 0: off
    activity_gate: Literal[False] | Annotated[float, Range(ge=0, le=4)] = False
    batch_max: Annotated[int, Range(ge=1, le=4096)] = 32
    threads: Annotated[int, Range(ge=1, le=256)] = 1
    # an event model's arithmetic: float32 (ONNX Runtime) or bfloat16 (OpenVINO, about half
    # the CPU where the CPU has bfloat16 arithmetic; pamlive/inference/openvino.py)
    precision: Literal["float32", "bfloat16"] = "float32"
    members: list[MemberConfig] = field(default_factory=list)  # an ensemble instead of path
    fusion: dict[str, FusionConfig] = field(default_factory=dict)  # per class

    def rules(self) -> None:
        if self.fusion and not self.members:
            raise ConfigError("[model.fusion] needs [[model.members]]")
        if self.members and (self.path != BUILTIN_MODEL or self.thresholds):
            raise ConfigError("[model] path and thresholds go into each [[model.members]] "
                              "of an ensemble")


def refuse_event_keys(model: str, *, activity_gate: float | bool = False,
                      precision: str = "float32") -> None:
    """One line if keys that only event models (bats) have are set for ``model``, a
    window-score model or an ensemble."""
    keys = [key for key, on in (("activity_gate", bool(activity_gate)),
                                ("precision", precision != "float32")) if on]
    if keys:
        them = "it" if len(keys) == 1 else "them"
        raise ConfigError(f"[model] {' and '.join(keys)}: for event models (bats) only; "
                          f"{model} gives window scores: remove {them}")


@dataclass(frozen=True)
class BufferConfig(Section):
    SECTION = "buffers"
    # the windowing thread reads the ring once half of it is full, at the latest: less than
    # 50 ms cannot hold a block
    ring_seconds: Annotated[float, Range(ge=0.05, le=600, unit=" s")] = 30.0
    window_queue: PositiveInt = 256
    detection_queue: PositiveInt = 1024


@dataclass(frozen=True)
class AlertsConfig(Section):
    SECTION = "alerts"
    publish: str = "tcp://127.0.0.1:5556"
    replay: str | None = "tcp://127.0.0.1:5557"
    log: Path | None = Path("detections.sqlite")  # relative to data_dir
    retention_days: Positive | None = 365.0
    allow_insecure: bool = False
    curve_server_secret: Path | None = None
    curve_clients: Path | None = None
    operators: Path | None = None  # the .key files of the clients that may validate

    def rules(self) -> None:
        for name, endpoint in (("publish", self.publish), ("replay", self.replay)):
            if endpoint is not None and "://" not in endpoint:
                raise ConfigError(f"[alerts] {name} must be a ZeroMQ endpoint like "
                                  f"tcp://127.0.0.1:5556, got {endpoint!r}")
        if self.replay is not None and self.log is None:
            raise ConfigError("[alerts] replay needs alerts.log: replay serves the detection log")
        if (self.curve_server_secret is None) != (self.curve_clients is None):
            raise ConfigError("[alerts] CURVE needs both curve_server_secret and curve_clients")
        if self.operators is not None and self.curve_clients is None:
            raise ConfigError("[alerts] operators needs CURVE (curve_server_secret, "
                              "curve_clients): without keys no client can be told apart")


@dataclass(frozen=True)
class DashboardConfig(Section):
    SECTION = "dashboard"
    channel: Annotated[int, Range(ge=0)] = 0
    bell: bool = True


@dataclass(frozen=True)
class ClusterConfig(Section):
    SECTION = "cluster"
    address: str | None = None  # local, local:N or tcp://HOST:8786 (analyze --cluster)
    chunk_s: Annotated[float, Range(gt=0, unit=" s")] = 3600.0  # long files: chunks this long


@dataclass(frozen=True)
class AnalyzeConfig(Section):
    SECTION = "analyze"
    raven_rows: Literal["detection", "channel"] = "detection"  # channel: Raven's multichannel


@dataclass(frozen=True)
class WatchdogSettings(Section):
    SECTION = "watchdog"
    silence_floor_dbfs: Annotated[float, Range(le=0, unit=" dBFS")] = -100.0  # dead preamp
    silence_s: Seconds = 10.0  # a channel silent or digital zero this long is dead
    stuck_s: Seconds = 5.0  # constant or repeated-block samples this long is dead
    no_callback_s: Seconds = 2.0  # no audio callbacks this long: deaf
    overflow_max: Annotated[int, Range(ge=0)] = 3  # more overflows than this ...
    overflow_window_s: Seconds = 10.0  # ... within this window: degraded
    recover_s: Seconds = 5.0  # live input this long before announcing recovery
    restart_initial_s: Seconds = 1.0  # first retry delay when reopening the device ...
    restart_max_s: Seconds = 30.0  # ... doubling up to this


@dataclass(frozen=True)
class ClipSettings(Section):
    SECTION = "clips"
    enabled: bool = True
    pre_s: Annotated[float, Range(ge=0, le=600, unit=" s")] = 5.0  # before the first sample
    post_s: Annotated[float, Range(ge=0, le=600, unit=" s")] = 5.0  # ... and after the last
    format: Literal["flac", "wav"] = "flac"  # flac (24-bit) | wav (32-bit float)
    directory: str = "clips"  # relative to the detection log's directory
    spectrogram: bool = True
    max_pending: PositiveInt = 256  # detections waiting for their post-roll
    # clips are not written while the data disk has less than this free: that room is the
    # detection log's (clips alone would otherwise fill a small disk and stop the log)
    reserve_mb: Annotated[float, Range(ge=0, unit=" MB")] = 100.0


@dataclass(frozen=True)
class ArchiveSettings(Section):
    SECTION = "archive"
    enabled: bool = False
    directory: str = "archive"  # relative to data_dir
    segment_minutes: Annotated[float, Range(gt=0, le=1440, unit=" min")] = 60.0
    bits: Literal[16, 24] = 24  # FLAC sample depth
    max_gb: Positive | None = None  # archive + clips; None: only min_free_percent applies
    min_free_percent: Annotated[float, Range(ge=0, lt=100)] = 5.0
    keep_clips_days: NonNegative = 30.0  # clips younger than this are never deleted
    queue_blocks: PositiveInt = 1024
    check_s: Seconds = 10.0  # how often the budget is checked while recording
    recheck_s: Seconds = 60.0  # how often a stopped archive looks for free space again


@dataclass(frozen=True)
class PositionSettings(Section):
    SECTION = "position"
    source: Literal["none", "udp", "serial", "gpsd"] = "none"
    udp_host: str = "0.0.0.0"  # listen address for NMEA broadcasts
    udp_port: Port = 10110  # the usual NMEA-over-UDP port
    serial_port: str = "/dev/ttyUSB0"
    baudrate: PositiveInt = 4800
    gpsd_host: str = "127.0.0.1"
    gpsd_port: Port = 2947
    max_fix_age_s: Seconds = 30.0
    max_fixes: PositiveInt = 7200  # two hours at 1 Hz

    def rules(self) -> None:
        if self.source == "serial" and importlib.util.find_spec("serial") is None:
            # found now: later the reader thread would die and the position stay unknown
            raise ConfigError("[position] source = 'serial' needs pyserial "
                              "(pip install 'pamlive[gps]')")


@dataclass(frozen=True)
class ArraySettings(Section):
    """``[array]``: where the hydrophones are, and what the array must agree on
    (docs/array.md)."""

    SECTION = "array"
    positions: list[list[float]] = field(default_factory=list)  # [x, y(, z)] m, channel order
    sound_speed: Annotated[float, Range(gt=0, unit=" m/s")] = 1500.0
    heading_source: Literal["none", "fixed", "nmea"] = "none"
    heading_deg: Annotated[float, Range(ge=0, lt=360)] | None = None
    min_confidence: Annotated[float, Range(ge=0, lt=1)] = 0.05
    queue: Annotated[int, Range(gt=0)] = 64
    focus_s: Annotated[float, Range(ge=0, unit=" s")] = 1.5  # 0: the whole detection
    min_channels: dict[str, Annotated[int, Range(ge=1)]] = field(default_factory=dict)
    tdoa_consistent: list[str] = field(default_factory=list)
    max_residual_ms: Annotated[float, Range(gt=0, unit=" ms")] = 2.0

    def rules(self) -> None:
        if len(self.positions) < 2 or not all(len(p) in (2, 3) for p in self.positions):
            raise ConfigError("[array] positions must list at least two [x, y] or [x, y, z] "
                              "element positions in metres, in channel order")
        if len({tuple(p) for p in self.positions}) < 2:
            raise ConfigError("[array] positions: the elements must not all be at one place")
        if self.heading_source == "fixed" and self.heading_deg is None:
            raise ConfigError("[array] heading_source = 'fixed' needs heading_deg")
        for cls, k in self.min_channels.items():
            if k > len(self.positions):
                raise ConfigError(f"[array] min_channels.{cls} must be 1..{len(self.positions)} "
                                  f"(the array's channels), got {k}")


def parse_array(table: dict[str, object] | None) -> ArraySettings | None:
    """The ``[array]`` table checked key by key; None when the section is absent."""
    return None if table is None else build_section(ArraySettings, table)


@dataclass(frozen=True)
class Config:
    station: str = "pamlive"
    data_dir: Path = Path("pamlive-data")
    source: SourceConfig = field(default_factory=SourceConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    buffers: BufferConfig = field(default_factory=BufferConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    watchdog: WatchdogSettings = field(default_factory=WatchdogSettings)
    clips: ClipSettings = field(default_factory=ClipSettings)
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    position: PositionSettings = field(default_factory=PositionSettings)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    array: ArraySettings | None = None  # None: channels are not treated as one array


SECTIONS: dict[str, type[Section]] = {
    cls.SECTION: cls
    for cls in (SourceConfig, SimulatorConfig, ModelConfig, BufferConfig, AlertsConfig,
                DashboardConfig, WatchdogSettings, ClipSettings, ArchiveSettings,
                PositionSettings, ClusterConfig, AnalyzeConfig, ArraySettings)
}


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                defaults: dict[str, Any] | None = None) -> Config:
    """Read ``path`` (TOML; None = defaults), apply ``overrides`` ("section.key": value,
    or "section": table) over it and ``defaults`` (the same form) under it: the file's
    own values win over those."""
    doc: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML ({exc})") from None
        base = path.resolve().parent
    _apply(doc, overrides or {}, over=True)
    _apply(doc, defaults or {}, over=False)
    where = str(path) if path is not None else "config"
    try:
        return _build(doc, base)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _apply(doc: dict[str, Any], values: dict[str, Any], *, over: bool) -> None:
    """``values`` ("section.key" or "section" -> value) into ``doc``, over what it holds
    or only where it holds nothing."""
    for dotted, value in values.items():
        section, _, key = dotted.partition(".")
        table = doc.setdefault(section, {}) if key else doc
        name = key or section
        if over or name not in table:
            table[name] = value


def _build(doc: dict[str, Any], base: Path) -> Config:
    values: dict[str, Any] = {}
    for key, value in doc.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"[{key}] must be a table")
            values[key] = _resolve_paths(build_section(SECTIONS[key], value), base)
        elif key == "station":
            values[key] = check_value(str, value, "station")
        elif key == "data_dir":
            values[key] = _resolve(base, check_value(Path, value, "data_dir"))
        else:
            raise ConfigError(f"unknown setting '{key}'")
    return Config(**values)


def _resolve(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else base / p


def _resolve_paths(section: Section, base: Path) -> Section:
    """Paths relative to the config file's folder; the detection log stays relative to
    data_dir (see :func:`data_path`)."""
    changes: dict[str, Any] = {}
    for name in path_fields(type(section)):
        value = getattr(section, name)
        if (section.SECTION, name) == ("alerts", "log") or value is None:
            continue
        changes[name] = ([_resolve(base, p) for p in value] if isinstance(value, list)
                         else _resolve(base, value))
    return replace(cast(Any, section), **changes) if changes else section


def data_path(cfg: Config, path: Path) -> Path:
    """``path`` inside the configured data directory (absolute paths stay as they are)."""
    return path if path.is_absolute() else cfg.data_dir / path
