"""TransformChain: validation, PAMGuard order, the shipped models' chains, and the right
whale numerics the shipped model is trained on (checked against scipy/numpy)."""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from pamlive.dsp.chain import (
    SpectrumStep,
    Step,
    TransformChain,
    TransformSpec,
    _validated_params,
    pamguard_order,
)
from pamlive.dsp.pdtf import read_pdtf
from pamlive.errors import ModelError, TransformError

S = TransformSpec
RIGHT_WHALE = [
    S("load_audio", {"sr": 2000}),
    S("spectrogram", {"fft": 256, "hop": 100}),
    S("freq_compression", {"bins": 40, "fmin": 47, "fmax": 357}),
    S("norm_row_sum", {}),
]


@pytest.mark.parametrize(
    "specs,message",
    [
        ([S("load_audio", {"sr": 2000}), S("spectrogam", {})], "unknown transform 'spectrogam'"),
        (
            [S("load_audio", {"sr": 2000}), S("spectrogram", {"fft": 256, "hop": 100, "nfft": 3})],
            "unknown parameter.*nfft",
        ),
        ([S("load_audio", {"sr": 2000}), S("spectrogram", {"fft": 256})], "missing.*hop"),
        ([S("load_audio", {"sr": 2000}), S("spectrogram", {"fft": 0, "hop": 100})], "fft"),
        ([S("spectrogram", {"fft": 256, "hop": 100})], "load_audio"),
        ([S("load_audio", {"sr": 2000}), S("norm_row_sum", {})], "needs a spectrogram"),
        (
            [
                S("load_audio", {"sr": 2000}),
                S("spectrogram", {"fft": 256, "hop": 100}),
                S("freq_compression", {"bins": 40, "fmin": 47, "fmax": 2000}),
            ],
            "fmax",
        ),
        (
            [
                S("load_audio", {"sr": 250}),
                S("filter_wav", {"filtertype": 1, "filtermethod": 0, "order": 4, "lowcut": 200}),
            ],
            "Nyquist",
        ),
        (
            [
                S("load_audio", {"sr": 2000}),
                S("spectrogram", {"fft": 256, "hop": 100}),
                S("pre_emph", {"pre_empf_factor": 0.9}),
            ],
            "cannot follow",
        ),
        (
            [
                S("load_audio", {"sr": 2000}),
                S("spectrogram", {"fft": 256, "hop": 100, "pamguard_exact": "yes"}),
            ],
            "pamguard_exact must be true or false",
        ),
        # NaN and infinities in a package's transform parameters (issue 13, fault 3)
        ([S("load_audio", {"sr": float("nan")})], "load_audio: sr must be a whole number, got nan"),
        ([S("load_audio", {"sr": float("inf")})], "load_audio: sr must be a whole number, got inf"),
        (
            [S("load_audio", {"sr": 2000}), S("spectrogram", {"fft": float("nan"), "hop": 100})],
            "fft must be a whole number, got nan",
        ),
        (
            [S("load_audio", {"sr": 2000}), S("spectrogram", {"fft": 256, "hop": float("inf")})],
            "hop must be a whole number, got inf",
        ),
    ],
)
def test_bad_chains_fail_with_an_error_naming_the_problem(specs, message):
    with pytest.raises(TransformError, match=message):
        TransformChain(specs)


def test_runnable_lists_keep_their_order_and_broken_ones_are_repaired():
    ketos = [
        S("load_audio", {"sr": 10}),
        S("spectrogram", {"fft": 4, "hop": 2}),
        S("reduce_tonal_noise_median"),
        S("normalize", {"min_db": -80}),
    ]
    assert pamguard_order(ketos) == ketos  # PAMGuard runs a list as written
    shuffled = [RIGHT_WHALE[3], RIGHT_WHALE[1], RIGHT_WHALE[0], RIGHT_WHALE[2]]
    assert pamguard_order(shuffled) == RIGHT_WHALE


def test_both_pdtf_formats_give_the_right_whale_chain(shared_dir):
    folder = shared_dir / "models" / "pamguard-right-whale"
    for name in ("right_whale_DL_settings.pdtf", "right_whale_DL_settings_legacy.pdtf"):
        meta = read_pdtf(folder / name)
        assert meta.transforms == RIGHT_WHALE
        assert meta.class_names == ["Noise", "Right Whale"]
        assert TransformChain(meta.transforms).output_shape(4000) == (40, 40)


def test_read_pdtf_reports_missing_and_broken_files(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        read_pdtf(tmp_path / "none.pdtf")
    (tmp_path / "bad.pdtf").write_text("{nope")
    with pytest.raises(ModelError, match=r"bad\.pdtf"):
        read_pdtf(tmp_path / "bad.pdtf")


def _reference_right_whale(y: np.ndarray) -> np.ndarray:
    """The right whale features from scipy/numpy alone (what the model is trained on)."""
    n_frames = math.ceil(y.size / 100)
    stft = signal.ShortTimeFFT(signal.get_window("hann", 256), 100, 2000, mfft=256)
    mag = np.abs(stft.stft(y.astype(np.float64), p0=0, p1=n_frames, k_offset=128)).T
    freqs = np.fft.rfftfreq(256, 1 / 2000)
    target = np.linspace(47, 357, 40)
    comp = np.array([np.interp(target, freqs, row) for row in mag])
    return comp / comp.sum(axis=1, keepdims=True)


def test_right_whale_chain_on_a_real_recording_matches_scipy(shared_dir):
    path = shared_dir / "data" / "pamguard-tutorial" / "PAM_20010327_091800.wav"
    x, rate = sf.read(path, dtype="float32", frames=8000 * 20)
    chain = TransformChain(RIGHT_WHALE)
    res = chain.resampler(rate, 1)
    y = np.concatenate([res.process(x[:, None]), res.flush()])[:, 0]
    ref_y = signal.resample_poly(x.astype(np.float64), 1, 4, window=res.taps)
    np.testing.assert_allclose(y, ref_y, atol=1e-6 * np.abs(ref_y).max())
    segments = np.stack([y[i : i + 4000] for i in range(0, y.size - 4000 + 1, 2000)])
    out = chain.apply(segments)
    assert out.shape == (segments.shape[0], 40, 40) and out.dtype == np.float32
    for seg, o in zip(segments, out, strict=True):
        np.testing.assert_allclose(o, _reference_right_whale(seg), rtol=2e-5, atol=1e-7)


def _ketos_audio_repr(shared_dir):
    with zipfile.ZipFile(
        shared_dir / "models" / "ketos-killer-whale" / "hallo-kw-det_v1.ktpb"
    ) as z:
        return json.loads(z.read("audio_repr.json"))["spectrogram"]


@pytest.mark.slow
def test_ketos_killer_whale_chain_gives_the_model_input_shape(shared_dir):
    rep = _ketos_audio_repr(shared_dir)
    rate = float(rep["rate"].split()[0])
    fft = math.ceil(float(rep["window"].split()[0]) * rate)  # Ketos: round up to even
    fft += fft % 2
    hop = math.ceil(float(rep["step"].split()[0]) * rate - 1e-9)
    hop += hop % 2
    n_segs = math.ceil(float(rep["duration"].split()[0]) * rate / hop)
    window_size = (n_segs * hop + fft) / rate  # PAMGuard KetosParams' extended segment
    chain = TransformChain(
        [
            S("load_audio", {"sr": int(rate)}),
            S("normalize_wav", {}),
            S("spectrogramketos", {"fft": fft, "hop": hop, "window_size": window_size}),
            S("freq_compression", {"bins": rep["input_shape"][2], "fmin": 0, "fmax": rate / 2}),
            S("amplitude_to_decibel", {}),
            S("reduce_tonal_noise", {"method": "MEDIAN"}),
            S("normalisestd", {"mean": 0.0, "std": 1.0}),
        ]
    )
    assert chain.output_shape(round(window_size * rate)) == tuple(rep["input_shape"][1:3])


def test_koogu_blue_whale_chain_from_its_pamguard_metadata(shared_dir, tmp_path):
    with zipfile.ZipFile(shared_dir / "models" / "koogu-blue-whale-24" / "blue_whale_24.kgu") as z:
        (tmp_path / "m.pdtf").write_bytes(z.read("audio_repr_pg.json"))
    meta = read_pdtf(tmp_path / "m.pdtf")
    chain = TransformChain(meta.transforms)
    assert chain.sample_rate == 250
    n = round(meta.segment_ms / 1000 * 250)
    assert chain.output_shape(n) == (1125,) == tuple(meta.input_shape[1:2])
    x = np.random.default_rng(3).standard_normal((2, n)).astype(np.float32)
    out = chain.apply(x)
    sos = signal.butter(9, 20, btype="highpass", fs=250, output="sos")
    filtered = signal.sosfilt(sos, x.astype(np.float64), axis=-1)
    centred = filtered - filtered.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(out, centred / centred.max(axis=1, keepdims=True), atol=1e-6)


def test_to_json_round_trips():
    chain = TransformChain(RIGHT_WHALE)
    again = TransformChain([S(t["name"], t["params"]) for t in chain.to_json()])
    assert again.specs == chain.specs


ULTRASONIC = [
    S("load_audio", {"sr": 250000}),
    S("pre_emph", {"pre_empf_factor": 0.98}),
    S("spectrogram", {"fft": 512, "hop": 128}),
    S("freq_compression", {"bins": 128, "fmin": 15000, "fmax": 125000}),
    S("amplitude_to_decibel", {"min_db": -100}),
    S("normalize", {"min_db": -100, "ref_db": 0}),
    S("clamp"),
]


def _bat_segments(shared_dir) -> np.ndarray:
    path = sorted((shared_dir / "data" / "bats").glob("*.wav"))[0]
    x, rate = sf.read(path, dtype="float32", frames=3 * 20000)
    assert rate == 250000
    return np.stack([x[i : i + 20000] for i in range(0, 3 * 20000, 20000)])


def test_fused_ultrasonic_chain_matches_scipy(shared_dir):
    segs = _bat_segments(shared_dir)
    chain = TransformChain(ULTRASONIC)
    (step,) = chain.steps  # pre_emph and every per-value transform fused into the spectrogram
    assert isinstance(step, SpectrumStep) and step.pre_emphasis == 0.98
    out = chain.apply(segs)
    y = signal.lfilter([1.0, -0.98], [1.0], segs.astype(np.float64), axis=-1)
    n_frames = math.ceil(y.shape[1] / 128)
    stft = signal.ShortTimeFFT(signal.get_window("hann", 512), 128, 250000, mfft=512)
    mag = np.abs(stft.stft(y, p0=0, p1=n_frames, k_offset=256)).swapaxes(-1, -2)
    freqs = np.fft.rfftfreq(512, 1 / 250000)
    target = np.linspace(15000, 125000, 128)
    comp = np.apply_along_axis(lambda row: np.interp(target, freqs, row), -1, mag)
    db = np.maximum(20 * np.log10(np.maximum(comp, 1e-300)), -100)
    ref = np.clip(2 * (db + 100) / 100 - 1.1407, 0, 1)
    assert out.shape == ref.shape == (3, n_frames, 128)
    assert np.mean((ref > 0) & (ref < 1)) > 0.1  # the real recording spans the clamp range
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-6)


def test_fusing_changes_no_bit(shared_dir):
    """pre_emph and dB / normalize / clamp folded into the spectrogram give the same bits
    as running them as separate steps around it."""
    segs = _bat_segments(shared_dir)
    pre, stft, compress, *per_value = ULTRASONIC[1:]
    spectrum = SpectrumStep(
        stft, _validated_params(stft), (compress, _validated_params(compress)), 250000
    )
    separate = [Step(s, _validated_params(s)) for s in (pre, *per_value)]
    separate.insert(1, spectrum)
    fused = TransformChain(ULTRASONIC)
    assert np.array_equal(fused.apply(segs), fused.run_steps(separate, segs))


def test_value_transforms_out_of_order_are_not_fused():
    specs = [ULTRASONIC[0], ULTRASONIC[2], S("clamp"), S("amplitude_to_decibel", {"min_db": -30})]
    chain = TransformChain(specs)
    assert [s.name for step in chain.steps for s in step.specs] == [
        "spectrogram",
        "clamp",
        "amplitude_to_decibel",
    ]
    x = np.random.default_rng(5).standard_normal((2, 3000)).astype(np.float32)
    mag = TransformChain(specs[:2]).apply(x)
    ref = np.maximum(20 * np.log10(np.clip(mag, 0, 1).astype(np.float64)), -30)
    np.testing.assert_allclose(chain.apply(x), ref, rtol=1e-6, atol=1e-5)
