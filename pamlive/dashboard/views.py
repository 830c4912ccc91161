"""Pure views: a :class:`DashboardState` (and the time) in, rich renderables out.

Nothing here touches sockets, and the (monotonic) time comes in as an argument (only the
header reads the wall clock, to show UTC), so a test renders a state into a recording
console and reads the text an operator would see.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import numpy as np
from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.layout import Layout
from rich.panel import Panel
from rich.style import Style
from rich.table import Table
from rich.text import Text

from pamlive.alerts.schema import parse_utc
from pamlive.dashboard.calls import CallBoard
from pamlive.dashboard.clipview import ClipRows
from pamlive.dashboard.review import rows_around
from pamlive.dashboard.state import ALARM_CLASSES, DashboardState, DetectionRow

METER_FLOOR_DBFS = -100.0
HEALTH_STALE_S = 5.0  # health is published every second; older than this is shown as stale
_STATUS_STYLE = {"ok": "bold green", "degraded": "bold yellow", "deaf": "bold white on red"}
# a perceptually ordered dark-to-bright ramp (viridis anchors), interpolated to 32 levels
_RAMP_ANCHORS = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98),
                          (253, 231, 37)], float)
_LEVELS = 32
_PALETTE = [
    Color.from_rgb(*(int(np.interp(x, np.linspace(0, 1, len(_RAMP_ANCHORS)), _RAMP_ANCHORS[:, i]))
                     for i in range(3)))
    for x in np.linspace(0, 1, _LEVELS)
]


# -- spectrogram -------------------------------------------------------------------------


def spectrogram_pixels(rows: list[list[float]], columns: int, pixels: int) -> np.ndarray:
    """Colour levels (``pixels`` x ``columns``, 0.._LEVELS-1, -1 = no data), top = fmax.

    The newest row is the rightmost column. Each pixel takes the loudest band it covers,
    so a thin tonal or sweep survives the downsampling. The colour range follows the
    data: from the median (the noise floor) to the loudest value, at least 25 dB wide.
    """
    out = np.full((pixels, columns), -1, int)
    if not rows or columns <= 0 or pixels <= 0:
        return out
    recent = rows[-columns:]
    n_bands = min(len(r) for r in recent)
    data = np.array([r[:n_bands] for r in recent], float).T  # (bands, time), band 0 = 0 Hz
    edges = np.linspace(0, n_bands, pixels + 1).astype(int)
    binned = np.stack([data[a : max(b, a + 1)].max(axis=0) for a, b in pairwise(edges)])
    floor = float(np.median(binned))
    top = max(float(binned.max()), floor + 25.0)
    lo = floor - 3.0
    levels = np.clip((binned - lo) / (top - lo) * (_LEVELS - 1), 0, _LEVELS - 1).astype(int)
    out[:, columns - data.shape[1] :] = levels[::-1]
    return out


class SpectrogramStrip:
    """The scrolling strip: half-block characters give two frequency pixels per line.
    With ``clip`` (a detection under review), that clip's spectrogram, fitted to the
    width, instead of the live sea."""

    def __init__(self, state: DashboardState, clip: ClipRows | None = None) -> None:
        self.state = state
        self.clip = clip

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        state, clip = self.state, self.clip
        label_w = 7
        height = max(2, (options.height or 12))
        width = max(10, options.max_width - label_w)
        if not state.spectrum_rows and clip is None:
            published = sorted(state.spectrum_channels)
            msg = (f"channel {state.channel} is not published; the monitor sends "
                   f"{', '.join(map(str, published))}" if published else "waiting for spectrum…")
            yield Text(msg, style="dim")
            return
        rows = list(state.spectrum_rows) if clip is None else _fit(clip.rows, width)
        fmax = state.spectrum_fmax_hz if clip is None else clip.fmax_hz
        levels = spectrogram_pixels(rows, width, 2 * (height - 1))
        labels = _frequency_labels(fmax or 0.0, height - 1)
        for line in range(height - 1):
            text = Text(f"{labels.get(line, ''):>{label_w - 1}} ", style="dim")
            for top, bottom in zip(levels[2 * line], levels[2 * line + 1], strict=True):
                text.append("▀", _pixel_style(int(top), int(bottom)))
            yield text
        span = (width * (state.spectrum_row_s or 0.125) if clip is None
                else len(clip.rows) * clip.row_s)
        axis = f"{'Hz':>{label_w - 1}} ◀ {span:.0f} s"
        end = "now ▶" if clip is None else "clip end ▶"
        yield Text(axis + end.rjust(label_w + width - len(axis)), style="dim")


def _fit(rows: list[list[float]], columns: int) -> list[list[float]]:
    """A clip's rows max-pooled into at most ``columns`` (a thin call survives)."""
    if len(rows) <= columns:
        return rows
    groups = np.array_split(np.asarray(rows), columns)
    return [group.max(axis=0).tolist() for group in groups]


def _frequency_labels(fmax: float, lines: int) -> dict[int, str]:
    """Round frequencies (about one label per 3 lines) keyed by the line that shows them."""
    if fmax <= 0 or lines <= 0:
        return {}
    raw = fmax / max(1, lines // 3)
    step = next(s for s in (10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10**9)
                if s >= raw)
    labels: dict[int, str] = {}
    for f in np.arange(0.0, fmax + 1e-9, step):
        line = min(lines - 1, int((1 - f / fmax) * lines))
        labels.setdefault(line, f"{f:.0f}")
    return labels


def _pixel_style(top: int, bottom: int) -> Style:
    return _STYLES[top + 1][bottom + 1]


_BLANK = Color.parse("grey7")
_STYLES = [[Style(color=_PALETTE[t] if t >= 0 else _BLANK, bgcolor=_PALETTE[b] if b >= 0
                  else _BLANK) for b in range(-1, _LEVELS)] for t in range(-1, _LEVELS)]


# -- panels ------------------------------------------------------------------------------


class LevelMeters:
    """One bar per channel from the last health message's ``level_dbfs``, fitted to width."""

    def __init__(self, state: DashboardState) -> None:
        self.state = state

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        state = self.state
        levels = (state.health or {}).get("level_dbfs") or []
        if not levels:
            yield Text("waiting for health…", style="dim")
            return
        bar_width = max(8, options.max_width - 19)
        for ch, level in enumerate(levels):
            line = Text(f"{'▸' if ch == state.channel else ' '}ch {ch:<2} ")
            if level is None:
                line.append("·" * bar_width, style="dim")
                line.append("   no audio")
                yield line
                continue
            frac = (max(float(level), METER_FLOOR_DBFS) - METER_FLOOR_DBFS) / -METER_FLOOR_DBFS
            filled = round(frac * bar_width)
            colour = "red" if level > -6 else "yellow" if level > -20 else "green"
            line.append("█" * filled, style=colour)
            line.append("·" * (bar_width - filled), style="dim")
            line.append(f"{level:6.1f} dBFS", style=colour)
            yield line


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def _fill(value: float | None) -> Text:
    if value is None:
        return Text("—", style="dim")
    colour = "red" if value > 0.8 else "yellow" if value > 0.5 else "green"
    return Text(f"{100 * value:5.1f} %", style=colour)


# counted failures reported in the health message's optional sections: (section, counter)
FAULT_COUNTERS = (
    ("clips", "failed"), ("clips", "dropped"), ("clips", "pending_dropped"),
    ("archive", "dropped_blocks"), ("sd_notify", "failed"), ("position", "errors"),
)


def faults_text(health: dict[str, Any]) -> Text:
    """Every counted failure outside the pipeline's drops: green 0, or each one in red."""
    faults = [(f"{section} {counter}", value) for section, counter in FAULT_COUNTERS
              if isinstance(value := (health.get(section) or {}).get(counter), int) and value]
    if not faults:
        return Text("0", style="green")
    return Text(", ".join(f"{name} {value}" for name, value in faults), style="bold red")


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def member_rows(health: dict[str, Any]) -> list[tuple[str, Text]]:
    """An ensemble's members (the health section ``ensemble``): each one's share of the
    members' CPU and its latency to the merge; under it, windows lost and grid points
    it was missing at, if any."""
    rows = []
    for m in (health.get("ensemble") or {}).get("members") or []:
        lat = m.get("latency_ms") or {}
        rows.append((str(m.get("name", "?")),
                     Text(f"CPU {100 * m.get('cpu_share', 0.0):.0f} %, "
                          f"{_ms(lat.get('median'))}")))
        lost = [f"{m[k]} {word}" for k, word in (("errors", "lost"), ("missing", "missing"))
                if m.get(k)]
        if lost:
            rows.append(("", Text(", ".join(lost), style="yellow")))
    return rows


def health_panel(state: DashboardState, now: float, levels: bool = False) -> Panel:
    """Monitor status, counters and the dashboard's own bus bookkeeping (and with
    ``levels``, every channel's level on one row)."""
    h = state.health or {}
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("status", _status_text(state, now))
    grid.add_row("monitor", _link_text(state))
    if state.health_at is not None and now - state.health_at > HEALTH_STALE_S:
        grid.add_row("", Text(f"health stale: {now - state.health_at:.0f} s old", style="red"))
    grid.add_row("uptime", _duration(h.get("uptime_s")))
    rate = h.get("sample_rate")
    if rate:
        grid.add_row("input", f"{h.get('channels', '?')} ch, {rate} Hz, "
                              f"{_duration(h.get('stream_time_s'))} audio")
    lat = h.get("latency_ms") or {}
    grid.add_row("latency", f"median {_ms(lat.get('median'))}, p95 {_ms(lat.get('p95'))}")
    for name, text in member_rows(h):
        grid.add_row(Text(name, overflow="ellipsis"), text)
    grid.add_row("ring fill", _fill((h.get("ring") or {}).get("fill")))
    grid.add_row("queue fill", _fill((h.get("inference") or {}).get("queue_fill")))
    drops = h.get("drops") or {}
    total = sum(v for v in drops.values() if isinstance(v, int | float))
    drop_text = Text(str(total), style="bold red" if total else "green")
    if total:
        drop_text.append("  " + ", ".join(f"{k} {v}" for k, v in drops.items() if v), style="red")
    grid.add_row("drops", drop_text)
    grid.add_row("faults", faults_text(h))
    overflows = (h.get("capture") or {}).get("overflows")
    if overflows:
        grid.add_row("overflows", Text(str(overflows), style="bold red"))
    gaps = Text(f"{state.healed} healed", style="green")
    if state.unhealed_gaps:
        gaps.append(f", {state.unhealed_gaps} NOT healed", style="bold red")
    grid.add_row("seq gaps", gaps)
    if state.last_gap_error:
        grid.add_row("", Text(state.last_gap_error, style="red", overflow="fold"))
    if state.joined_late_unfetched:
        grid.add_row("", Text("joined late: earlier detections not fetched (no replay "
                              "endpoint)", style="yellow", overflow="fold"))
    bad = Text(str(state.malformed), style="bold red" if state.malformed else "green")
    grid.add_row("malformed", bad)
    if state.last_error:
        grid.add_row("", Text(state.last_error, style="red", overflow="fold"))
    if levels:
        grid.add_row("levels", _levels_text(state))
    return Panel(grid, title="health", border_style="blue")


def _status_text(state: DashboardState, now: float) -> Text:
    """The monitor's status, never a stale "OK" beside a lost link or after its goodbye."""
    h = state.health or {}
    status = str(h.get("status", "unknown"))
    flags = ", ".join(map(str, h.get("flags") or []))
    if state.said_goodbye:
        text = (Text("FAILED", style=_STATUS_STYLE["deaf"]) if status == "deaf"
                else Text("STOPPED", style="bold yellow"))
        if flags:
            text.append("  " + flags, style="yellow")
        return text
    if state.lost:
        age = "" if state.health_at is None else f", {now - state.health_at:.0f} s ago"
        return Text("UNKNOWN", style="bold red").append(f"  (last report: {status}{age})",
                                                         style="dim")
    text = Text(status.upper(), style=_STATUS_STYLE.get(status, "dim"))
    if flags:
        text.append("  " + flags, style="yellow")
    return text


def _link_text(state: DashboardState) -> Text:
    if state.said_goodbye:
        return Text("monitor stopped (said goodbye)", style="bold yellow")
    if state.lost:
        return Text(f"LOST ({state.lost_count}×)", style="bold white on red")
    if state.heard_at is None:
        return Text("waiting…", style="yellow")
    link = Text("connected", style="green")
    if state.lost_count:
        link.append(f" (was lost {state.lost_count}×)", style="yellow")
    return link


def _levels_text(state: DashboardState) -> Text:
    """All channels' levels on one line (the compact layout has no meter panel)."""
    text = Text()
    for ch, level in enumerate((state.health or {}).get("level_dbfs") or []):
        mark = "▸" if ch == state.channel else ""
        if level is None:
            text.append(f"{mark}·  ", style="dim")
            continue
        colour = "red" if level > -6 else "yellow" if level > -20 else "green"
        text.append(f"{mark}{level:.0f} ", style=colour)
    return text


def detection_table(state: DashboardState, max_rows: int) -> Table:
    """Newest first: UTC start, class, score, channels, latency; healed ones marked."""
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
    table.add_column("UTC start", no_wrap=True)
    table.add_column("class", no_wrap=True)
    table.add_column("score", justify="right")
    table.add_column("channels")
    table.add_column("bearing", justify="right")
    table.add_column("latency", justify="right")
    table.add_column("", style="dim")
    table.add_column("verdict", no_wrap=True)
    review = state.review
    for row in rows_around(state.detections, review.selected, max(0, max_rows),
                           lambda r: r.id):
        whale = row.class_name in ALARM_CLASSES
        table.add_row(
            f"{row.start_utc:%Y-%m-%d %H:%M:%S}" if row.start_utc else "—",
            Text(row.class_name, style="bold magenta" if whale else ""),
            f"{row.score:.2f}",
            ",".join(map(str, row.channels)),
            bearing_text(row),
            _ms(row.latency_ms),
            "replayed" if row.replayed else "",
            verdict_text(review.verdicts.get(row.id or "")),
            style="reverse" if row.id is not None and row.id == review.selected else None,
        )
    return table


_VERDICT_STYLE = {"confirmed": "bold green", "rejected": "bold red", "unsure": "yellow"}


def verdict_text(verdict: dict[str, Any] | None) -> Text:
    """``confirmed`` (or ``rejected``, ``unsure``), the corrected class, by whom."""
    if verdict is None:
        return Text("—", style="dim")
    text = Text(str(verdict["verdict"]), style=_VERDICT_STYLE.get(str(verdict["verdict"]), ""))
    return text.append(f" {verdict['validated_class']} ({verdict['operator']})", style="dim")


_ARROWS = "↑↗→↘↓↙←↖"  # N, NE, E, ... : a compass needle in one character


def compass_arrow(bearing_deg: float) -> str:
    """The 8-point compass arrow nearest to a bearing (clockwise from north / the bow)."""
    return _ARROWS[round(bearing_deg % 360.0 / 45.0) % 8]


def bearing_text(row: DetectionRow) -> str:
    """``123° ±2 ↘``; a towed line's ambiguity as both candidates, ``060°|300° ↗↖``."""
    if row.bearing_deg is None:
        return "—"
    if len(row.bearing_candidates_deg) == 2:
        a, b = row.bearing_candidates_deg
        return f"{a:03.0f}°|{b:03.0f}° {compass_arrow(a)}{compass_arrow(b)}"
    unc = (f" ±{row.bearing_uncertainty_deg:.0f}" if row.bearing_uncertainty_deg is not None
           else "")
    return f"{row.bearing_deg:03.0f}°{unc} {compass_arrow(row.bearing_deg)}"


def banner(state: DashboardState, now: float) -> Text:
    """The alarm line, always one line high (empty when all is well): a stopped, lost or
    deaf monitor first (a deaf monitor misses whales), then whales. It flashes once a
    second, in step with the clock, so it costs no extra redraws."""
    flash = int(now) % 2 == 0
    status = (state.health or {}).get("status")
    red = "bold white on red" if flash else "bold red on white"
    if state.said_goodbye and status != "deaf":
        return Text(" MONITOR STOPPED: it shut down cleanly and is not listening ",
                    justify="center", style="bold black on yellow")
    if state.said_goodbye:
        return Text(" MONITOR FAILED: it stopped on an error and is not listening ",
                    justify="center", style=red)
    if state.lost:
        return Text(" MONITOR LOST: no heartbeat — alerts are not arriving ", justify="center",
                    style=red)
    if status == "deaf":
        return Text(" MONITOR DEAF: no audio is being analysed ", justify="center", style=red)
    if state.alarm_active(now):
        return Text(f" ▲ {state.alarm_text} ▲ ", justify="center",
                    style="bold white on red" if flash else "bold red on yellow")
    return Text(" ")  # not "": a layout shows its placeholder for an empty renderable


def header(state: DashboardState, width: int = 120) -> Text:
    """Title, station, endpoint, run id and UTC clock; on a narrow terminal the title and
    then the endpoint give way, never the run id and the clock."""
    clock = f"{datetime.now(UTC):%H:%M:%S} UTC"
    run = f"run {state.run_id}" if state.run_id else "no run yet"
    station = state.station or "—"
    for parts in (["pamlive dashboard", station, state.endpoint, run, clock],
                  [station, state.endpoint, run, clock], [station, run, clock], [run, clock]):
        line = " │ ".join(parts) if len(parts) < 5 else "  │  ".join(parts)
        if len(line) <= width:
            break
    return Text(line, style="bold white on blue", justify="center", no_wrap=True)


def render(state: DashboardState, now: float, height: int = 40, width: int = 120) -> Layout:
    """The whole screen for a terminal ``width`` x ``height``.

    The banner line is always there, so the screen does not jump when it comes and goes.
    Below 100 x 32 the level meters fold into one health row, leaving the spectrogram
    the left column.
    """
    layout = Layout(name="root")
    compact = width < 100 or height < 32
    used = 2  # header and banner
    table_size = max(5, (height - used) // (4 if compact else 3))
    body = Layout(name="body", size=max(10, height - used - table_size))
    strip = Layout(spectrogram_panel(state), name="spectrogram")
    health = health_panel(state, now, levels=compact)
    if compact:
        left = strip
    else:
        channels = len((state.health or {}).get("level_dbfs") or []) or 1
        left = Layout(name="left")
        left.split_column(
            Layout(Panel(LevelMeters(state), title="levels", border_style="blue"),
                   name="meters", size=channels + 2), strip)
    health_width = 48 if width >= 110 else max(30, width * 2 // 5)
    body.split_row(left, Layout(health, name="health", size=health_width))
    total = state.detections_total
    layout.split_column(
        Layout(header(state, width), name="header", size=1),
        Layout(banner(state, now), name="banner", size=1),
        body,
        call_panels(state.calls, table_size - 3) if state.calls.seen else
        Layout(Panel(detection_table(state, table_size - 3),
                     title=f"detections ({total}, newest first){_said(state)}",
                     subtitle=state.review.help_line(), subtitle_align="left",
                     border_style="blue"),
               name="detections"),
    )
    return layout


def _said(state: DashboardState) -> str:
    return f" │ {state.review.message}" if state.review.message else ""


def spectrogram_panel(state: DashboardState) -> Panel:
    """The live strip; while a detection is under review, its clip where readable."""
    review = state.review
    title = f"spectrogram ch {state.channel}"
    if review.selected is not None and isinstance(review.clip, ClipRows):
        row = next((r for r in state.detections if r.id == review.selected), None)
        when = f"{row.start_utc:%H:%M:%S} UTC {row.class_name}" if row and row.start_utc else ""
        return Panel(SpectrogramStrip(state, review.clip), title=f"clip {when} ch "
                     f"{state.channel}", border_style="magenta")
    if review.selected is not None and isinstance(review.clip, str):
        title += f" (live; {review.clip})"
    return Panel(SpectrogramStrip(state), title=title, border_style="blue")


# -- an event model's calls (bats) -------------------------------------------------------


def species_table(board: CallBoard, max_rows: int) -> Table:
    """Per species: calls this minute, in the last closed minute, in total; best prob."""
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
    table.add_column("species", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column(f"{board.minute:%H:%M}" if board.minute else "this min", justify="right")
    last = board.summary
    table.add_column(f"{parse_utc(last['start_utc']):%H:%M}" if last else "last min",
                     justify="right")
    table.add_column("total", justify="right")
    table.add_column("max p", justify="right")
    closed = (last or {}).get("counts", {})
    for species in board.species()[: max(0, max_rows)]:
        table.add_row(species, str(board.this_minute.get(species, 0)),
                      str(closed.get(species, 0)), str(board.total[species]),
                      f"{board.max_prob[species]:.2f}")
    return table


def call_table(board: CallBoard, max_rows: int) -> Table:
    """The latest calls, newest first: UTC (ms), species, probability, channel, box."""
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
    table.add_column("UTC", no_wrap=True, min_width=12)
    table.add_column("species", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column("p", justify="right", min_width=4)
    table.add_column("ch", justify="right", min_width=2)
    table.add_column("kHz", justify="right", no_wrap=True, min_width=9)
    table.add_column("", style="dim", no_wrap=True)
    for row in list(board.latest)[: max(0, max_rows)]:
        table.add_row(f"{row.start_utc:%H:%M:%S}.{row.start_utc.microsecond // 1000:03d}",
                      short_species(row.species), f"{row.class_prob:.2f}", str(row.channel),
                      f"{row.low_hz / 1000:.1f}–{row.high_hz / 1000:.1f}",
                      "replayed" if row.replayed else "")
    return table


def short_species(name: str) -> str:
    """``Pipistrellus pygmaeus`` -> ``P. pygmaeus`` (the list is narrow; the counts table
    beside it names the species in full)."""
    genus, _, rest = name.partition(" ")
    return f"{genus[:1]}. {rest}" if rest and genus else name


def call_panels(board: CallBoard, max_rows: int) -> Layout:
    """Counts per species beside the latest calls (an event model: no banner per call)."""
    panels = Layout(name="calls")
    panels.split_row(
        Layout(Panel(species_table(board, max_rows), border_style="blue",
                     title=f"calls per species ({board.calls} in all)",
                     subtitle=board.network() or None), name="species",
               ratio=1),
        Layout(Panel(call_table(board, max_rows), title="latest calls, newest first",
                     border_style="blue"), name="latest", ratio=1),
    )
    return panels
