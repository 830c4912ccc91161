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


def test_the_live_path_imports_no_scipy_subpackage():
    """scipy.signal (and the scipy.sparse, linalg, optimize ... it pulls in) was ~47 MiB of
    the live monitor's RSS for firwin, get_window and the clip PNG's spectrogram; scipy.fft
    (the spectrogram's FFT) or scipy.ndimage (the bat gate) ~28 MiB more. Numba imports
    scipy itself and scipy.linalg's BLAS (it compiles against them): not ours to cut."""
    out = run_python("""
        import sys
        import pamlive.cli, pamlive.app, pamlive.engine, pamlive.sources.playback
        from pamlive.dsp.resample import StreamResampler
        from pamlive.field.clips import _band_power
        from pamlive.inference.package import load_model_package
        import numpy as np
        package = load_model_package("builtin:narw")
        package.chain().output_shape(package.segment_samples)  # the spectrogram's windows
        StreamResampler(96_000, 2_000, 8)  # the anti-alias filter
        _band_power(np.zeros(96_000, np.float32), 96_000, 16384, 500.0)  # a clip's PNG
        print(sorted(m for m in sys.modules if m.split(".")[:2][-1] in
                     ("signal", "fft", "ndimage", "sparse", "optimize", "interpolate")
                     and m.startswith("scipy.")))
    """)
    assert out.strip() == "[]", out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc, /proc")
def test_blocks_of_a_mib_or_more_are_not_served_from_the_heap():
    """glibc raises its mmap threshold to each mapped block freed: from then on blocks of
    that size come from the heap, where a freed one stays resident whenever anything
    above it is still in use (a clip's 20 MB of spectrogram rows at 8 ch x 96 kHz did,
    for good). With the threshold fixed at 1 MiB, they are mappings of their own."""
    out = run_python("""
        import numpy as np
        from pamlive.live.memory import return_freed_memory
        def heap_mib():
            for line in open("/proc/self/maps"):
                if line.rstrip().endswith("[heap]"):
                    a, b = (int(v, 16) for v in line.split()[0].split("-"))
                    return (b - a) / 2**20
        print(return_freed_memory())
        np.ones(5 * 2**20 // 8).sum()  # a mapped block freed: by default the threshold rises
        before = heap_mib()
        blocks = [np.ones(2 * 2**20 // 8) for _ in range(3)]
        print(heap_mib() - before)
    """).split()
    assert out[0] == "True"
    assert float(out[1]) < 1, f"the heap grew by {out[1]} MiB for three 2-MiB blocks"
