"""Keys typed in the dashboard's terminal, read without blocking the bus loop.

The terminal is put in cbreak mode (keys arrive one by one, not echoed; Ctrl-C still
interrupts) while the dashboard runs, and restored after. Not a terminal (a pipe, a
test's recording console): no keys.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import tty
from typing import TextIO

from pamlive.dashboard.review import BACKSPACE, DOWN, ENTER, ESCAPE, UP

_SEQUENCES = {"\x1b[A": UP, "\x1bOA": UP, "\x1b[B": DOWN, "\x1bOB": DOWN}
_SINGLE = {"\r": ENTER, "\n": ENTER, "\x7f": BACKSPACE, "\x08": BACKSPACE, "\x1b": ESCAPE}


def split_keys(text: str) -> list[str]:
    """Typed characters as keys: arrows and Escape by name, the rest as they are."""
    keys: list[str] = []
    i = 0
    while i < len(text):
        for seq, name in _SEQUENCES.items():
            if text.startswith(seq, i):
                keys.append(name)
                i += len(seq)
                break
        else:
            if text.startswith("\x1b[", i):  # another escape sequence: skip it whole
                j = i + 2
                while j < len(text) and not text[j].isalpha() and text[j] != "~":
                    j += 1
                i = j + 1
                continue
            keys.append(_SINGLE.get(text[i], text[i]))
            i += 1
    return keys


class KeyReader:
    """Non-blocking key reads from a terminal; a context manager that restores it."""

    def __init__(self, stream: TextIO | None = None) -> None:
        stream = stream if stream is not None else sys.stdin
        self._fd: int | None = None
        self._saved: list | None = None
        try:
            if stream.isatty():
                self._fd = stream.fileno()
                self._saved = termios.tcgetattr(self._fd)
                tty.setcbreak(self._fd)
        except (OSError, ValueError, termios.error):
            self._fd = None

    def read(self) -> list[str]:
        """The keys typed since the last call (none: an empty list, at once)."""
        if self._fd is None or not select.select([self._fd], [], [], 0)[0]:
            return []
        data = os.read(self._fd, 1024)
        return split_keys(data.decode("utf-8", "replace")) if data else []

    def close(self) -> None:
        if self._fd is not None and self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        self._fd = None

    def __enter__(self) -> KeyReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
