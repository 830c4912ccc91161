"""Raw archive: segment files named by their first sample's UTC time, the disk budget,
and the disk-full path (mocked statvfs and, where the test may mount one, a real tmpfs)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pamlive.config import load_config
from pamlive.errors import ConfigError
from pamlive.field.archive import ArchiveSettings, DiskUsage, RawArchive

RATE = 1000
START = datetime(2026, 3, 1, 12, 0, 1, 500_000, tzinfo=UTC)
NOW = START.timestamp()


def signal(seconds: float, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.9, 0.9, (int(seconds * RATE), channels)).astype(np.float32)


def feed(archive: RawArchive, x: np.ndarray, first: int = 0, block: int = 700) -> None:
    for i in range(0, x.shape[0], block):
        assert archive.submit(x[i:i + block], first + i)


class FakeDisk:
    """statvfs of a 1 MB filesystem: other data + what the test directory holds."""

    def __init__(self, root: Path, total: int = 1_000_000, other: int = 0) -> None:
        self.root, self.total, self.other = root, total, other

    def __call__(self, _path: Path) -> DiskUsage:
        used = self.other + sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
        return DiskUsage(self.total, used, max(0, self.total - used))


def test_segments_roll_on_utc_boundaries_and_hold_every_sample(tmp_path):
    settings = ArchiveSettings(enabled=True, segment_minutes=0.05, min_free_percent=0.0)
    archive = RawArchive(tmp_path / "archive", None, RATE, 2, START, settings)
    x = signal(10.0)
    feed(archive, x)
    archive.close()
    files = sorted((tmp_path / "archive").glob("*.flac"))
    assert [f.name for f in files] == [
        "raw_20260301T120001_500Z.flac",  # first sample's time, then on 3 s boundaries
        "raw_20260301T120003_000Z.flac",
        "raw_20260301T120006_000Z.flac",
        "raw_20260301T120009_000Z.flac",
    ]
    parts = [sf.read(f, dtype="float32", always_2d=True) for f in files]
    assert [p[0].shape[0] for p in parts] == [1500, 3000, 3000, 2500]
    assert all(rate == RATE for _, rate in parts)
    np.testing.assert_allclose(np.concatenate([p[0] for p in parts]), x, atol=2**-22)
    assert archive.stats()["files"] == 4 and archive.flags == []


def test_a_gap_in_the_sample_clock_starts_a_new_truthfully_named_file(tmp_path):
    settings = ArchiveSettings(enabled=True, segment_minutes=60.0, min_free_percent=0.0)
    archive = RawArchive(tmp_path, None, RATE, 1, START, settings)
    feed(archive, signal(2.0, 1))
    feed(archive, signal(2.0, 1, seed=1), first=2000 + 1250)  # 1.25 s lost
    archive.close()
    names = sorted(p.name for p in tmp_path.glob("*.flac"))
    assert names == ["raw_20260301T120001_500Z.flac", "raw_20260301T120004_750Z.flac"]


def make_clips(directory: Path) -> None:
    directory.mkdir()
    for name, age_days in [("old_call.flac", 40), ("old_call.png", 40), ("young_call.flac", 2)]:
        (directory / name).write_bytes(os.urandom(20_000))
        os.utime(directory / name, (NOW - age_days * 86400.0, NOW - age_days * 86400.0))


def test_tiny_budget_deletes_the_oldest_archive_files_first(tmp_path):
    clips = tmp_path / "clips"
    make_clips(clips)
    now = [NOW]
    settings = ArchiveSettings(enabled=True, segment_minutes=0.05, max_gb=120_000 / 1e9,
                               min_free_percent=0.0, keep_clips_days=30.0, check_s=1.0)
    archive = RawArchive(tmp_path / "archive", clips, RATE, 2, START, settings,
                         clock=lambda: now[0])
    for second in range(30):  # 30 s of noise: ~10 files of ~15 kB per 3 s, far over 120 kB
        now[0] = NOW + second
        feed(archive, signal(1.0, seed=second), first=second * RATE, block=1000)
        _wait_for(lambda n=second + 1: archive.stats()["seconds"] == n)
    archive.close()
    kept = sorted(p.name for p in (tmp_path / "archive").glob("*.flac"))
    assert kept, "the newest archive files stay"
    assert kept[-1] == "raw_20260301T120030_000Z.flac"  # the last file written
    assert "raw_20260301T120001_500Z.flac" not in kept
    assert len(list(clips.iterdir())) == 3  # evidence outlives raw audio
    budgeted = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    # within budget as of the last check (the open file grows up to one check_s more)
    assert budgeted <= 120_000 + 2 * 15_000
    assert archive.deleted_files >= 3 and archive.flags == []


@pytest.mark.parametrize(("budget", "holds"), [(25_000, True), (10_000, False)])
def test_expired_clips_go_after_the_archive_young_clips_never(tmp_path, budget, holds):
    clips = tmp_path / "clips"
    make_clips(clips)
    settings = ArchiveSettings(enabled=True, max_gb=budget / 1e9, min_free_percent=0.0,
                               keep_clips_days=30.0)
    archive = RawArchive(tmp_path / "archive", clips, RATE, 1, START, settings)
    archive.close()
    for name in ("raw_20260301T110000_000Z.flac", "raw_20260301T100000_000Z.flac"):
        (tmp_path / "archive" / name).write_bytes(os.urandom(5_000))
    assert archive.enforce_budget(NOW) is holds
    assert sorted(p.name for p in clips.iterdir()) == ["young_call.flac"]
    assert list((tmp_path / "archive").iterdir()) == []
    assert archive.deleted_files == 4 and archive.deleted_bytes == 50_000


def test_full_disk_stops_the_archive_keeps_accepting_blocks_and_resumes(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "young_call.flac").write_bytes(os.urandom(50_000))
    disk = FakeDisk(tmp_path, total=1_000_000, other=0)
    now = [NOW]
    settings = ArchiveSettings(enabled=True, segment_minutes=60.0, min_free_percent=10.0,
                               check_s=1.0, recheck_s=5.0)
    archive = RawArchive(tmp_path / "archive", clips, RATE, 2, START, settings,
                         disk_usage=disk, clock=lambda: now[0])
    feed(archive, signal(3.0), block=1000)
    _wait_for(lambda: archive.stats()["seconds"] == 3.0)
    assert archive.flags == [] and archive.drain_events() == []

    disk.other = 920_000  # someone else fills the disk: free < 10 %
    now[0] += 2.0
    feed(archive, signal(1.0, seed=5), first=3000, block=1000)  # detection goes on
    _wait_for(lambda: archive.flags == ["archive.disk_full"])
    assert archive.drain_events()[0][0] == "archive.disk_full"
    assert (clips / "young_call.flac").exists()  # never deleted to make room
    assert archive.stats()["recording"] is False

    disk.other = 100_000  # space is back; the stopped archive re-checks after recheck_s
    now[0] += 6.0
    feed(archive, signal(1.0, seed=6), first=8000, block=1000)
    _wait_for(lambda: archive.flags == [])
    archive.close()
    assert [e[0] for e in archive.drain_events()] == ["archive.resumed"]
    names = sorted(p.name for p in (tmp_path / "archive").glob("*.flac"))
    assert names[-1] == "raw_20260301T120009_500Z.flac"  # sample 8000 = start + 8 s


def test_full_queue_drops_and_counts_without_blocking(tmp_path):
    gate = threading.Event()

    def stalled_disk(_path: Path) -> DiskUsage:
        gate.wait(5.0)  # the writer thread is stuck on a slow disk
        return DiskUsage(100, 0, 100)

    settings = ArchiveSettings(enabled=True, queue_blocks=4)
    archive = RawArchive(tmp_path, None, RATE, 1, START, settings, disk_usage=stalled_disk)
    accepted = [archive.submit(np.zeros((100, 1), np.float32), i * 100) for i in range(20)]
    assert sum(accepted) <= 5 and archive.dropped_blocks == 20 - sum(accepted)
    assert "archive.drops" in archive.flags
    gate.set()
    archive.close()


def test_real_enospc_on_a_tiny_filesystem_stops_the_archive(tmp_path):
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs",
                              str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the mocked statvfs test covers it")
    try:
        settings = ArchiveSettings(enabled=True, min_free_percent=0.0, check_s=3600.0)
        archive = RawArchive(mount_point, None, RATE, 2, START, settings)
        feed(archive, signal(120.0), block=1000)  # ~1.4 MB of FLAC into 256 kB
        _wait_for(lambda: archive.flags == ["archive.disk_full"])
        assert "write failed" in archive.stopped_reason
        assert archive.submit(np.zeros((10, 2), np.float32), 10**6)  # still accepts
        archive.close()
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_settings_validation():
    s = load_config(overrides={"archive": {"enabled": True, "max_gb": 50}}).archive
    assert s.max_gb == 50.0 and s.enabled
    with pytest.raises(ConfigError, match=r"\[archive\] bits must be 16 or 24"):
        load_config(overrides={"archive": {"bits": 32}})
    with pytest.raises(ConfigError, match=r"\[archive\] max_gb must be positive"):
        load_config(overrides={"archive": {"max_gb": 0}})


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)
