"""Position: NMEA over a real UDP socket into a detection body, interpolation, gpsd."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime
from functools import reduce

import pytest

from pamlive.config import load_config
from pamlive.errors import ConfigError
from pamlive.field.position import (
    Fix,
    GpsdSource,
    NmeaParser,
    PositionSettings,
    PositionTrack,
    UdpNmeaSource,
    open_position_source,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()


def sentence(body: str) -> str:
    """``$body*CS`` with the NMEA checksum (XOR of the body's bytes), computed here."""
    checksum = reduce(lambda a, c: a ^ ord(c), body, 0)
    return f"${body}*{checksum:02X}"


def rmc(hhmmss: str, lat: str, ns: str, lon: str, ew: str, status: str = "A") -> str:
    return sentence(f"GPRMC,{hhmmss}.00,{status},{lat},{ns},{lon},{ew},10.0,45.0,010326,,,A")


def degrees(dm: str, hemisphere: str) -> float:
    """ddmm.mmmm / dddmm.mmmm -> signed decimal degrees."""
    head, minutes = dm[: dm.index(".") - 2], float(dm[dm.index(".") - 2:])
    value = int(head) + minutes / 60.0
    return -value if hemisphere in "SW" else value


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_nmea_udp_broadcast_into_a_detection_body():
    track = PositionTrack(max_fixes=100, max_fix_age_s=30.0, source="nmea-udp")
    source = UdpNmeaSource(track, "127.0.0.1", 0, clock=lambda: T0 + 5)
    source.start()
    try:
        assert source.wait_bound(5.0)
        fixes = [
            ("120000", "4130.0000", "N", "06630.0000", "W"),
            ("120001", "4130.0060", "N", "06630.0120", "W"),
            ("120002", "4130.0120", "N", "06630.0240", "W"),
        ]
        lines = [rmc(*f) for f in fixes]
        datagrams = [
            lines[0] + "\r\n" + "!AIVDM,1,1,,A,13u?etPv2;0n:dDPwUM1U1Cb069D,0*23\r\n",
            lines[1][:-2] + "00\r\n",  # corrupt checksum: rejected
            lines[1] + "\r\n" + rmc("120001", "0000.0000", "N", "00000.0000", "E", "V"),
            lines[2] + "\r\n",
        ]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for datagram in datagrams:
                tx.sendto(datagram.encode("ascii"), ("127.0.0.1", source.port))
        wait_for(lambda: track.fixes == 3)
    finally:
        source.stop()
    assert source.parser.errors == 1

    # a detection that starts 1.25 s after 12:00:00 on the sample clock
    stream_start = T0 - 100.0
    rate, start_sample = 2000, int(101.25 * 2000)
    body = {"schema": "pamlive.detection/1", "class": "right_whale"}
    assert track.stamp(body, stream_start + start_sample / rate)
    lat1, lat2 = degrees(fixes[1][1], "N"), degrees(fixes[2][1], "N")
    lon1, lon2 = degrees(fixes[1][3], "W"), degrees(fixes[2][3], "W")
    assert body["position"]["lat"] == pytest.approx(lat1 + 0.25 * (lat2 - lat1), abs=1e-6)
    assert body["position"]["lon"] == pytest.approx(lon1 + 0.25 * (lon2 - lon1), abs=1e-6)
    assert body["position"]["lon"] < -66.5  # west is negative
    assert body["position"]["fix_age_s"] == pytest.approx(0.25)
    assert body["position"]["interpolated"] is True
    assert body["position"]["source"] == "nmea-udp"
    json.dumps(body)  # serialisable as it goes on the bus
    assert track.flags(T0 + 10) == []
    assert track.flags(T0 + 60) == ["position.no_fix"]


def test_no_fix_means_no_position_field():
    track = PositionTrack(100, max_fix_age_s=10.0, source="gpsd")
    body: dict = {}
    assert not track.stamp(body, T0) and "position" not in body
    assert track.flags(T0) == ["position.no_fix"]
    track.add(Fix(T0, 10.0, 20.0))
    assert not track.stamp(body, T0 + 11.0) and "position" not in body  # stale
    assert track.stamp(body, T0 + 9.0) and body["position"]["fix_age_s"] == 9.0
    assert body["position"]["interpolated"] is False
    assert track.at(T0 - 3.0).fix_age_s == 3.0  # before the first fix: the nearest one


def test_interpolation_across_the_antimeridian_and_long_gaps():
    track = PositionTrack(100, max_fix_age_s=10.0, source="t")
    track.add(Fix(T0, 50.0, 179.9))
    track.add(Fix(T0 + 10, 50.1, -179.9))
    mid = track.at(T0 + 5)
    assert mid.lat == pytest.approx(50.05) and abs(abs(mid.lon) - 180.0) < 1e-9
    quarter = track.at(T0 + 2.5)
    assert quarter.lon == pytest.approx(179.95)
    track.add(Fix(T0 + 100, 51.0, -179.0))  # a 90 s gap: no interpolation across it
    assert track.at(T0 + 55) is None
    assert track.at(T0 + 95).lat == 51.0 and track.at(T0 + 95).fix_age_s == 5.0


def test_history_is_bounded_and_ordered():
    track = PositionTrack(max_fixes=5, max_fix_age_s=1.0, source="t")
    for i in range(10):
        assert track.add(Fix(T0 + i, float(i), 0.0))
    assert not track.add(Fix(T0 + 3, 0.0, 0.0))  # out of order / duplicate
    assert track.rejected == 1
    assert track.at(T0 + 2) is None and track.at(T0 + 7).lat == 7.0


def test_gga_time_of_day_is_dated_across_midnight():
    midnight = datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC).timestamp()
    parser = NmeaParser(clock=lambda: midnight)
    fix = parser.parse(sentence("GPGGA,235959.00,4130.0000,S,06630.0000,E,1,08,0.9,5.0,M,,M,,"))
    assert fix.time == midnight - 2.0
    assert fix.lat == pytest.approx(-41.5) and fix.lon == pytest.approx(66.5)
    no_fix = sentence("GPGGA,235959.00,4130.0000,S,06630.0000,E,0,00,,,M,,M,,")
    assert parser.parse(no_fix) is None
    gll = parser.parse(sentence("GPGLL,4130.0000,N,06630.0000,W,000000.50,A,A"))
    assert gll.time == midnight - 0.5


class FakeGpsd:
    """A gpsd on loopback: expects ?WATCH, sends VERSION, a no-fix and a 3D-fix TPV."""

    def __init__(self, reports: list[list[bytes]]) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.commands: list[bytes] = []
        self._sessions = reports
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        for chunks in self._sessions:  # one connection per session, then hang up
            conn, _ = self.server.accept()
            with conn:
                self.commands.append(conn.recv(1024))
                for chunk in chunks:
                    conn.sendall(chunk)
                    time.sleep(0.02)
                time.sleep(0.1)
        self.server.close()


def tpv(t: str, lat: float, lon: float, mode: int = 3) -> bytes:
    return (json.dumps({"class": "TPV", "device": "/dev/ttyUSB0", "mode": mode, "time": t,
                        "lat": lat, "lon": lon, "speed": 5.1}) + "\n").encode()


def test_gpsd_json_client_reads_fixes_and_reconnects():
    first = tpv("2026-03-01T12:00:00.000Z", 41.5, -66.5)
    gpsd = FakeGpsd([
        [b'{"class":"VERSION","release":"3.25","proto_major":3,"proto_minor":15}\n',
         tpv("2026-03-01T11:59:59.000Z", 0.0, 0.0, mode=1),  # no fix yet
         first[:30], first[30:],  # a report split across TCP segments
         b'{"class":"TPV","mode":3,"time":"garbage"}\n'],
        [tpv("2026-03-01T12:00:01.000Z", 41.6, -66.4)],
    ])
    track = PositionTrack(100, 10.0, "gpsd")
    source = GpsdSource(track, "127.0.0.1", gpsd.port)
    source.start()
    try:
        wait_for(lambda: track.fixes == 2, timeout=8.0)  # second fix after a reconnect
    finally:
        source.stop()
    assert gpsd.commands[0].startswith(b"?WATCH=") and b'"json":true' in gpsd.commands[0]
    assert source.errors == 1 and source.reconnects >= 1
    mid = track.at(T0 + 0.5)
    assert mid.lat == pytest.approx(41.55) and mid.lon == pytest.approx(-66.45)


def test_settings_and_factory():
    s = load_config(overrides={"position": {"source": "udp", "udp_port": 10110}}).position
    track, source = open_position_source(s, clock=time.time)
    assert isinstance(source, UdpNmeaSource) and track.source == "nmea-udp"
    assert open_position_source(PositionSettings(), clock=time.time) is None
    with pytest.raises(ConfigError, match=r"\[position\] source must be"):
        load_config(overrides={"position": {"source": "ais"}})
