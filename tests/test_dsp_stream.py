"""Streaming equals offline: windows assembled from frames computed once, over any split of
the signal into blocks, are bit for bit the chain run on each window of the whole
(resampled) signal; the frame stream over any split is the frame stage run on the whole
signal at once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import resample_poly

from pamlive.dsp.chain import TransformChain, TransformSpec
from pamlive.dsp.resample import StreamResampler
from pamlive.dsp.stream import FrameStream
from pamlive.live.windowing import GapTolerantWindows
from pamlive.windows import Windower

S = TransformSpec
CHAINS = {
    "right_whale_from_8k": (
        8000,
        [
            S("load_audio", {"sr": 2000}),
            S("spectrogram", {"fft": 256, "hop": 100}),
            S("freq_compression", {"bins": 40, "fmin": 47, "fmax": 357}),
            S("norm_row_sum"),
        ],
    ),
    "ultrasonic_filtered": (  # a filter from rest in each window: no frame stage
        48000,
        [
            S("load_audio", {"sr": 48000}),
            S("pre_emph", {"pre_empf_factor": 0.97}),
            S(
                "filter_wav",
                {"filtertype": 2, "filtermethod": 0, "order": 4, "lowcut": 5000, "highcut": 20000},
            ),
            S("spectrogram", {"fft": 128, "hop": 48}),
            S("freq_trim", {"fmin": 4000, "fmax": 21000}),
            S("amplitude_to_decibel", {"min_db": -120}),
            S("normalize", {"min_db": -120}),
        ],
    ),
    "ultrasonic_fused": (  # pre_emph and the per-value transforms fused into the spectrogram
        48000,
        [
            S("load_audio", {"sr": 48000}),
            S("pre_emph", {"pre_empf_factor": 0.98}),
            # Hamming (not zero at a frame's first sample, unlike Hann)
            S("spectrogram", {"fft": 128, "hop": 48, "pamguard_exact": True}),
            S("freq_compression", {"bins": 32, "fmin": 4000, "fmax": 21000}),
            S("amplitude_to_decibel", {"min_db": -120}),
            S("normalize", {"min_db": -120}),
            S("clamp"),
        ],
    ),
    "ketos_fixed_frames": (
        4000,
        [
            S("load_audio", {"sr": 2000}),
            S("filter_wav", {"filtertype": 1, "filtermethod": 1, "order": 3, "lowcut": 50}),
            S("spectrogramketos", {"fft": 128, "hop": 32, "window_size": 1.0}),
            S("spec_log10"),
            S("clamp"),
            S("reduce_tonal_noise_median"),
        ],
    ),
    "ketos_frames_then_window_stage": (  # frame stage, then normalisations per window
        4000,
        [
            S("load_audio", {"sr": 2000}),
            S("spectrogramketos", {"fft": 128, "hop": 32, "window_size": 1.0}),
            S("freq_compression", {"bins": 24, "fmin": 50, "fmax": 900}),
            S("amplitude_to_decibel"),
            S("reduce_tonal_noise_median"),
            S("normalisestd", {"mean": 0.0, "std": 1.0}),
        ],
    ),
    "pamguard_exact_framing": (  # late frames; the exact norm_row_sum is per window
        2000,
        [
            S("load_audio", {"sr": 2000}),
            S("spectrogram", {"fft": 64, "hop": 20, "pamguard_exact": True}),
            S("freq_compression", {"bins": 16, "fmin": 50, "fmax": 900, "pamguard_exact": True}),
            S("norm_row_sum", {"pamguard_exact": True}),
        ],
    ),
    "waveform_only": (
        1000,
        [
            S("load_audio", {"sr": 250}),
            S("filter_wav", {"filtertype": 1, "filtermethod": 0, "order": 9, "lowcut": 20}),
            S("normalize_wav", {}),
        ],
    ),
}
# window length and hop, in seconds, per chain (hops on and off the frame grid)
SHAPES = {
    "right_whale_from_8k": (2.0, [1.0, 0.5, 0.25, 0.1, 0.35]),
    "ultrasonic_filtered": (0.05, [0.025, 0.01]),
    "ultrasonic_fused": (0.05, [0.025, 0.004, 0.0035, 0.0251]),
    "ketos_fixed_frames": (1.0, [0.5, 0.048]),
    "ketos_frames_then_window_stage": (1.0, [0.5, 0.048, 0.1]),
    "pamguard_exact_framing": (0.5, [0.25, 0.1, 0.03]),
    "waveform_only": (1.0, [0.5, 0.2]),
}


def _blocks(x: np.ndarray, sizes: list[int]):
    i, k = 0, 0
    while i < x.shape[0]:
        n = sizes[k % len(sizes)]
        yield x[i : i + n]
        i, k = i + n, k + 1


@settings(max_examples=120, deadline=None)
@given(
    name=st.sampled_from(sorted(CHAINS)),
    hop_pick=st.integers(0, 4),
    n=st.integers(1, 30000),
    sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=6),
    seed=st.integers(0, 2**31),
)
@pytest.mark.slow
def test_windows_from_frames_equal_the_chain_on_each_window(name, hop_pick, n, sizes, seed):
    rate, specs = CHAINS[name]
    segment_s, hops = SHAPES[name]
    hop_s = hops[hop_pick % len(hops)]
    chain = TransformChain(specs)
    x = np.random.default_rng(seed).standard_normal((n, 2)).astype(np.float32)
    windower = Windower(chain, rate, 2, segment_s, hop_s)
    windows = [w for block in _blocks(x, sizes) for w in windower.push(block)]
    windows += windower.flush()

    whole = StreamResampler(rate, chain.sample_rate, 2)
    y = np.concatenate([whole.process(x), whole.flush()])  # the offline resampling
    seg, hop = windower.segment, windower.hop
    if 0 < y.shape[0] < seg:  # a clip shorter than a window is looked at padded with silence
        y = np.concatenate([y, np.zeros((seg - y.shape[0], 2), y.dtype)])
    regular = (y.shape[0] - seg) // hop + 1 if y.shape[0] >= seg else 0
    assert [w.index for w in windows] == list(range(len(windows)))
    assert len(windows) in (regular, regular + 1)
    for w in windows:  # the last window may be aligned to the end of the stream
        start = w.index * hop if w.index < regular else y.shape[0] - seg
        expect = chain.apply(y[start : start + seg].T)
        np.testing.assert_array_equal(w.features, expect)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(n for n in CHAINS if TransformChain(CHAINS[n][1]).frame_steps)),
    n=st.integers(1, 9000),
    sizes=st.lists(st.integers(1, 2500), min_size=1, max_size=6),
    seed=st.integers(0, 2**31),
)
def test_frame_stream_equals_the_frame_stage_on_the_whole_signal(name, n, sizes, seed):
    rate, specs = CHAINS[name]
    chain = TransformChain(specs)
    x = np.random.default_rng(seed).standard_normal((n, 2)).astype(np.float32)
    resampler = chain.resampler(rate, 2)
    stream = FrameStream(chain.frame_steps, 2, chain.sample_rate)
    for block in _blocks(x, sizes):
        stream.push(resampler.process(block).T)
        if block[0, 0] > 0:  # frames are computed when asked for, at any point
            stream.update()
    stream.update()
    y = chain.resampler(rate, 2).process(x).T
    spectrum = chain.frame_steps[0]
    offline = chain.run_steps(chain.frame_steps[1:], spectrum.frames(y, 0, stream.end),
                              spectrum.freqs)
    assert stream.first == 0 and stream.computed == stream.end
    np.testing.assert_array_equal(stream.frames, offline)


def test_the_split_between_frame_and_window_stage_is_explicit():
    def stages(name):
        chain = TransformChain(CHAINS[name][1])
        return ([s.name for step in chain.frame_steps for s in step.specs],
                [s.name for step in chain.window_steps for s in step.specs])

    assert stages("right_whale_from_8k") == (
        ["spectrogram", "freq_compression", "norm_row_sum"], [])
    assert stages("ketos_frames_then_window_stage") == (
        ["spectrogramketos", "freq_compression", "amplitude_to_decibel"],
        ["reduce_tonal_noise_median", "normalisestd"])
    assert stages("pamguard_exact_framing") == (
        ["spectrogram", "freq_compression"], ["norm_row_sum"])
    assert stages("ultrasonic_fused")[1] == []
    assert stages("ultrasonic_filtered")[0] == []  # a filter from rest in every window
    assert stages("waveform_only") == ([], ["filter_wav", "normalize_wav"])


def test_each_frame_is_computed_once():
    """Right whale chain at a 0.1 s hop: 20 windows share each frame; only the two frames
    per window that run past its end (zero padded) are the window's own."""
    rate, specs = CHAINS["right_whale_from_8k"]
    chain = TransformChain(specs)
    x = np.random.default_rng(0).standard_normal((rate * 60, 1)).astype(np.float32)
    windower = Windower(chain, rate, 1, 2.0, 0.1)
    windows = [w for block in _blocks(x, [8000]) for w in windower.push(block)]
    stream_frames = 60 * 2000 // 100
    assert len(windows) >= 575  # (the resampler holds back a few samples until flush)
    assert windower.cuts.features.frames_computed <= stream_frames + 2 * len(windows)
    # the chain per window computes 40 frames per window: 23,200 here; now about 2,360
    assert 40 * len(windows) > 9 * windower.cuts.features.frames_computed


@settings(max_examples=50, deadline=None)
@given(
    rates=st.sampled_from(
        [(48000, 2000), (96000, 2000), (44100, 2000), (8000, 2000), (2000, 2000), (1000, 250)]
    ),
    n=st.integers(0, 6000),
    sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=5),
)
def test_stream_resampler_equals_resample_poly(rates, n, sizes):
    in_rate, out_rate = rates
    x = np.random.default_rng(n).standard_normal((n, 1))
    res = StreamResampler(in_rate, out_rate, 1)
    outs = [res.process(block) for block in _blocks(x, sizes)]
    outs.append(res.flush())
    y = np.concatenate(outs)[:, 0]
    if res.passthrough:
        np.testing.assert_allclose(y, x[:, 0], atol=1e-7)
        return
    ref = resample_poly(x[:, 0], res.up, res.down, window=res.taps) if n else np.zeros(0)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-6 * max(1.0, float(np.abs(ref).max(initial=0))))


@pytest.mark.parametrize("in_rate,out_rate", [(96000, 2000), (44100, 2000), (8000, 2000),
                                               (2000, 2000), (1000, 250), (2000, 8000)])
def test_inputs_for_is_the_fewest_inputs_that_give_the_outputs(in_rate, out_rate):
    """Fed one sample at a time, the resampler has given ``k`` outputs exactly when
    ``inputs_for(k)`` inputs are in (the live windowing thread sleeps until then)."""
    res = StreamResampler(in_rate, out_rate, 1)
    first_with = {}  # outputs -> inputs when they were first all out
    given = 0
    for n_in in range(1, 3 * res.taps.size + 400):
        given += res.process(np.zeros((1, 1))).shape[0]
        first_with.setdefault(given, n_in)
    for k in range(1, given + 1):
        want = min(n for got, n in first_with.items() if got >= k)
        assert res.inputs_for(k) == want, k
    assert res.inputs_for(0) == 0


@pytest.mark.parametrize("name", ["right_whale_from_8k", "ultrasonic_fused", "waveform_only"])
def test_frames_needed_is_exactly_when_the_next_window_is_cut(name):
    """The live windowing thread sleeps until ``frames_needed`` samples are in: one fewer
    cuts no window, exactly that many cuts the next one (also after a gap, on the stream's
    sample indices)."""
    rate, specs = CHAINS[name]
    segment_s, hops = SHAPES[name]
    chain = TransformChain(specs)
    x = np.random.default_rng(5).standard_normal((int(rate * segment_s * 4), 1))
    x = x.astype(np.float32)
    windows = GapTolerantWindows(lambda: Windower(chain, rate, 1, segment_s, hops[0]))
    gap = 123  # samples lost after the third window: the windower restarts at fed + gap
    fed, cut = 0, 0
    for _ in range(6):
        needed = windows.frames_needed()
        assert needed is not None and needed > fed
        assert windows.push(fed, x[: needed - 1 - fed]) == []
        got = windows.push(needed - 1, x[: 1])
        assert len(got) == 1 and got[0].end_sample <= needed
        fed, cut = needed, cut + 1
        if cut == 3:
            windows.push(fed + gap, x[:1])
            fed += gap + 1


def test_a_hop_within_one_percent_of_the_frame_grid_moves_onto_it():
    rate, specs = CHAINS["ultrasonic_fused"]  # 48 kHz, frames every 48 samples
    chain = TransformChain(specs)
    assert Windower(chain, rate, 1, 0.05, 0.0251).hop == 1200  # 1205 -> 25 frames
    assert Windower(chain, rate, 1, 0.05, 0.0035).hop == 168  # 3.5 frames: kept
    assert Windower(chain, rate, 1, 0.05, 0.0005).hop == 24  # under one frame: kept
    _, specs = CHAINS["waveform_only"]  # no frame stage: the hop as asked
    assert Windower(TransformChain(specs), 1000, 1, 1.0, 0.201).hop == 50
