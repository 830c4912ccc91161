"""Evidence clips: cut by sample index, they contain the synthetic call; the PNG has the box."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from scipy.signal import chirp, correlate

from pamlive.buffers import RingBuffer
from pamlive.config import load_config
from pamlive.detection import Detection
from pamlive.errors import ConfigError
from pamlive.field.clips import ClipSettings, ClipWorker, ClipWriter, PendingClips

RATE = 2000
CALL_AT = 50_000  # first sample of the synthetic upcall
CALL_LEN = RATE  # 1 s, 100 -> 200 Hz


def upcall() -> np.ndarray:
    t = np.arange(CALL_LEN) / RATE
    return (0.3 * chirp(t, 100.0, t[-1], 200.0) * np.hanning(CALL_LEN)).astype(np.float32)


@pytest.fixture(scope="module")
def stream() -> np.ndarray:
    """60 s, 2 channels of noise; the call on channel 1 only."""
    rng = np.random.default_rng(3)
    x = (0.01 * rng.standard_normal((60 * RATE, 2))).astype(np.float32)
    x[CALL_AT:CALL_AT + CALL_LEN, 1] += upcall()
    return x


def detection() -> Detection:
    return Detection(
        class_name="right_whale", score=0.9, scores={"right_whale": 0.9}, channels=[1],
        start_sample=CALL_AT - 1000, end_sample=CALL_AT + CALL_LEN + 1000, sample_rate=RATE,
        n_windows=2, best_channel=1, low_freq=47.0, high_freq=357.0,
    )


START = datetime(2026, 3, 1, 12, 0, 24, 500_000, tzinfo=UTC)


@pytest.mark.parametrize("fmt", ["flac", "wav"])
def test_clip_contains_the_call_at_its_sample_index(tmp_path, stream, fmt):
    settings = ClipSettings(pre_s=3.0, post_s=2.0, format=fmt)
    writer = ClipWriter(tmp_path / "clips", settings)
    det = detection()
    job = writer.plan(det, START)
    assert (job.start_sample, job.end_sample) == (det.start_sample - 6000, det.end_sample + 4000)
    assert job.audio_path.name == f"20260301T120024_500Z_right_whale_{det.start_sample}.{fmt}"
    # the caller hands over what its ring holds of the range (here: a wider slice)
    ring_from = job.start_sample - 777
    evidence = writer.write(job, stream[ring_from:job.end_sample + 500], ring_from)
    assert (evidence.start_sample, evidence.end_sample) == (job.start_sample, job.end_sample)

    clip, rate = sf.read(evidence.audio_path, dtype="float32", always_2d=True)
    assert rate == RATE and clip.shape == (job.end_sample - job.start_sample, 2)
    tolerance = 1e-6 if fmt == "flac" else 0.0  # 24-bit PCM vs exact float
    np.testing.assert_allclose(clip, stream[job.start_sample:job.end_sample], atol=tolerance)
    # independent check: a matched filter finds the call where the sample clock says
    score = correlate(clip[:, 1], upcall(), mode="valid")
    assert int(np.argmax(np.abs(score))) == CALL_AT - evidence.start_sample
    assert not list(tmp_path.rglob(".*.tmp"))
    assert writer.written == 1


def test_spectrogram_png_has_the_detection_box_over_the_call(tmp_path, stream):
    writer = ClipWriter(tmp_path, ClipSettings(pre_s=4.0, post_s=4.0))
    det = detection()
    job = writer.plan(det, START)
    evidence = writer.write(job, stream[job.start_sample:job.end_sample], job.start_sample)
    image = np.asarray(Image.open(evidence.image_path).convert("RGB")).astype(int)
    height, width, _ = image.shape
    red = (image[..., 0] > 200) & (image[..., 1] < 80) & (image[..., 2] < 80)
    rows, cols = np.nonzero(red)
    duration = (job.end_sample - job.start_sample) / RATE
    fmax = 2 * det.high_freq  # the band shown
    expect_left = (det.start_sample - job.start_sample) / RATE / duration * (width - 1)
    expect_right = (det.end_sample - job.start_sample) / RATE / duration * (width - 1)
    expect_top = (1 - det.high_freq / fmax) * (height - 1)
    expect_bottom = (1 - det.low_freq / fmax) * (height - 1)
    assert abs(cols.min() - expect_left) <= 2 and abs(cols.max() - expect_right) <= 2
    assert abs(rows.min() - expect_top) <= 2 and abs(rows.max() - expect_bottom) <= 2
    # the call's band (100-200 Hz) during the call is brighter than the same band before it
    gray = image.mean(axis=2)

    def band(f_lo: float, f_hi: float, s0: int, s1: int) -> float:
        r0, r1 = int((1 - f_hi / fmax) * height), int((1 - f_lo / fmax) * height)
        c0 = int((s0 - job.start_sample) / RATE / duration * width)
        c1 = int((s1 - job.start_sample) / RATE / duration * width)
        return float(gray[r0:r1, c0:c1].mean())

    during = band(110, 190, CALL_AT + 200, CALL_AT + CALL_LEN - 200)
    before = band(110, 190, job.start_sample + 200, det.start_sample - 200)
    assert during > before + 40


def test_short_pre_roll_when_the_ring_has_wrapped(tmp_path, stream):
    writer = ClipWriter(tmp_path, ClipSettings(pre_s=10.0, post_s=1.0, spectrogram=False))
    job = writer.plan(detection(), START)
    oldest = job.start_sample + 15_000  # the ring no longer holds the first 7.5 s
    evidence = writer.write(job, stream[oldest:job.end_sample], oldest)
    assert evidence.start_sample == oldest and evidence.image_path is None
    clip, _ = sf.read(evidence.audio_path, dtype="float32", always_2d=True)
    score = correlate(clip[:, 1], upcall(), mode="valid")
    assert int(np.argmax(np.abs(score))) == CALL_AT - oldest


def test_samples_missing_the_detection_are_refused(tmp_path, stream):
    writer = ClipWriter(tmp_path, ClipSettings())
    job = writer.plan(detection(), START)
    late = detection().start_sample + 10
    with pytest.raises(ValueError, match="do not cover the detection"):
        writer.write(job, stream[late:job.end_sample], late)
    assert writer.failed == 1 and not job.audio_path.exists()


def test_pending_clips_wait_for_the_post_roll_and_are_bounded(tmp_path):
    writer = ClipWriter(tmp_path, ClipSettings(post_s=5.0))
    pending = PendingClips(max_pending=2)
    job = writer.plan(detection(), START)
    assert pending.add(job) and pending.add(job)
    assert not pending.add(job) and pending.dropped == 1
    assert pending.pop_due(job.end_sample - 1) == []
    assert pending.pop_due(job.end_sample) == [job, job] and len(pending) == 0


@contextlib.contextmanager
def tiny_tmpfs(directory: Path, size: str = "2m") -> Iterator[Path]:
    """A real small filesystem (a full disk for real), unmounted afterwards."""
    directory.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(directory)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): needs root")
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def fill(directory: Path) -> Path:
    """Write zeros until the filesystem refuses; returns the filler file."""
    filler = directory / "filler"
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    return filler


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_clips_leave_the_reserve_to_the_detection_log(tmp_path, stream):
    """The soak's finding: clips alone filled a small data disk and then the log could not
    write. Under ``reserve_mb`` free, a clip is refused (counted, the reason named) before
    it takes the room; with space back, it is written."""
    with tiny_tmpfs(tmp_path / "tiny") as disk:
        writer = ClipWriter(disk / "clips", ClipSettings(pre_s=3.0, post_s=2.0,
                                                         reserve_mb=0.5))
        job = writer.plan(detection(), START)
        filler = fill(disk)
        os.truncate(filler, filler.stat().st_size - 256 * 1024)  # 0.25 MB free
        with pytest.raises(OSError, match=r"reserve_mb = 0\.5"):
            writer.write(job, stream[job.start_sample:job.end_sample], job.start_sample)
        assert writer.failed == 1 and not (disk / "clips").exists()
        filler.unlink()
        writer.write(job, stream[job.start_sample:job.end_sample], job.start_sample)
        assert writer.written == 1 and job.audio_path.exists()


def test_a_full_disk_fails_the_clip_not_the_writer(tmp_path, stream):
    """Issue 13 fault 1: libsndfile reports ENOSPC as a RuntimeError (LibsndfileError), not
    an OSError; it must be counted like any refused write, and the worker goes on."""
    with tiny_tmpfs(tmp_path / "tiny") as disk:
        writer = ClipWriter(disk / "clips", ClipSettings(pre_s=3.0, post_s=2.0, reserve_mb=0.0))
        job = writer.plan(detection(), START)
        (disk / "clips").mkdir()
        filler = fill(disk)
        with pytest.raises((OSError, RuntimeError)):
            writer.write(job, stream[job.start_sample:job.end_sample], job.start_sample)
        assert writer.failed == 1 and not list((disk / "clips").iterdir())

        worker = ClipWorker(writer)
        worker.start()
        try:
            assert worker.submit(job, stream[job.start_sample:job.end_sample], job.start_sample)
            wait_for(lambda: worker.flags == ["clips.write_failed"])
            assert writer.failed == 2
            [(cls, message)] = worker.drain_events()
            assert cls == "clips.write_failed" and job.audio_path.name in message
            filler.unlink()  # space is back: the next clip is written
            assert worker.submit(job, stream[job.start_sample:job.end_sample], job.start_sample)
            wait_for(lambda: worker.flags == [])
            assert writer.written == 1 and job.audio_path.exists()
            assert worker.drain_events() == [("clips.recovered", "clips are written again")]
        finally:
            worker.close()


def test_a_busy_clip_worker_drops_and_counts(tmp_path, stream, monkeypatch):
    writer = ClipWriter(tmp_path, ClipSettings(spectrogram=False))
    job = writer.plan(detection(), START)
    release = threading.Event()
    real_write = writer.write
    monkeypatch.setattr(writer, "write", lambda *a: (release.wait(10), real_write(*a))[1])
    worker = ClipWorker(writer, max_queued=1)
    worker.start()
    data = stream[job.start_sample:job.end_sample]
    try:
        assert worker.submit(job, data, job.start_sample)
        wait_for(lambda: worker.stats()["queued"] == 0)  # the worker holds the first one
        assert worker.submit(job, data, job.start_sample)
        assert not worker.submit(job, data, job.start_sample)
        assert worker.dropped == 1 and worker.flags == ["clips.drops"]
    finally:
        release.set()
        worker.close()
    assert writer.written == 2


def ring_of(stream: np.ndarray, seconds: float, until: int) -> RingBuffer:
    """A ring of ``seconds`` that has been fed ``stream[:until]`` (a block at a time)."""
    ring = RingBuffer(stream.shape[1], round(seconds * RATE))
    for at in range(0, until, 4000):
        ring.write(stream[at:min(until, at + 4000)])
    return ring


def test_a_clip_read_from_the_ring_piece_by_piece_is_the_clip_cut_at_once(tmp_path, stream):
    """The live clip worker reads the ring a second at a time (no 38-MB copy of a clip at
    8 ch x 96 kHz, issue 25): the same FLAC and PNG as one copy of the whole clip."""
    settings = ClipSettings(pre_s=3.0, post_s=2.0)
    det = detection()
    whole = ClipWriter(tmp_path / "whole", settings)
    job = whole.plan(det, START)
    once = whole.write(job, stream[job.start_sample:job.end_sample], job.start_sample)
    ring = ring_of(stream, 30.0, job.end_sample + 123)
    pieces = ClipWriter(tmp_path / "pieces", settings)
    job2 = pieces.plan(det, START)
    got = pieces.write_from(job2, ring.peek)
    assert (got.start_sample, got.end_sample) == (once.start_sample, once.end_sample)
    assert np.array_equal(sf.read(got.audio_path)[0], sf.read(once.audio_path)[0])
    assert got.image_path is not None and once.image_path is not None
    assert np.array_equal(np.asarray(Image.open(got.image_path)),
                          np.asarray(Image.open(once.image_path)))
    assert pieces.written == 1 and not list(tmp_path.rglob(".*.tmp"))


def test_a_clip_read_from_a_wrapped_ring_has_a_shorter_pre_roll_or_fails(tmp_path, stream):
    settings = ClipSettings(pre_s=3.0, post_s=2.0, spectrogram=False)
    writer = ClipWriter(tmp_path, settings)
    job = writer.plan(detection(), START)
    ring = ring_of(stream, (job.end_sample - job.start_sample - 1000) / RATE, job.end_sample)
    got = writer.write_from(job, ring.peek)  # 1000 samples of pre-roll are gone
    assert (got.start_sample, got.end_sample) == (job.start_sample + 1000, job.end_sample)
    clip = sf.read(got.audio_path, dtype="float32", always_2d=True)[0]
    np.testing.assert_allclose(clip, stream[got.start_sample:got.end_sample], atol=1e-6)
    # at shutdown the audio ended after the detection, before the post-roll: shorter
    job = writer.plan(detection(), START)
    got = writer.write_from(job, ring_of(stream, 30.0, job.end_sample - 500).peek)
    assert (got.start_sample, got.end_sample) == (job.start_sample, job.end_sample - 500)
    assert sf.info(str(got.audio_path)).frames == got.end_sample - got.start_sample
    # the ring moves on while the clip is written: the clip fails, no file is left
    job = writer.plan(detection(), START)
    ring = ring_of(stream, 30.0, job.end_sample)

    def peek_while_capturing(start: int, end: int):
        got = ring.peek(start, end)
        ring.write(stream[:ring.capacity])  # a whole ring of newer audio arrives
        return got

    with pytest.raises(ValueError, match="no longer holds it"):
        writer.write_from(job, peek_while_capturing)
    assert writer.failed == 1 and not list(tmp_path.rglob(".*.tmp"))


def test_a_clip_read_from_the_ring_never_holds_a_copy_of_the_whole_clip(tmp_path):
    """13 s of 8 ch at 96 kHz (38 MiB) written from the ring: a second's piece and the
    PNG's channel at a time."""
    import tracemalloc

    x, det = clip_at_96k()
    ring = RingBuffer(8, 30 * 96_000)
    for at in range(0, len(x), 96_000):
        ring.write(np.repeat(x[at:at + 96_000, None], 8, axis=1))
    det = Detection(**{**det.__dict__, "channels": list(range(8))})
    writer = ClipWriter(tmp_path, ClipSettings(pre_s=5.0, post_s=5.0))
    job = writer.plan(det, START)
    clip_bytes = (job.end_sample - job.start_sample) * 8 * 4
    tracemalloc.start()
    writer.write_from(job, ring.peek)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # ~14 MiB: a piece (3), the PNG's channel (5) and its spectrogram (4)
    assert peak < clip_bytes / 2, f"{peak / 2**20:.1f} MiB, {clip_bytes / 2**20:.0f} MiB clip"


def test_the_clip_worker_lets_go_of_a_written_clips_audio(tmp_path, stream):
    """It held the last clip's samples (38 MB at 8 ch x 96 kHz) until the next one came:
    one clip more at the live monitor's peak (issue 25)."""
    writer = ClipWriter(tmp_path, ClipSettings(spectrogram=False))
    job = writer.plan(detection(), START)
    worker = ClipWorker(writer)
    worker.start()
    try:
        data = stream[job.start_sample:job.end_sample].copy()
        gone = weakref.ref(data)
        assert worker.submit(job, data, job.start_sample)
        del data
        wait_for(lambda: writer.written == 1)
        wait_for(lambda: gone() is None)
        assert worker.stats()["queued_mb"] == 0
    finally:
        worker.close()


def test_the_clip_queue_is_bounded_in_bytes(tmp_path, stream, monkeypatch):
    """Eight clips of 38 MB would wait for a slow disk: the audio held is bounded, the
    clips beyond it dropped and counted (health: clips.dropped, flag clips.drops)."""
    writer = ClipWriter(tmp_path, ClipSettings(spectrogram=False))
    job = writer.plan(detection(), START)
    release = threading.Event()
    real_write = writer.write
    monkeypatch.setattr(writer, "write", lambda *a: (release.wait(10), real_write(*a))[1])
    data = stream[job.start_sample:job.end_sample]
    worker = ClipWorker(writer, max_queued=8, max_bytes=2 * data.nbytes)
    worker.start()
    try:
        assert worker.submit(job, data.copy(), job.start_sample)
        wait_for(lambda: worker.stats()["queued"] == 0)  # the worker holds the first one
        assert worker.submit(job, data.copy(), job.start_sample)  # two clips' bytes held
        assert not worker.submit(job, data.copy(), job.start_sample)
        assert worker.dropped == 1 and worker.flags == ["clips.drops"]
        assert worker.stats()["queued_mb"] == round(2 * data.nbytes / 1e6, 1)
    finally:
        release.set()
        worker.close()
    assert writer.written == 2 and worker.stats()["queued_mb"] == 0
    # one clip larger than the bound is still written when nothing else is held
    big = ClipWorker(writer, max_bytes=data.nbytes // 2)
    big.start()
    try:
        assert big.submit(job, data.copy(), job.start_sample)
    finally:
        big.close()
    assert writer.written == 3 and big.dropped == 0


def test_settings_validation():
    assert load_config(overrides={"clips": {"format": "wav", "pre_s": 2}}).clips.pre_s == 2.0
    with pytest.raises(ConfigError, match=r"\[clips\] format must be flac or wav"):
        load_config(overrides={"clips": {"format": "mp3"}})


def clip_at_96k(seconds: float = 13.0) -> tuple[np.ndarray, Detection]:
    """A clip as the live right whale monitor cuts it: 96 kHz, pre + call + post."""
    rate = 96_000
    x = (0.01 * np.random.default_rng(5).standard_normal(round(seconds * rate))).astype(
        np.float32)
    det = Detection(class_name="right_whale", score=0.9, scores={"right_whale": 0.9},
                    channels=[0], start_sample=5 * rate, end_sample=8 * rate,
                    sample_rate=rate, n_windows=2, best_channel=0, low_freq=47.0,
                    high_freq=357.0)
    return x, det


def test_clip_spectrogram_is_scipys_on_the_whole_clip():
    from scipy.signal import spectrogram

    from pamlive.field.clips import _band_power
    x, _ = clip_at_96k(4.1)
    freqs, _, whole = spectrogram(x.astype(np.float64), fs=96_000, nperseg=16384,
                                  noverlap=12288, mode="psd")
    assert np.array_equal(_band_power(x, 96_000, 16384, 714.0), whole[freqs <= 714.0])


def test_clip_spectrogram_needs_a_few_mb_not_the_whole_clip_in_float64_spectra():
    """A 13-s 96 kHz clip's PNG took ~150 MB at once (issue 25, live memory)."""
    import tracemalloc

    from pamlive.field.clips import spectrogram_image
    x, det = clip_at_96k()
    tracemalloc.start()
    spectrogram_image(x, 96_000, det, 0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 3 * x.nbytes, f"{peak / 2**20:.0f} MiB for a {x.nbytes / 2**20:.0f} MiB clip"


def test_a_clip_png_needs_less_than_the_channel_it_draws():
    """At 96 kHz the PNG's frames are 32768 samples: 16 at once (float64 frames, their
    spectra and products) were ~14 MiB beside the clip's 38 MiB at the live monitor's
    peak (issue 25); 4 at once are ~4 MiB."""
    import tracemalloc

    from pamlive.field.clips import spectrogram_image
    x, det = clip_at_96k()
    tracemalloc.start()
    spectrogram_image(x, 96_000, det, 0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < x.nbytes, f"{peak / 2**20:.1f} MiB for a {x.nbytes / 2**20:.1f} MiB channel"
