"""A sink's place in the alert stream: the last alert it delivered, kept across restarts."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pamlive.alerts.client import Position
from pamlive.errors import ConfigError


class ResumeState:
    """``[run_id, seq]`` as JSON in one file, replaced at once on every save.

    Written after each alert is delivered, so a restarted sink passes it to
    ``AlertClient(resume_after=...)`` and misses nothing (an alert delivered just before a
    kill, before its save, comes again: at-least-once).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Position | None:
        """The saved position; None for a first start (no file yet)."""
        try:
            run_id, seq = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as e:
            raise ConfigError(f"sink state {self.path} is unreadable ({e}): "
                              "remove it to start from the current run") from e
        if not isinstance(run_id, str) or not isinstance(seq, int):
            raise ConfigError(f"sink state {self.path} is not [run_id, seq]: remove it to "
                              "start from the current run")
        return run_id, seq

    def save(self, position: Position) -> None:
        """Replace the file at once and durably: a kill or power loss mid-write must
        leave the previous position, never an empty file."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(list(position), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
