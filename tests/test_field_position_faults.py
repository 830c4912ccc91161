"""Position faults from the field: a fix dated far ahead, fixes off the globe."""

from __future__ import annotations

import json
import socket

from test_field_position import T0, rmc, sentence, wait_for

from pamlive.field.position import GpsdSource, NmeaParser, PositionTrack, UdpNmeaSource


def test_a_fix_a_year_ahead_does_not_block_later_fixes() -> None:
    now = [T0 + 5]
    track = PositionTrack(100, max_fix_age_s=30.0, source="nmea-udp", clock=lambda: now[0])
    source = UdpNmeaSource(track, "127.0.0.1", 0, clock=lambda: now[0])
    source.start()
    try:
        assert source.wait_bound(5.0)
        ahead = sentence("GPRMC,120003.00,A,4130.0000,N,06630.0000,W,10.0,45.0,010327,,,A")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for line in (rmc("120000", "4130.0000", "N", "06630.0000", "W"), ahead,
                         rmc("120001", "4130.0060", "N", "06630.0120", "W"),
                         rmc("120004", "4130.0240", "N", "06630.0480", "W")):
                tx.sendto((line + "\r\n").encode("ascii"), ("127.0.0.1", source.port))
            wait_for(lambda: track.fixes + track.future == 4)
    finally:
        source.stop()
    assert (track.fixes, track.future) == (3, 1)
    position = track.at(T0 + 4)
    assert position is not None and position.fix_age_s == 0.0
    assert track.flags(T0 + 5) == ["position.future_fix"]
    assert track.flags(T0 + 40) == ["position.no_fix"]  # the age grows: flagged
    assert track.flags(T0 + 120) == ["position.no_fix"]


def test_latitude_and_longitude_off_the_globe_are_rejected() -> None:
    parser = NmeaParser(clock=lambda: T0)
    assert parser.parse(rmc("120000", "9130.0000", "N", "06630.0000", "W")) is None
    assert parser.parse(rmc("120000", "4130.0000", "N", "18130.0000", "W")) is None
    assert parser.errors == 2
    good = parser.parse(rmc("120000", "8959.0000", "S", "17959.0000", "E"))
    assert good is not None and good.lat < -89.98 and good.lon > 179.98
    gga = sentence("GPGGA,120000.00,9130.0000,N,06630.0000,W,1,08,0.9,5.0,M,0.0,M,,")
    assert parser.parse(gga) is None

    gpsd = GpsdSource(PositionTrack(10, 30.0, "gpsd"), "127.0.0.1", 1)
    tpv = {"class": "TPV", "mode": 2, "time": "2026-03-01T12:00:00Z", "lat": 41.0}
    for lat, lon in ((91.5, 0.0), (0.0, -181.5), (float("nan"), 0.0)):
        assert gpsd.parse_report(json.dumps({**tpv, "lat": lat, "lon": lon}).encode()) is None
    assert gpsd.errors == 3
    assert gpsd.parse_report(json.dumps({**tpv, "lon": 2.0}).encode()) is not None
