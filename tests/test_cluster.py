"""``pamlive analyze --cluster``: chunked results equal serial ones, on a real Dask cluster.

The recording is a real right whale excerpt (DCLDE 2013, calls around 632-656 s),
upsampled to 16 kHz so the resampler works and chunk edges (whole 16 s read blocks)
fall inside calls.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from pamlive.analyze import analyze_files
from pamlive.cluster.plan import ModelSpec, plan_file
from pamlive.cluster.run import ClusterRun, analyze_on_cluster, merge_windows
from pamlive.cluster.work import score_chunk
from pamlive.inference.package import load_model_package
from pamlive.raven import read_selection_table

distributed = pytest.importorskip("distributed")

RATE = 16000
CHUNK_S = 16.0  # one 256 000-frame read block at 16 kHz with a 1 s hop
EXCERPT = (601.0, 681.0)  # s of NOPP6_EST_20090328_000000.wav


@pytest.fixture(scope="module")
def package():
    return load_model_package("builtin:narw")


@pytest.fixture(scope="module")
def recordings(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three real inputs: the 16 kHz call excerpt, a 2 kHz training file, a quiet one."""
    folder = tmp_path_factory.mktemp("recordings")
    src = shared_dir / "data/narw-dclde2013/train/narw/NOPP6_EST_20090328_000000.wav"
    x, rate = sf.read(src, dtype="float32")
    a, b = (int(t * rate) for t in EXCERPT)
    sf.write(folder / "calls_16k.wav", resample_poly(x[a:b], RATE // rate, 1), RATE,
             subtype="FLOAT")
    sf.write(folder / "calls_2k.wav", x[: 300 * rate], rate, subtype="PCM_16")
    background = sorted((shared_dir / "data/narw-dclde2013/train/background").glob("*.wav"))[0]
    y, brate = sf.read(background, dtype="float32", frames=120 * 2000)
    sf.write(folder / "background.wav", y, brate)
    return folder


@pytest.fixture(scope="module")
def serial(recordings: Path, package, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serial")
    analyze_files([recordings], package, out, progress=False)
    return out


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        yield c


def run_cluster(client, inputs, package, outdir: Path) -> ClusterRun:
    return analyze_on_cluster(client, inputs, package, "builtin:narw", outdir,
                              chunk_s=CHUNK_S, progress=False)


def same_tables(a: Path, b: Path) -> list[str]:
    names = sorted(p.name for p in a.glob("*.selections.txt"))
    assert names == sorted(p.name for p in b.glob("*.selections.txt"))
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    return names


def test_plan_partitions_the_file_on_window_boundaries(package) -> None:
    frames = int(80.5 * RATE)
    chunks = plan_file(Path("x.wav"), frames, RATE, 1, package, 1.0, CHUNK_S)
    assert [c.own_start for c in chunks[1:]] == [c.own_end for c in chunks[:-1]]
    assert chunks[0].own_start == 0 and chunks[-1].own_end == frames
    assert [c.last for c in chunks] == [False] * (len(chunks) - 1) + [True]
    for c in chunks:
        assert c.read_start % RATE == 0  # a serial window starts there (1 s hop)
        assert c.read_start <= c.own_start
        assert c.first_window == c.read_start // RATE
    # context covers a window, a hop and the resampler's reach
    assert all(c.own_start - c.read_start >= 3 * RATE for c in chunks[1:])


def test_chunks_scored_one_by_one_give_the_serial_table(recordings: Path, serial: Path,
                                                        package, tmp_path: Path) -> None:
    """No Dask: chunk scores merged in order equal serial analyze, edges inside calls."""
    from pamlive.raven import write_selection_table
    from pamlive.sources.files import open_audio

    path = recordings / "calls_16k.wav"
    info = open_audio(path)
    chunks = plan_file(path, info.frames, RATE, 1, package, 1.0, CHUNK_S)
    assert len(chunks) >= 5
    parts = [score_chunk(c, ModelSpec("builtin:narw", 1.0)) for c in chunks]
    found, error = merge_windows(parts, package, RATE, 10, package.thresholds)
    assert error is None
    write_selection_table(tmp_path / "t.txt", found)
    expected = (serial / "calls_16k.selections.txt").read_bytes()
    assert (tmp_path / "t.txt").read_bytes() == expected
    edges = [c.own_start for c in chunks[1:]]
    across = [d for d in found if any(d.start_sample < e < d.end_sample for e in edges)]
    assert across, "no detection spans a chunk edge: the test would prove nothing"


def test_a_bad_sample_ends_the_file_where_serial_analysis_ends_it(
        recordings: Path, package, tmp_path: Path) -> None:
    x, _ = sf.read(recordings / "calls_16k.wav", dtype="float32")
    x[int(50.3 * RATE)] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, RATE, subtype="FLOAT")
    result = analyze_files([path], package, tmp_path / "serial", progress=False)
    chunks = plan_file(path, x.shape[0], RATE, 1, package, 1.0, CHUNK_S)
    parts = [score_chunk(c, ModelSpec("builtin:narw", 1.0)) for c in chunks]
    found, error = merge_windows(parts, package, RATE, 10, package.thresholds)
    assert error == result.files[0].error and "NaN or Inf sample at 50.300 s" in error
    assert [(d.start_sample, d.end_sample, d.score) for d in found] == \
        [(d.start_sample, d.end_sample, d.score) for d in result.files[0].detections]
    assert found, "detections before the bad sample are kept"


@pytest.mark.slow
def test_cluster_tables_equal_serial_tables_byte_for_byte(client, recordings: Path,
                                                          serial: Path, package,
                                                          tmp_path: Path) -> None:
    run = run_cluster(client, [recordings], package, tmp_path)
    assert run.chunks > 3 and not run.result.failed
    names = same_tables(serial, tmp_path)
    assert len(names) == 3
    # the combined store holds each detection once, with provenance
    from pamlive.cluster.store import ResultStore

    store = ResultStore(tmp_path / "pamlive-detections.sqlite")
    rows = store.detections()
    store.close()
    table_rows = sum(len(read_selection_table(tmp_path / n)) for n in names)
    assert len(rows) == table_rows > 0
    assert {r["model_version"] for r in rows} == {package.version}
    assert all(r["pamlive_version"] and r["config_hash"] for r in rows)

    # a re-run does no repeated work and leaves the tables alone
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.selections.txt")}
    again = run_cluster(client, [recordings], package, tmp_path)
    assert again.chunks == 0 and len(again.skipped) == 3
    assert stamps == {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.selections.txt")}

    # a changed input is analysed again
    os.utime(recordings / "background.wav")
    third = run_cluster(client, [recordings], package, tmp_path)
    assert sorted(p.name for p in third.skipped) == ["calls_16k.wav", "calls_2k.wav"]
    assert third.chunks >= 1
    same_tables(serial, tmp_path)


def test_a_bad_file_fails_alone(client, recordings: Path, serial: Path, package,
                                tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for p in recordings.glob("*.wav"):
        (inputs / p.name).symlink_to(p)
    (inputs / "broken.wav").write_bytes(b"RIFF....WAVEfmt not really")
    whole = (recordings / "calls_16k.wav").read_bytes()
    (inputs / "cut.wav").write_bytes(whole[: len(whole) // 2])  # ends mid-file: no table
    run = run_cluster(client, [inputs], package, tmp_path / "out")
    failed = {f.path.name: f.error or "" for f in run.result.failed}
    assert sorted(failed) == ["broken.wav", "cut.wav"]
    assert "broken.wav: not a readable audio file" in failed["broken.wav"]
    assert "cut.wav: truncated" in failed["cut.wav"]
    same_tables(serial, tmp_path / "out")


def test_a_worker_killed_mid_run_loses_and_repeats_nothing(client, recordings: Path,
                                                           serial: Path, package,
                                                           tmp_path: Path) -> None:
    killed: list[int] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy:
                pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    run = run_cluster(client, [recordings], package, tmp_path)
    killer.join()
    assert killed, "no worker was busy to kill"
    assert not run.result.failed
    same_tables(serial, tmp_path)
    from pamlive.cluster.store import ResultStore

    store = ResultStore(tmp_path / "pamlive-detections.sqlite")
    keys = [(r["path"], r["start_sample"], r["class"]) for r in store.detections()]
    store.close()
    assert len(keys) == len(set(keys)) == sum(
        len(read_selection_table(p)) for p in tmp_path.glob("*.selections.txt"))


@pytest.mark.slow
def test_cli_names_a_bad_cluster_address(recordings: Path, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "pamlive", "analyze", str(recordings), "-c",
                        str(Path(__file__).parents[1] / "configs/narw.toml"), "-o",
                        str(tmp_path), "--cluster", "nowhere"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("pamlive: error: --cluster must be")


@pytest.mark.slow
def test_ctrl_c_leaves_only_whole_tables_and_says_what_is_complete(
        recordings: Path, serial: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for copy in range(8):  # enough work that the interrupt lands mid-run
        for p in recordings.glob("*.wav"):
            (inputs / f"{copy}_{p.name}").symlink_to(p)
    config = tmp_path / "c.toml"
    config.write_text(f'[model]\npath = "builtin:narw"\n[cluster]\nchunk_s = {CHUNK_S}\n')
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "pamlive", "analyze", str(inputs), "-c",
                             str(config), "-o", str(out), "--cluster", "local:1",
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not list(out.glob("*.selections.txt")):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted:" in err and "run the same command again" in err
    tables = list(out.glob("*.selections.txt"))
    assert 0 < len(tables) < 24
    assert not list(out.glob("*.part"))
    for t in tables:  # every table left is whole
        original = t.name.split("_", 1)[1]
        assert t.read_bytes() == (serial / original).read_bytes()
