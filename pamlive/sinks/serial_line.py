"""Serial-line sink: one sentence per alert to bridge equipment (sentences.py).

Writes to a serial device (or a pseudo-terminal) with plain termios, no extra package:
8N1, raw output (the ``\\r\\n`` of each sentence goes out as it is), the given speed,
and waits for each line to leave the port before it counts as delivered.
"""

from __future__ import annotations

import os
import termios

from pamlive.alerts.client import BusEvent
from pamlive.errors import ConfigError
from pamlive.sinks.sentences import alert_sentence, state_sentence, validation_sentence

BAUD_RATES = (4800, 9600, 19200, 38400, 57600, 115200)  # 4800: NMEA 0183; 38400: -HS


class SerialSink:
    """Sentences on a serial line; the device stays open for the sink's life."""

    def __init__(self, device: str, baud: int = 4800) -> None:
        if baud not in BAUD_RATES:
            raise ConfigError(f"serial speed {baud} is not one of {BAUD_RATES}")
        try:
            self._fd = os.open(device, os.O_WRONLY | os.O_NOCTTY)
        except OSError as e:
            raise ConfigError(f"cannot open serial device {device}: {e.strerror}") from e
        try:
            _configure(self._fd, baud)
        except termios.error as e:
            os.close(self._fd)
            raise ConfigError(f"{device} is not a serial line: {e.args[-1]}") from e

    def alert(self, event: BusEvent) -> None:
        if event.alert == "validation":
            self._write(validation_sentence(event.body or {}))
        else:
            self._write(alert_sentence(str(event.alert), event.body or {}))

    def notice(self, event: BusEvent) -> None:
        body = event.body or {}
        state = event.liveness or event.kind  # ok, stopped, lost; or gap
        self._write(state_sentence(state, body.get("run_id"), body.get("reason", event.error)))

    def close(self) -> None:
        os.close(self._fd)

    def _write(self, line: str) -> None:
        data = line.encode("ascii")
        while data:
            data = data[os.write(self._fd, data):]
        termios.tcdrain(self._fd)  # out of the port, not just in the driver's buffer


def _configure(fd: int, baud: int) -> None:
    """8 data bits, no parity, one stop bit, no modem control, raw output, ``baud``."""
    iflag, oflag, cflag, lflag, _, _, cc = termios.tcgetattr(fd)
    oflag &= ~termios.OPOST
    cflag = (cflag & ~(termios.CSIZE | termios.PARENB | termios.CSTOPB)) \
        | termios.CS8 | termios.CLOCAL | termios.CREAD
    speed = getattr(termios, f"B{baud}")
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, speed, speed, cc])
