"""What this machine's CPU can do, from /proc/cpuinfo (Linux), for tests that depend on it."""

from __future__ import annotations

from pathlib import Path


def cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


# bfloat16 arithmetic: AVX512-BF16 (AMD Zen 4, Intel Cooper Lake and later) or AMX
BF16_CPU = bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
