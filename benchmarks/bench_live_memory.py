"""Live memory at 8 channels x 96 kHz with the right whale configuration (issue 25).

The recording of ``bench_live_cpu.py`` (DCLDE 2013, nine upcalls, resampled to 96 kHz on
8 channels, written to a temporary folder) is played through ``pamlive run --play FILE
-c builtin:narw --headless`` (only the data folder and bus endpoints changed). The
process's ``/proc/PID/status`` is read every 0.1 s: the peak is the kernel's high-water
mark (VmHWM), so no brief peak between two reads is missed. Printed per tree
(``--before``: a git ref in a temporary worktree, run at the same time as this tree):
medians over ``--repeats`` runs of the peak, the RSS once listening (imports, model,
warm-up) and the RSS at the end of the audio, with file-backed vs anonymous pages; then
where the memory goes in this tree: the RSS each import of the live path adds, in one
fresh process (scipy is not among them: the live path imports none of its subpackages;
Numba imports scipy's package and its BLAS when it compiles), and the ring's size.

    python benchmarks/bench_live_memory.py [--before 7a100e0] [--repeats 3] [--seconds 120]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench_live_cpu import CHANNELS, RATE, REPO, make_audio  # type: ignore[import-not-found]

# RSS (MiB) after each import of the live path, in import order, in one fresh process
_IMPORTS = textwrap.dedent("""
    import importlib, sys
    def rss():
        fields = dict(l.split(":", 1) for l in open("/proc/self/status"))
        return int(fields["VmRSS"].split()[0]) / 1024
    last = rss()
    print(f"python {last:.1f}")
    for name in sys.argv[1:]:
        importlib.import_module(name)
        now = rss()
        print(f"{name} {now - last:.1f}")
        last = now
""")
STAGES = ["numpy", "llvmlite.binding", "numba", "onnxruntime", "zmq", "soundfile", "PIL.Image",
          "rich", "pamlive.engine", "pamlive.app", "pamlive.cli"]


def status_mib(pid: int) -> dict[str, float]:
    """VmHWM, VmRSS, RssAnon, RssFile of a live process (MiB); empty once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f)
    except OSError:
        return {}
    return {k: int(fields[k].split()[0]) / 1024
            for k in ("VmHWM", "VmRSS", "RssAnon", "RssFile") if k in fields}


def start(tree: Path, audio: Path, work: Path, name: str, seconds: float) -> subprocess.Popen:
    """The run; HOME is a scratch folder, so the config's ``~/pamlive-data`` is too."""
    (work / name).mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tree), "HOME": str(work / name)}
    cmd = [sys.executable, "-m", "pamlive", "run", "--play", str(audio), "-c", "builtin:narw",
           "--headless", "--duration", str(seconds + 10),
           "--publish", f"ipc://{work}/{name}-pub", "--replay", f"ipc://{work}/{name}-replay"]
    log = open(work / f"{name}.log", "wb")  # noqa: SIM115 (the child writes it)
    return subprocess.Popen(cmd, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)


def sample(procs: dict[str, subprocess.Popen], work: Path) -> dict[str, dict[str, float]]:
    """Peak (VmHWM), RSS 5 s in (listening) and last RSS of each process, polled at 0.1 s."""
    seen: dict[str, dict[str, float]] = {n: {} for n in procs}
    started = time.monotonic()
    while any(p.poll() is None for p in procs.values()):
        for name, p in procs.items():
            now = status_mib(p.pid) if p.poll() is None else {}
            if not now:
                continue
            got = seen[name]
            got["peak"] = now["VmHWM"]
            if time.monotonic() - started < 5.0:
                got["listening"] = now["VmRSS"]
            got.update(rss=now["VmRSS"], anon=now["RssAnon"], file=now["RssFile"])
        time.sleep(0.1)
    for name, p in procs.items():
        if p.returncode != 0:
            tail = (work / f"{name}.log").read_text(errors="replace")[-2000:]
            raise SystemExit(f"{name}: pamlive run exited {p.returncode}:\n{tail}")
    return seen


def import_costs(tree: Path) -> list[tuple[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", _IMPORTS, *STAGES], env=env, cwd=tree,
                         capture_output=True, text=True, check=True).stdout
    return [(name, float(mib)) for name, mib in (line.split() for line in out.splitlines())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="7a100e0", help="git ref of the 'before' tree ('' = none)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=120.0, help="audio played per run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pamlive-mem-", dir="/tmp") as tmp:
        work = Path(tmp)
        audio = work / "narw_8ch_96k.wav"
        make_audio(audio, args.seconds)
        trees = {"after": REPO}
        if args.before:
            trees["before"] = work / "before"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q",
                            str(trees["before"]), args.before], check=True)
        try:
            sample({n: start(t, audio, work, n, 5.0) for n, t in trees.items()}, work)  # caches
            runs: dict[str, list[dict[str, float]]] = {n: [] for n in trees}
            for i in range(args.repeats):
                got = sample({n: start(t, audio, work, n, args.seconds)
                              for n, t in trees.items()}, work)
                for n, v in got.items():
                    runs[n].append(v)
                print(f"run {i + 1}: " + ", ".join(f"{n} peak {v['peak']:.0f} MiB"
                                                   for n, v in got.items()), flush=True)
        finally:
            if args.before:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                                str(trees["before"])], check=False)
    print(f"\npamlive run --play (8 ch x 96 kHz, {args.seconds:.0f} s) -c builtin:narw "
          f"--headless, median of {args.repeats}, MiB")
    print(f"{'tree':<22}{'peak':>7}{'listening':>11}{'at end':>8}{'anon':>7}{'file':>7}")
    for name, rows in runs.items():
        label = f"{name} ({args.before})" if name == "before" else name
        m = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"{label:<22}{m['peak']:7.0f}{m['listening']:11.0f}{m['rss']:8.0f}"
              f"{m['anon']:7.0f}{m['file']:7.0f}")
    print("\nwhere it goes (this tree): RSS added by each import of the live path, MiB")
    for name, mib in import_costs(REPO):
        print(f"  {name:<22}{mib:7.1f}")
    ring = 30.0 * RATE * CHANNELS * 4 / 2**20
    print(f"  {'ring (30 s, float32)':<22}{ring:7.1f}  (filled as audio arrives)")


if __name__ == "__main__":
    main()
