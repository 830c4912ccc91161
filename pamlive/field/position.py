"""Vessel position: NMEA 0183 (UDP broadcast or serial) or gpsd, interpolated per detection.

Fixes go into a bounded, time-ordered :class:`PositionTrack`; a detection is stamped with
the position interpolated at its start time (UTC from the sample clock) and the age of
the nearest fix. No fix within ``max_fix_age_s`` means no ``position`` field, and the
health flag ``position.no_fix``. A fix off the globe is dropped; one dated more than
``max_fix_age_s`` ahead of the receiving clock (a GPS with a bad date) is dropped and
flagged ``position.future_fix``, so it cannot block the good fixes after it. Sources
run in their own threads and reconnect by themselves (a GPS unplugged, gpsd restarted);
NMEA is parsed by ``pynmea2``.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import socket
import threading
import time as wallclock
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pynmea2

from pamlive.config import PositionSettings
from pamlive.utc import parse_utc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fix:
    time: float  # UTC, seconds since the epoch (the receiver's time of fix)
    lat: float
    lon: float


def checked_fix(when: float, lat: float, lon: float) -> Fix | None:
    """A fix on the globe, or None (lat in -90..90, lon in -180..180, all finite)."""
    if not (math.isfinite(when) and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    return Fix(when, lat, lon)


@dataclass(frozen=True)
class Position:
    lat: float
    lon: float
    fix_age_s: float  # distance in time to the nearest fix used
    interpolated: bool
    source: str

    def as_dict(self) -> dict[str, Any]:
        """The detection body's ``position`` object."""
        return {
            "lat": round(self.lat, 6),
            "lon": round(self.lon, 6),
            "fix_age_s": round(self.fix_age_s, 2),
            "interpolated": self.interpolated,
            "source": self.source,
        }


class PositionTrack:
    """Recent fixes in time order, shared between a source thread and the monitor."""

    def __init__(self, max_fixes: int, max_fix_age_s: float, source: str,
                 clock: Callable[[], float] = wallclock.time) -> None:
        self.max_fixes = max_fixes
        self.max_fix_age_s = max_fix_age_s
        self.source = source
        self._clock = clock  # the receiving clock, UTC epoch seconds
        self._times: list[float] = []
        self._fixes: list[Fix] = []
        self._lock = threading.Lock()
        self.fixes = 0
        self.rejected = 0  # duplicates and fixes older than the newest
        self.future = 0  # fixes dated ahead of the receiving clock
        self._future_at: float | None = None  # when the last one came

    def add(self, fix: Fix) -> bool:
        now = self._clock()
        with self._lock:
            if fix.time > now + self.max_fix_age_s:
                self.future += 1
                self._future_at = now
                return False
            if self._times and fix.time <= self._times[-1]:
                self.rejected += 1
                return False
            self._times.append(fix.time)
            self._fixes.append(fix)
            if len(self._fixes) > self.max_fixes:
                drop = len(self._fixes) - self.max_fixes
                del self._times[:drop], self._fixes[:drop]
            self.fixes += 1
            return True

    def at(self, t: float) -> Position | None:
        """Position at UTC ``t`` (epoch seconds), or None with no fix near enough."""
        with self._lock:
            i = bisect.bisect_right(self._times, t)
            before = self._fixes[i - 1] if i > 0 else None
            after = self._fixes[i] if i < len(self._fixes) else None
        limit = self.max_fix_age_s
        if before is not None and after is not None and after.time - before.time <= 2 * limit:
            w = (t - before.time) / (after.time - before.time)
            lat = before.lat + w * (after.lat - before.lat)
            dlon = (after.lon - before.lon + 180.0) % 360.0 - 180.0  # across the antimeridian
            lon = (before.lon + w * dlon + 180.0) % 360.0 - 180.0
            age = min(t - before.time, after.time - t)
            return Position(lat, lon, age, w > 0.0, self.source)
        nearest = min((f for f in (before, after) if f is not None),
                      key=lambda f: abs(t - f.time), default=None)
        if nearest is None or abs(t - nearest.time) > limit:
            return None
        return Position(nearest.lat, nearest.lon, abs(t - nearest.time), False, self.source)

    def stamp(self, body: dict[str, Any], t: float) -> bool:
        """Add ``position`` to a detection body for UTC ``t``; False (no field) without a fix."""
        position = self.at(t)
        if position is None:
            return False
        body["position"] = position.as_dict()
        return True

    def flags(self, now: float) -> list[str]:
        """``position.no_fix`` when the newest fix is missing or too old at ``now``;
        ``position.future_fix`` while fixes dated ahead of the clock keep coming."""
        with self._lock:
            newest = self._times[-1] if self._times else None
            future_at = self._future_at
        fresh = newest is not None and abs(now - newest) <= self.max_fix_age_s
        flags = [] if fresh else ["position.no_fix"]
        if future_at is not None and now - future_at <= self.max_fix_age_s:
            flags.append("position.future_fix")
        return flags


class NmeaParser:
    """NMEA 0183 lines -> fixes, from RMC (date and time), GGA and GLL (time of day only)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.sentences = 0
        self.errors = 0

    def parse(self, line: str) -> Fix | None:
        line = line.strip()
        if not line.startswith("$"):
            return None  # AIS (!AIVDM) and noise share the port on many ships
        try:
            msg = pynmea2.parse(line, check=True)
        except (pynmea2.ParseError, ValueError, AttributeError):
            self.errors += 1
            return None
        self.sentences += 1
        kind = msg.sentence_type
        try:
            if kind == "RMC" and msg.status == "A" and msg.datestamp and msg.timestamp:
                when = datetime.combine(msg.datestamp, msg.timestamp.replace(tzinfo=None), UTC)
                return self._checked(when.timestamp(), msg.latitude, msg.longitude)
            valid = (kind == "GGA" and msg.gps_qual) or (kind == "GLL" and msg.status == "A")
            if valid and msg.timestamp is not None and msg.lat:
                return self._checked(self._utc(msg.timestamp), msg.latitude, msg.longitude)
        except (TypeError, ValueError, AttributeError):
            self.errors += 1
        return None

    def _checked(self, when: float, lat: float, lon: float) -> Fix | None:
        fix = checked_fix(when, lat, lon)
        if fix is None:
            self.errors += 1
        return fix

    def _utc(self, time_of_day: time) -> float:
        """Date a time-of-day by the receiving clock, the day that puts it nearest to now
        (a fix from 23:59:59 read at 00:00:01 is yesterday's). The detections' times come
        from the same clock, so keep it disciplined (chrony/NTP, or gpsd as its source)."""
        now = self._clock()
        today = datetime.fromtimestamp(now, UTC).date()
        tod = time_of_day.replace(tzinfo=None)
        candidates = [datetime.combine(today + timedelta(days=d), tod, UTC).timestamp()
                      for d in (-1, 0, 1)]
        return min(candidates, key=lambda c: abs(c - now))


class _SourceThread:
    """A reader thread that reconnects with backoff until stopped."""

    name = "position"

    def __init__(self, track: PositionTrack) -> None:
        self.track = track
        self.connected = False
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pamlive-{self.name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                self._session()
                delay = 1.0
            except OSError as exc:
                log.warning("%s: %s; retrying in %.0f s", self.name, exc, delay)
            self.connected = False
            self.reconnects += 1
            self._stop.wait(delay)
            delay = min(delay * 2.0, 30.0)

    def _session(self) -> None:
        raise NotImplementedError


class _NmeaSourceThread(_SourceThread):
    """A reader of raw NMEA 0183 text: every fix it parses goes into the track."""

    def __init__(self, track: PositionTrack, clock: Callable[[], float]) -> None:
        super().__init__(track)
        self.parser = NmeaParser(clock)
        self.listeners: list[Callable[[str], None]] = []  # other sentences' readers (heading)

    def _feed(self, raw: bytes) -> None:
        for line in raw.decode("ascii", errors="replace").splitlines():
            for listener in self.listeners:
                listener(line)
            fix = self.parser.parse(line)
            if fix is not None:
                self.track.add(fix)


class UdpNmeaSource(_NmeaSourceThread):
    """NMEA 0183 sentences in UDP datagrams (broadcast by the ship's NMEA multiplexer)."""

    name = "nmea-udp"

    def __init__(self, track: PositionTrack, host: str, port: int,
                 clock: Callable[[], float]) -> None:
        super().__init__(track, clock)
        self.host, self.port = host, port
        self._bound = threading.Event()

    def wait_bound(self, timeout: float) -> bool:
        return self._bound.wait(timeout)

    def _session(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            self.port = sock.getsockname()[1]  # the one the OS chose, if 0 was asked
            sock.settimeout(0.5)
            self.connected = True
            self._bound.set()
            while not self._stop.is_set():
                try:
                    self._feed(sock.recv(65535))
                except TimeoutError:
                    continue


class SerialNmeaSource(_NmeaSourceThread):
    """NMEA 0183 from a serial port (USB GPS, or the ship's NMEA talker via RS-422)."""

    name = "nmea-serial"

    def __init__(self, track: PositionTrack, port: str, baudrate: int,
                 clock: Callable[[], float]) -> None:
        super().__init__(track, clock)
        self.port, self.baudrate = port, baudrate

    def _session(self) -> None:
        import serial  # pyserial: an optional dependency (extra "gps")

        try:
            with serial.Serial(self.port, self.baudrate, timeout=0.5) as port:
                self.connected = True
                while not self._stop.is_set():
                    self._feed(port.readline())
        except serial.SerialException as exc:
            raise OSError(str(exc)) from exc


class GpsdSource(_SourceThread):
    """gpsd's JSON protocol on TCP (``?WATCH``, then TPV reports)."""

    name = "gpsd"

    def __init__(self, track: PositionTrack, host: str, port: int) -> None:
        super().__init__(track)
        self.host, self.port = host, port
        self.errors = 0

    def _session(self) -> None:
        with socket.create_connection((self.host, self.port), timeout=5.0) as sock:
            sock.settimeout(0.5)
            sock.sendall(b'?WATCH={"enable":true,"json":true};\n')
            self.connected = True
            pending = b""
            while not self._stop.is_set():
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    raise OSError("gpsd closed the connection")
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    fix = self.parse_report(line)
                    if fix is not None:
                        self.track.add(fix)

    def parse_report(self, line: bytes) -> Fix | None:
        """A fix from a TPV report with a 2D/3D fix; None for anything else."""
        try:
            report = json.loads(line)
            if report.get("class") != "TPV" or report.get("mode", 0) < 2:
                return None
            when = parse_utc(report["time"])
            fix = checked_fix(when.timestamp(), float(report["lat"]), float(report["lon"]))
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError):
            fix = None
        if fix is None:
            self.errors += 1
        return fix


def open_position_source(
    settings: PositionSettings, clock: Callable[[], float]
) -> tuple[PositionTrack, _SourceThread] | None:
    """The track and its (not yet started) source thread, or None when source = "none"."""
    if settings.source == "none":
        return None
    track = PositionTrack(settings.max_fixes, settings.max_fix_age_s, "", clock)
    source: _SourceThread
    if settings.source == "udp":
        source = UdpNmeaSource(track, settings.udp_host, settings.udp_port, clock)
    elif settings.source == "serial":
        source = SerialNmeaSource(track, settings.serial_port, settings.baudrate, clock)
    else:
        source = GpsdSource(track, settings.gpsd_host, settings.gpsd_port)
    track.source = source.name
    return track, source
