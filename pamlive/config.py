"""TOML configuration -> frozen, validated dataclasses.

Every key is checked: an unknown section or key, a wrong type or an out-of-range value
is a :class:`~pamlive.errors.ConfigError` that names it (``[model] hop_s: ...``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pamlive.errors import ConfigError
from pamlive.field.settings import require_positive

BUILTIN_MODEL = "builtin:narw"


@dataclass(frozen=True)
class SourceConfig:
    kind: str = "device"  # device | replay | simulator
    device: str | int | None = None  # stable name (substring) or PortAudio index
    channels: int = 1
    samplerate: int | None = None  # None: the device's default rate
    blocksize: int = 0  # frames per callback; 0 lets PortAudio choose
    latency: str | float = "low"
    files: list[Path] = field(default_factory=list)  # replay inputs
    speed: float = 1.0  # replay pace: 1.0 is real time
    loop: bool = False


@dataclass(frozen=True)
class SimulatorConfig:
    channels: int = 4
    samplerate: int = 8000
    call_interval_s: float = 20.0  # mean time between simulated upcalls
    snr_db_range: tuple[float, float] = (0.0, 20.0)
    geometry: list[tuple[float, float]] = field(
        default_factory=lambda: [(0.0, 0.0), (30.0, 0.0), (0.0, 30.0), (30.0, 30.0)]
    )
    sound_speed: float = 1500.0
    ship_probability: float = 0.3
    noise_level_dbfs: float = -50.0
    seed: int | None = None
    transient_interval_s: float = 0.0  # mean gap of single-channel knocks/flow/strum; 0: none


@dataclass(frozen=True)
class MemberConfig:
    """One ``[[model.members]]`` entry: a model package of an ensemble (see ensemble.py)."""

    path: str = ""
    hop_s: float | None = None  # None: [model] hop_s
    thresholds: dict[str, float] = field(default_factory=dict)  # override package defaults
    classes: dict[str, str] = field(default_factory=dict)  # ensemble class -> member's class


@dataclass(frozen=True)
class FusionConfig:
    """``[model.fusion] <class> = { rule = ..., threshold = ..., k = ... }``."""

    rule: str = "all"  # mean | all | k_of_n
    threshold: float | None = None  # mean: on the mean score (default: members' mean)
    k: int | None = None  # k_of_n: members that must reach their own thresholds


FUSION_RULES = ("mean", "all", "k_of_n")


@dataclass(frozen=True)
class ModelConfig:
    path: str = BUILTIN_MODEL
    hop_s: float = 1.0
    max_merge: int = 10
    thresholds: dict[str, float] = field(default_factory=dict)  # override package defaults
    batch_max: int = 32
    threads: int = 1
    members: list[MemberConfig] = field(default_factory=list)  # an ensemble instead of path
    fusion: dict[str, FusionConfig] = field(default_factory=dict)  # per class


@dataclass(frozen=True)
class BufferConfig:
    ring_seconds: float = 30.0
    window_queue: int = 256
    detection_queue: int = 1024


@dataclass(frozen=True)
class AlertsConfig:
    publish: str = "tcp://127.0.0.1:5556"
    replay: str | None = "tcp://127.0.0.1:5557"
    log: Path | None = Path("detections.sqlite")  # relative to data_dir
    retention_days: float | None = 365.0
    allow_insecure: bool = False
    curve_server_secret: Path | None = None
    curve_clients: Path | None = None


@dataclass(frozen=True)
class DashboardConfig:
    channel: int = 0
    bell: bool = True


@dataclass(frozen=True)
class ClusterConfig:
    address: str | None = None  # local, local:N or tcp://HOST:8786 (analyze --cluster)
    chunk_s: float = 3600.0  # long files are split into chunks of about this length


@dataclass(frozen=True)
class AnalyzeConfig:
    raven_rows: str = "detection"  # detection | channel (Raven's multichannel convention)


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
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    # optional sections owned by other modules (field operations); kept as plain tables
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)


_SECTIONS = {
    "source": SourceConfig,
    "simulator": SimulatorConfig,
    "model": ModelConfig,
    "buffers": BufferConfig,
    "alerts": AlertsConfig,
    "dashboard": DashboardConfig,
    "cluster": ClusterConfig,
    "analyze": AnalyzeConfig,
}
# sections validated by the modules that own them
EXTRA_SECTIONS = {"watchdog", "clips", "archive", "position", "array"}


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read ``path`` (TOML; None = defaults), apply ``overrides`` ("section.key": value)."""
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
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        if key:
            doc.setdefault(section, {})[key] = value
        else:
            doc[section] = value
    where = str(path) if path is not None else "config"
    return _build(doc, base, where)


def _build(doc: dict[str, Any], base: Path, where: str) -> Config:
    top: dict[str, Any] = {}
    extra: dict[str, dict[str, Any]] = {}
    for key, value in doc.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: [{key}] must be a table")
            top[key] = _section(_SECTIONS[key], value, key, base, where)
            if key == "model" and "members" in value and {"path", "thresholds"} & set(value):
                raise ConfigError(f"{where}: [model] path and thresholds go into each "
                                  "[[model.members]] of an ensemble")
        elif key in EXTRA_SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: [{key}] must be a table")
            extra[key] = dict(value)
        elif key == "station":
            top[key] = _check_type(value, str, "station", where)
        elif key == "data_dir":
            top[key] = _resolve(base, _check_type(value, str, "data_dir", where))
        else:
            raise ConfigError(f"{where}: unknown setting '{key}'")
    cfg = Config(**top, extra=extra)
    _validate(cfg, where)
    _validate_field_sections(extra, where)
    return cfg


def _validate_field_sections(extra: dict[str, dict[str, Any]], where: str) -> None:
    """Field-operation sections are checked by their owners' parsers, before any work."""
    from pamlive.array.settings import parse_array
    from pamlive.field.archive import ArchiveSettings
    from pamlive.field.clips import ClipSettings
    from pamlive.field.position import PositionSettings
    from pamlive.field.settings import parse_section
    from pamlive.field.watchdog import WatchdogSettings

    for name, cls in (("watchdog", WatchdogSettings), ("clips", ClipSettings),
                      ("archive", ArchiveSettings), ("position", PositionSettings)):
        try:
            parse_section(cls, extra.get(name), name)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    try:
        parse_array(extra.get("array"))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _check_type(value: Any, typ: type | tuple[type, ...], name: str, where: str) -> Any:
    if isinstance(value, bool) and typ is not bool and bool not in _as_tuple(typ):
        raise ConfigError(f"{where}: {name} must be {_typename(typ)}, got {value!r}")
    if not isinstance(value, typ):
        raise ConfigError(f"{where}: {name} must be {_typename(typ)}, got {value!r}")
    return value


def _as_tuple(typ: type | tuple[type, ...]) -> tuple[type, ...]:
    return typ if isinstance(typ, tuple) else (typ,)


def _typename(typ: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in _as_tuple(typ))


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "str": str, "int": int, "float": (int, float), "bool": bool,
    "str | int | None": (str, int), "int | None": int, "str | float": (str, int, float),
    "str | None": str, "Path | None": str, "float | None": (int, float),
    "list[Path]": list, "dict[str, float]": dict, "tuple[float, float]": list,
    "list[tuple[float, float]]": list,
    "dict[str, str]": dict, "list[MemberConfig]": list, "dict[str, FusionConfig]": dict,
}


def _section(cls: type, table: dict[str, Any], section: str, base: Path, where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = f"[{section}] {key}"
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {name}")
        ftype = str(known[key].type)
        _check_type(value, _FIELD_TYPES[ftype], name, where)
        if ftype == "Path | None":
            # the detection log lives in data_dir unless given as an absolute path
            value = Path(value) if (section, key) == ("alerts", "log") else _resolve(base, value)
        elif ftype == "list[Path]":
            value = [_resolve(base, _check_type(v, str, name, where)) for v in value]
        elif ftype == "float" or ftype == "float | None":
            value = float(value)
        elif ftype == "tuple[float, float]":
            if len(value) != 2 or not all(isinstance(v, int | float) for v in value):
                raise ConfigError(f"{where}: {name} must be a pair of numbers")
            value = (float(value[0]), float(value[1]))
        elif ftype == "list[tuple[float, float]]":
            if not all(isinstance(p, list) and len(p) == 2 for p in value):
                raise ConfigError(f"{where}: {name} must be a list of [x, y] positions in metres")
            value = [(float(p[0]), float(p[1])) for p in value]
        elif ftype == "dict[str, float]":
            if not all(isinstance(v, int | float) and not isinstance(v, bool)
                       for v in value.values()):
                raise ConfigError(f"{where}: {name} values must be numbers")
            value = {str(k): float(v) for k, v in value.items()}
        elif ftype == "dict[str, str]":
            if not all(isinstance(v, str) for v in value.values()):
                raise ConfigError(f"{where}: {name} values must be strings")
        elif ftype == "list[MemberConfig]":
            value = [_section(MemberConfig, _check_type(v, dict, f"{name}[{i}]", where),
                              f"{section}.members #{i + 1}", base, where)
                     for i, v in enumerate(value)]
        elif ftype == "dict[str, FusionConfig]":
            value = {str(c): _section(FusionConfig, _check_type(v, dict, f"{name}.{c}", where),
                                      f"{section}.fusion.{c}", base, where)
                     for c, v in value.items()}
        values[key] = value
    return cls(**values)


def _positive(value: float | int | None, name: str, where: str) -> None:
    require_positive(value, f"{where}: {name}")


def _validate(cfg: Config, where: str) -> None:
    s = cfg.source
    if s.kind not in ("device", "replay", "simulator"):
        raise ConfigError(f"{where}: [source] kind must be device, replay or simulator, "
                          f"got {s.kind!r}")
    _positive(s.channels, "[source] channels", where)
    _positive(s.samplerate, "[source] samplerate", where)
    _positive(s.speed, "[source] speed", where)
    if s.samplerate is not None and not 2000 <= s.samplerate <= 384000:
        raise ConfigError(f"{where}: [source] samplerate must be 2000..384000 Hz, "
                          f"got {s.samplerate}")
    if s.kind == "replay" and not s.files:
        raise ConfigError(f"{where}: [source] kind = 'replay' needs files = [...]")
    m = cfg.model
    _positive(m.hop_s, "[model] hop_s", where)
    _positive(m.max_merge, "[model] max_merge", where)
    _positive(m.batch_max, "[model] batch_max", where)
    _positive(m.threads, "[model] threads", where)
    for cls_name, thr in m.thresholds.items():
        if not 0.0 <= thr <= 1.0:
            raise ConfigError(f"{where}: [model] thresholds.{cls_name} must be in 0..1, got {thr}")
    _validate_ensemble(m, where)
    b = cfg.buffers
    _positive(b.ring_seconds, "[buffers] ring_seconds", where)
    _positive(b.window_queue, "[buffers] window_queue", where)
    _positive(b.detection_queue, "[buffers] detection_queue", where)
    sim = cfg.simulator
    _positive(sim.channels, "[simulator] channels", where)
    _positive(sim.call_interval_s, "[simulator] call_interval_s", where)
    if not 2000 <= sim.samplerate <= 384000:
        raise ConfigError(f"{where}: [simulator] samplerate must be 2000..384000 Hz")
    if len(sim.geometry) < sim.channels:
        raise ConfigError(f"{where}: [simulator] geometry lists {len(sim.geometry)} hydrophones "
                          f"for {sim.channels} channels")
    a = cfg.alerts
    for name, endpoint in (("publish", a.publish), ("replay", a.replay)):
        if endpoint is not None and "://" not in endpoint:
            raise ConfigError(f"{where}: [alerts] {name} must be a ZeroMQ endpoint like "
                              f"tcp://127.0.0.1:5556, got {endpoint!r}")
    _positive(cfg.cluster.chunk_s, "[cluster] chunk_s", where)
    if cfg.dashboard.channel < 0:
        raise ConfigError(f"{where}: [dashboard] channel must be >= 0")
    if cfg.analyze.raven_rows not in ("detection", "channel"):
        raise ConfigError(f"{where}: [analyze] raven_rows must be detection or channel, "
                          f"got {cfg.analyze.raven_rows!r}")


def _validate_ensemble(m: ModelConfig, where: str) -> None:
    if m.fusion and not m.members:
        raise ConfigError(f"{where}: [model.fusion] needs [[model.members]]")
    for i, mc in enumerate(m.members, start=1):
        name = f"[model.members #{i}]"
        if not mc.path:
            raise ConfigError(f"{where}: {name} needs path")
        _positive(mc.hop_s, f"{name} hop_s", where)
        for cls_name, thr in mc.thresholds.items():
            if not 0.0 <= thr <= 1.0:
                raise ConfigError(f"{where}: {name} thresholds.{cls_name} must be in 0..1, "
                                  f"got {thr}")
    for cls_name, f in m.fusion.items():
        name = f"[model.fusion.{cls_name}]"
        if f.rule not in FUSION_RULES:
            raise ConfigError(f"{where}: {name} rule must be one of {', '.join(FUSION_RULES)}, "
                              f"got {f.rule!r}")
        if f.threshold is not None and (f.rule != "mean" or not 0.0 <= f.threshold <= 1.0):
            raise ConfigError(f"{where}: {name} threshold is for rule = 'mean', in 0..1 "
                              "(the vote rules use each member's own thresholds)")
        if (f.k is not None) != (f.rule == "k_of_n"):
            raise ConfigError(f"{where}: {name} k goes with rule = 'k_of_n' (and it needs one)")
        _positive(f.k, f"{name} k", where)


def data_path(cfg: Config, path: Path) -> Path:
    """``path`` inside the configured data directory (absolute paths stay as they are)."""
    return path if path.is_absolute() else cfg.data_dir / path
