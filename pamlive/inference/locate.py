"""Where a model package named by a relative path is found: in the working folder, else
in the user's model folder. Packages pamlive cannot ship (batdetect2's weights are
CC-BY-NC-4.0) are converted by each user; kept in that folder, ``-c builtin:bats`` finds
them from whichever folder pamlive runs in."""

from __future__ import annotations

import os
from pathlib import Path

from pamlive.errors import ModelError

# packages a user converts from their own installation, named by the folder name the
# shipped configs use
IMPORT_HINTS = {"batdetect2": "make it from your batdetect2 installation: "
                              "pamlive import-model batdetect2 -o {path}"}


def user_models_dir() -> Path:
    """``$XDG_DATA_HOME/pamlive/models``, else ``~/.local/share/pamlive/models``."""
    data = os.environ.get("XDG_DATA_HOME", "")
    base = Path(data) if os.path.isabs(data) else Path.home() / ".local" / "share"
    return base / "pamlive" / "models"


def locate_package(path: str | Path) -> Path:
    """``path`` as given if it exists, else (relative) in :func:`user_models_dir`; one line
    saying where it was looked for, and how to make it where pamlive can make it."""
    p = Path(path)
    if p.exists():
        return p
    if p.is_absolute():
        raise ModelError(f"{p}: model package not found{_import_hint(p)}")
    mine = user_models_dir() / p
    if mine.exists():
        return mine
    raise ModelError(f"{p}: model package not found here nor in {user_models_dir()}"
                     f"{_import_hint(mine)}")


def _import_hint(p: Path) -> str:
    hints = [h for key, h in IMPORT_HINTS.items() if p.name.startswith(key)]
    return f" ({hints[0].format(path=p)})" if hints else ""
