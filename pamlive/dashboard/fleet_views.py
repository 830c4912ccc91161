"""The fleet view's screen: a row per station and one merged alert list naming the station.

Pure, like ``views.py``: a :class:`FleetState` and the (monotonic) time in, rich
renderables out; only the header reads the wall clock, to show UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pamlive.dashboard.fleet import FleetState, StationView
from pamlive.dashboard.fleet_review import verdict_of
from pamlive.dashboard.review import rows_around
from pamlive.dashboard.state import ALARM_CLASSES
from pamlive.dashboard.views import _duration, _ms, bearing_text, verdict_text

_STATUS_STYLE = {"OK": "bold green", "DEGRADED": "bold yellow", "WAITING": "yellow",
                 "STOPPED": "bold yellow", "LOST": "bold white on red",
                 "FAILED": "bold white on red", "DEAF": "bold white on red"}
_TROUBLE = ("LOST", "FAILED", "DEAF")


def status_text(view: StationView, now: float) -> Text:
    """``LOST 12 s`` (silent since), ``STOPPED``, ``OK`` or ``DEGRADED`` and its flags."""
    status = view.status()
    text = Text(status, style=_STATUS_STYLE.get(status, "dim"))
    state = view.state
    if status == "LOST" and state.heard_at is not None:
        text.append(f" {now - state.heard_at:.0f} s", style="red")
    flags = (state.health or {}).get("flags") or []
    if flags and status not in ("LOST", "WAITING"):
        text.append("  " + ", ".join(map(str, flags)), style="yellow")
    return text


def _position(view: StationView) -> str:
    """``41.500N 70.250W``: three decimals (about 100 m) keep the row narrow."""
    if view.position is None:
        return "—"
    lat, lon = view.position
    return f"{abs(lat):.3f}{'N' if lat >= 0 else 'S'} {abs(lon):.3f}{'E' if lon >= 0 else 'W'}"


_MIN_WIDTH = {"status": 9, "due": 3, "score": 5}  # "LOST 12 s" is never cut


def _table(columns: list[tuple[str, str]]) -> Table:
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=True,  # type: ignore[arg-type]
                         overflow="ellipsis", min_width=_MIN_WIDTH.get(name))
    return table


def station_table(fleet: FleetState, now: float, narrow: bool = False) -> Table:
    """Per station: status, uptime and detections (not when ``narrow``), the newest one,
    position, verdicts due."""
    columns = [("station", "left"), ("status", "left"), ("uptime", "right"),
               ("det", "right"), ("last detection", "left"), ("position", "left"),
               ("due", "right")]
    table = _table([c for c in columns if not (narrow and c[0] in ("uptime", "det"))])
    for view in fleet.views:
        last = view.last_detection()
        last_text = (f"{last.start_utc:%H:%M:%S} {last.class_name} {last.score:.2f}"
                     if last is not None and last.start_utc is not None else "—")
        waiting = view.waiting_verdicts()
        counts = [] if narrow else [_duration((view.state.health or {}).get("uptime_s")),
                                    str(view.state.detections_total)]
        table.add_row(view.name, status_text(view, now), *counts, last_text, _position(view),
                      "—" if waiting is None else str(waiting))
    return table


def alert_table(fleet: FleetState, max_rows: int, narrow: bool = False) -> Table:
    """All stations' detections, newest start first, each naming its station; the
    selected one (for a verdict) in reverse video. ``narrow``: no channels nor latency."""
    wide = [] if narrow else [("channels", "left")]
    table = _table([("UTC start", "left"), ("station", "left"), ("class", "left"),
                    ("score", "right"), *wide, ("bearing", "right"),
                    *([] if narrow else [("latency", "right")]), ("", "left"),
                    ("verdict", "left")])
    when = "%m-%d %H:%M:%S" if narrow else "%Y-%m-%d %H:%M:%S"
    for alert in rows_around(fleet.alerts, fleet.review.selected, max(0, max_rows),
                             lambda a: a.detection_id):
        row = alert.row
        whale = row.class_name in ALARM_CLASSES
        cells: list[str | Text] = [
            f"{row.start_utc:{when}}" if row.start_utc else "—", alert.name,
            Text(row.class_name, style="bold magenta" if whale else ""), f"{row.score:.2f}"]
        if not narrow:
            cells.append(",".join(map(str, row.channels)))
        cells.append(bearing_text(row))
        if not narrow:
            cells.append(_ms(row.latency_ms))
        cells.append(Text("replayed", style="dim") if row.replayed else "")
        cells.append(verdict_text(verdict_of(fleet, alert)))
        table.add_row(*cells, style="reverse" if alert is fleet.selected else None)
    return table


def fleet_banner(fleet: FleetState, now: float) -> Text:
    """A whale at any station first (the others' rows still show trouble), then the
    stations lost, failed or deaf; one line, blank when all is well."""
    flash = int(now) % 2 == 0
    alarm = fleet.alarm(now)
    if alarm is not None:
        return Text(f" ▲ {alarm[0]}: {alarm[1]} ▲ ", justify="center",
                    style="bold white on red" if flash else "bold red on yellow")
    trouble = [f"{v.name} {v.status()}" for v in fleet.views if v.status() in _TROUBLE]
    if trouble:
        return Text(f" NOT LISTENING: {', '.join(trouble)} ", justify="center",
                    style="bold white on red" if flash else "bold red on white")
    return Text(" ")  # not "": a layout shows its placeholder for an empty renderable


def fleet_header(fleet: FleetState, width: int) -> Text:
    listening = sum(v.status() in ("OK", "DEGRADED") for v in fleet.views)
    clock = f"{datetime.now(UTC):%H:%M:%S} UTC"
    parts = [f"{listening}/{len(fleet.views)} stations listening", clock]
    line = "  │  ".join(["pamlive fleet", *parts])
    return Text(line if len(line) <= width else " │ ".join(parts),
                style="bold white on blue", justify="center", no_wrap=True)


def render_fleet(fleet: FleetState, now: float, height: int = 40, width: int = 120) -> Layout:
    """The whole screen: header, banner, the stations, then the merged alerts."""
    stations_size = min(len(fleet.views) + 3, max(5, height // 2))
    narrow = width < 110
    layout = Layout(name="root")
    layout.split_column(
        Layout(fleet_header(fleet, width), name="header", size=1),
        Layout(fleet_banner(fleet, now), name="banner", size=1),
        Layout(Panel(station_table(fleet, now, narrow), title="stations", border_style="blue"),
               name="stations", size=stations_size),
        Layout(Panel(alert_table(fleet, max(0, height - stations_size - 5), narrow),
                     title=f"detections, all stations ({len(fleet.alerts)}, newest first)"
                     + (f" │ {fleet.review.message}" if fleet.review.message else ""),
                     subtitle=fleet.review.help_line(), subtitle_align="left",
                     border_style="blue"), name="alerts"),
    )
    return layout
