"""Live memory (issue 25): what the live right whale monitor holds, checked in processes
of their own so that nothing another test imported counts."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/smaps")
def test_llvm_code_pages_are_handed_back_and_kernels_still_run():
    out = run_python("""
        from numba import njit
        import pamlive.field.watchdog  # Numba kernels, LLVM loaded
        from pamlive.live.memory import _clean_mappings, release_compiler_pages
        def resident():
            return sum(rss for _, _, rss in _clean_mappings("libllvmlite")) / 2**20
        before = resident()
        released = release_compiler_pages() / 2**20
        after = resident()
        add = njit(lambda a, b: a + b)  # LLVM still works: compiles a new kernel
        print(before, released, after, add(2, 3))
    """).split()
    before, released, after = (float(v) for v in out[:3])
    # tens of MiB resident (how many depends on the page cache's fault-around), nearly
    # all handed back
    assert before > 20 and released > 0.9 * before and after < 5, out
    assert out[3] == "5"
