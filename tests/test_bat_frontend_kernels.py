"""The bat front end's fast paths (resampling 384 -> 256 kHz, |STFT|, PCEN, denoising)
against independent references evaluated in numpy / scipy: bit for bit where the kernel
does the same operations in the same order, otherwise to float32 precision; over odd
sizes, block splits and the NaN / empty edges."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

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
