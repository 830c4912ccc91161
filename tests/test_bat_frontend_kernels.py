"""The bat front end's fast paths (resampling 384 -> 256 kHz, |STFT|, PCEN, denoising)
against independent references evaluated in numpy / scipy: bit for bit where the kernel
does the same operations in the same order, otherwise to float32 precision; over odd
sizes, block splits and the NaN / empty edges."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from pamlive.dsp import bat_frontend as bf
from pamlive.dsp.features import Features
from pamlive.dsp.kernels import one_pole_rows
from pamlive.dsp.resample import StreamResampler


def polyphase_reference(x: np.ndarray, up: int, down: int, taps: np.ndarray) -> np.ndarray:
    """``resample_poly``'s sum for every output, in numpy, each output's products added
    in increasing tap order (the order the kernel adds them), zeros outside ``x``."""
    half = (taps.size - 1) // 2
    n_out = -(-x.shape[0] * up // down)
    tops = np.arange(n_out) * down + half
    acc = np.zeros((n_out, x.shape[1]))
    for k in range(taps.size):
        i = (tops - k) // up
        use = ((tops - k) % up == 0) & (i >= 0) & (i < x.shape[0])
        acc[use] = acc[use] + taps[k] * x[i[use]].astype(np.float64)
    return (acc * up).astype(np.float32)


def _stream(res: StreamResampler, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    out, i, k = [], 0, 0
    while i < x.shape[0]:
        n = sizes[k % len(sizes)]
        out.append(res.process(x[i:i + n]))
        i, k = i + n, k + 1
    out.append(res.flush())
    return np.concatenate(out)


@settings(max_examples=60, deadline=None)
@given(rates=st.sampled_from([(384000, 256000), (250000, 256000), (500000, 256000),
                              (3, 7), (7, 2), (44100, 48000)]),
       n=st.integers(0, 5000), channels=st.integers(1, 4),
       sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=5),
       seed=st.integers(0, 2**31))
@pytest.mark.slow
def test_stream_resampler_is_resample_polys_sum_bit_for_bit(rates, n, channels, sizes, seed):
    """Blocks of eight outputs per phase and single outputs at the edges add the same
    products in the same order: the stream equals the sum evaluated in numpy exactly,
    however it is cut into blocks."""
    x = np.random.default_rng(seed).standard_normal((n, channels)).astype(np.float32)
    res = StreamResampler(*rates, channels)
    got = _stream(res, x, sizes)
    want = polyphase_reference(x, res.up, res.down, res.taps)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_stream_resampler_carries_nan_to_the_outputs_it_reaches():
    x = np.zeros((3000, 2), np.float32)
    x[1000, 1] = np.nan
    got = _stream(StreamResampler(384000, 256000, 2), x, [700])
    want = polyphase_reference(x, 2, 3, StreamResampler(384000, 256000, 1).taps)
    np.testing.assert_array_equal(got, want)  # NaN where the taps reach it, as resample_poly
    assert np.isnan(got[:, 1]).sum() == np.isnan(want[:, 1]).sum() > 0
    assert not np.isnan(got[:, 0]).any()


# ------------------------------------------------------------------- |STFT|, PCEN, denoise


def stft_reference(x: np.ndarray, fft: int, hop: int) -> np.ndarray:
    """librosa's ``|stft(center=False)|`` as numpy computes it on the whole segment at
    once (float64 frames x periodic Hann, rfft, stored as complex64), DC dropped, rows
    flipped (the magnitude of the contiguous spectrum, as librosa takes it: numpy's vector
    loop; of a reversed single frame numpy takes its scalar loop, another last bit)."""
    window = signal.get_window("hann", fft, fftbins=True)
    starts = np.arange(0, x.shape[-1] - fft + 1, hop)
    frames = x[:, starts[:, None] + np.arange(fft)] * window  # (n, frames, fft)
    mag = np.abs(np.fft.rfft(frames, axis=-1).astype(np.complex64))
    return mag[..., :0:-1].transpose(0, 2, 1)


def pcen_reference(s: np.ndarray, sr: float, hop: int, scale: float) -> np.ndarray:
    """``librosa.pcen(s * scale, sr=sr, hop_length=hop)`` with its defaults, as librosa
    writes it (scipy.signal.lfilter from lfilter_zi, whole array, float64)."""
    gain, bias, power, eps, t_frames = 0.98, 2.0, 0.5, 1e-6, 0.4 * sr / hop
    b = (np.sqrt(1 + 4 * t_frames**2) - 1) / (2 * t_frames**2)
    ref = s.astype(np.float32) * np.float32(scale)
    zi = np.empty((1,) * ref.ndim)
    zi[:] = signal.lfilter_zi([b], [1, b - 1])[:]
    smoothed, _ = signal.lfilter([b], [1, b - 1], ref, zi=zi, axis=-1)
    smooth = np.exp(-gain * (np.log(eps) + np.log1p(smoothed / eps)))
    return ((bias**power) * np.expm1(power * np.log1p(ref * smooth / bias))).astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(0, 19), n=st.integers(0, 40), seed=st.integers(0, 2**31),
       special=st.sampled_from([None, np.nan, np.inf, -np.inf, 0.0]))
def test_one_pole_rows_is_scipy_lfilter_bit_for_bit(rows, n, seed, special):
    rng = np.random.default_rng(seed)
    x = np.abs(rng.standard_normal((rows, n))).astype(np.float32) * 1e3
    if special is not None and x.size:
        x.flat[rng.integers(x.size)] = special
    b, z0 = float(rng.uniform(0.001, 0.5)), float(rng.uniform(0, 2))
    want, _ = signal.lfilter([b], [1, b - 1], x, zi=np.full((rows, 1), z0), axis=-1)
    got = np.empty((rows, n))
    one_pole_rows(x, b, b - 1, z0, got)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), samples=st.integers(512, 4000), hop=st.sampled_from([128, 77]),
       piece=st.sampled_from([1 << 19, 4096 * 3, 4096 * 8 + 512]), seed=st.integers(0, 2**31))
def test_spectrogram_in_pieces_is_the_whole_segment_at_once(n, samples, hop, piece, seed):
    x = (np.random.default_rng(seed).standard_normal((n, samples)) * 0.1).astype(np.float32)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bf, "STFT_BYTES", piece)  # pieces of 3, 8 (and a half) frames too
        got = bf.batdetect2_spectrogram(Features(x, 256000.0), 512, hop)
    np.testing.assert_array_equal(got.data, stft_reference(x, 512, hop))
    assert got.freqs[0] == 128000.0 and got.freqs[-1] == 500.0


@settings(max_examples=30, deadline=None)
@given(lead=st.integers(0, 2), rows=st.integers(1, 30), frames=st.integers(1, 700),
       pieces=st.sampled_from([1, 3, 8]), seed=st.integers(0, 2**31))
def test_pcen_in_pieces_is_librosas_pcen(lead, rows, frames, pieces, seed):
    """Any number of rows (pieces of 1, 3 or 8 rows, a part piece at the end), 2-D to
    4-D, a cropped view: bit for bit what librosa's formula gives on the whole array."""
    rng = np.random.default_rng(seed)
    shape = (2,) * lead + (rows, frames)
    full = np.abs(rng.standard_normal((*shape[:-2], rows + 5, frames))) * rng.uniform(1e-7, 1e-2)
    s = full.astype(np.float32)[..., 3:3 + rows, :]  # a view, as batdetect2_crop gives
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bf, "PCEN_ROWS", pieces)
        got = bf.pcen(Features(s, 256000.0, np.arange(rows, 0, -1.0)), 25600.0, 512, 2.0**31)
    assert got.data.dtype == np.float32 and got.data.shape == shape
    np.testing.assert_array_equal(got.data, pcen_reference(s, 25600.0, 512, 2.0**31))


def test_pcen_keeps_nan_in_its_row_and_handles_empty_spectra():
    s = np.full((2, 10, 50), 1e-4, np.float32)
    s[1, 3, 20] = np.nan
    got = bf.pcen(Features(s, 256000.0, np.arange(10.0)), 25600.0, 512, 2.0**31).data
    np.testing.assert_array_equal(got, pcen_reference(s, 25600.0, 512, 2.0**31))
    assert np.isnan(got[1, 3, 20:]).all() and not np.isnan(got[1, 3, :20]).any()
    assert np.isfinite(np.delete(got[1], 3, axis=0)).all() and np.isfinite(got[0]).all()
    for shape in [(1, 220, 0), (0, 220, 10), (1, 0, 5)]:
        empty = bf.pcen(Features(np.zeros(shape, np.float32), 256000.0, np.zeros(shape[1])),
                        25600.0, 512, 2.0**31)
        assert empty.data.shape == shape and empty.data.dtype == np.float32


def test_spectrogram_refuses_a_segment_shorter_than_a_frame():
    from pamlive.errors import TransformError

    with pytest.raises(TransformError, match="shorter than one frame"):
        bf.batdetect2_spectrogram(Features(np.zeros((1, 511), np.float32), 256000.0), 512, 128)


def test_denoise_is_row_mean_subtraction_clipped_at_zero():
    rng = np.random.default_rng(3)
    s = rng.standard_normal((2, 12, 301)).astype(np.float32)[:, 1:11]  # a view, 10 rows
    s[1, 4, 7] = np.nan
    got = bf.batdetect2_denoise(Features(s, 256000.0, np.arange(10.0))).data
    want = np.maximum(s - s.mean(axis=-1, keepdims=True), 0)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[1, 4]).all() and np.isfinite(np.delete(got[1], 4, axis=0)).all()
    assert (got >= 0)[~np.isnan(got)].all() and got.dtype == np.float32
