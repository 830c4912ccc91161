"""Hand back LLVM's resident code pages once Numba's kernels run.

Loading llvmlite's library (~180 MB) runs LLVM's static constructors, which touch pages
all over it: ~95 MB of the monitor's RSS are clean pages of that file which it never
executes again, since its kernels are machine code by then (loaded from Numba's cache or
compiled at warm-up). ``madvise(MADV_DONTNEED)`` unmaps them; should LLVM run again (a
kernel compiled for a new type), they fault back in from the file. Only mappings that
are read-only and hold no private dirty page (relocated data) are touched: dropping such
a page would lose what was written to it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

_MADV_DONTNEED = 4
_LIBRARY = "libllvmlite"


def _clean_mappings(library: str) -> list[tuple[int, int, int]]:
    """``(start, end, resident bytes)`` of the read-only, never written mappings of
    ``library`` in this process, from ``/proc/self/smaps``."""
    found: list[tuple[int, int, int]] = []
    current: list[int] | None = None  # start, end, rss, dirty of a mapping of library
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            field, _, rest = line.partition(" ")
            if "-" in field and not field.endswith(":"):  # a mapping's header line
                if current is not None and current[3] == 0:
                    found.append((current[0], current[1], current[2]))
                parts = line.split()
                current = None
                if len(parts) > 5 and library in parts[5] and "w" not in parts[1]:
                    start, end = (int(a, 16) for a in field.split("-"))
                    current = [start, end, 0, 0]
            elif current is not None and field == "Rss:":
                current[2] = int(rest.split()[0]) * 1024
            elif current is not None and field in ("Private_Dirty:", "Anonymous:"):
                current[3] += int(rest.split()[0])
    if current is not None and current[3] == 0:
        found.append((current[0], current[1], current[2]))
    return found


def release_compiler_pages() -> int:
    """Unmap llvmlite's resident clean pages; the bytes released (0 where there is no
    llvmlite loaded, no ``/proc`` or no ``madvise``)."""
    if "llvmlite" not in sys.modules or not os.path.exists("/proc/self/smaps"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    released = 0
    for start, end, rss in _clean_mappings(_LIBRARY):
        if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start),
                        _MADV_DONTNEED) == 0:
            released += rss
        else:
            log.debug("madvise of llvmlite pages failed: %s", os.strerror(ctypes.get_errno()))
    return released


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 1 << 20


def return_freed_memory(threshold: int = MMAP_THRESHOLD) -> bool:
    """Have glibc serve every allocation of ``threshold`` bytes or more with its own
    mapping, unmapped when freed. By default the threshold rises to the size of each
    mapped block freed (up to 32 MiB): then a clip's spectrogram rows or a block of
    windows, tens of MB freed a second later, stay resident on the heap for good (~50 MB
    of the live monitor at 8 ch x 96 kHz). False where there is no glibc ``mallopt``."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
