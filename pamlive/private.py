"""Owner-only files for what says where the vessel was.

The detection log, the evidence clips and the raw archive carry the ship's position and
times (an observer's data, often commercially sensitive), so the monitor creates them
readable by its own user only, whatever umask it inherited (a shell's 022 would make them
world-readable): files 0600, the folders it makes 0700. Files and folders that already
exist keep the mode their operator gave them. The demo's default data folder is per user
for the same reason: a fixed name in a shared temp folder is readable by, or can be made
first by, another user.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from pamlive.errors import ConfigError

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def make_private_dir(path: Path) -> None:
    """``path`` and its missing parents, each one made here 0700 (an existing one is left
    as it is); OSError as ``Path.mkdir`` raises it."""
    missing = []
    for p in (path, *path.parents):
        if os.path.lexists(p):
            break
        missing.append(p)
    for p in reversed(missing):
        try:
            p.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:  # made meanwhile (another writer thread)
            continue
        p.chmod(PRIVATE_DIR)  # mkdir's mode is filtered by the umask
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(path))


def create_private_file(path: Path, *, empty: bool = True) -> None:
    """``path`` made 0600 before a writer that opens it by name and keeps its mode
    (libsndfile, PIL, SQLite). ``empty``: a file about to be written whole (one left
    there is emptied and made private); else one that may hold data already (a detection
    log from an earlier run), which is then left as it is."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if empty else os.O_EXCL)
    try:
        fd = os.open(path, flags, PRIVATE_FILE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)


def demo_data_dir() -> Path:
    """Where ``pamlive demo`` keeps its data unless its config says: the login's private
    runtime folder (``$XDG_RUNTIME_DIR/pamlive-demo``), else ``pamlive-demo-<uid>`` in the
    temp folder (``$TMPDIR``, else ``/tmp``)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return Path(runtime) / "pamlive-demo"
    return Path(tempfile.gettempdir()) / f"pamlive-demo-{os.getuid()}"


def claim_private_dir(path: Path) -> None:
    """``path`` as a folder this user alone owns and enters, made if missing; one line if
    it is a link or another user's (in a shared temp folder anyone may make it first)."""
    try:
        make_private_dir(path)
        st = path.lstat()
    except OSError as exc:
        raise ConfigError(f"cannot create data folder {path}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.getuid():
        raise ConfigError(f"data folder {path} is a link or another user's: remove it, or "
                          "set data_dir in a config (pamlive demo -c FILE)")
    if st.st_mode & 0o077:
        path.chmod(PRIVATE_DIR)
