"""A validated transform chain: a streaming resampler plus per-segment transforms.

``load_audio`` runs on the continuous stream (:class:`~pamlive.dsp.resample.StreamResampler`,
state carried across blocks, so live and offline give the model identical samples); the
other transforms define what each segment (window) becomes, as PAMGuard runs them
(:meth:`TransformChain.apply`). The compiled steps split in two stages:

* the **frame stage** (:attr:`TransformChain.frame_steps`): the spectrogram (with what it
  fuses) and the per-frame spectrum transforms after it. A frame's values depend only on
  its own samples, so a stream of windows can compute each frame once
  (:mod:`pamlive.dsp.stream`);
* the **window stage** (:attr:`TransformChain.window_steps`): everything after the first
  transform that needs the whole window (normalisations over the window, tonal-noise
  removal, resizing), applied per window once its frames are assembled.

A chain with a waveform transform before its spectrogram (a filter run from rest in each
segment, a segment normalisation) has no frame stage: every step is per window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pamlive.dsp import spectrogram as sg
from pamlive.dsp.features import Features, number, positive_int
from pamlive.dsp.resample import StreamResampler
from pamlive.dsp.spectra import VALUE_MAPS, ValueMap, interp_plan
from pamlive.dsp.transforms import REGISTRY, REQUIRED
from pamlive.dsp.wave import filter_sos
from pamlive.errors import TransformError

_STAGE_RANK = {"load": 0, "wave": 1, "stft": 2, "spec": 3}
# the spectrograms SpectrumStep computes; another stft-stage transform runs as a plain step
_FUSED_STFTS = ("spectrogram", "spectrogramketos")

# jdl4pam's DLTransformType enum order (JSON names), used only to repair a current-format
# .pdtf whose list is not in a runnable order. PAMGuard itself runs the list as written.
PAMGUARD_TRANSFORM_ORDER = [
    "pre_emph",
    "load_audio_scipy",
    "load_audio",
    "trim",
    "peak_trim",
    "spectrogram",
    "spectrogramketos",
    "freq_compression",
    "normalize",
    "normalize_min_max",
    "norm_row_sum",
    "amplitude_to_decibel",
    "clamp",
    "normalisestd",
    "reduce_tonal_noise_median",
    "reduce_tonal_noise_mean",
    "medianfilter",
    "enhance_signal",
    "guassian_filter",
    "filter_isolated_spots",
    "normalize_wav",
    "filter_wav",
    "spec_resize",
    "spec_flip",
    "clahe",
]


@dataclass(frozen=True)
class TransformSpec:
    """One transform as PAMGuard's metadata names it: ``name`` and ``params``."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}


def _stage_rank(spec: TransformSpec) -> int:
    tdef = REGISTRY.get(spec.name)
    return _STAGE_RANK[tdef.stage] if tdef else len(_STAGE_RANK)


def pamguard_order(specs: Sequence[TransformSpec]) -> list[TransformSpec]:
    """The order to run a current-format ``.pdtf`` list in.

    PAMGuard runs the list as written, so a runnable list (load, waveform, spectrogram,
    spectrum transforms) is kept. A list that is not (the right whale metadata lists
    ``norm_row_sum`` first) is sorted by stage, then by jdl4pam's enum order.
    """
    ranks = [_stage_rank(s) for s in specs]
    if ranks == sorted(ranks):
        return list(specs)
    enum = {name: i for i, name in enumerate(PAMGUARD_TRANSFORM_ORDER)}
    return sorted(specs, key=lambda s: (_stage_rank(s), enum.get(s.name, len(enum))))


def _validated_params(spec: TransformSpec) -> dict[str, Any]:
    tdef = REGISTRY.get(spec.name)
    if tdef is None:
        raise TransformError(f"unknown transform '{spec.name}'")
    unknown = set(spec.params) - set(tdef.params)
    if unknown:
        raise TransformError(
            f"transform '{spec.name}': unknown parameter(s) {', '.join(sorted(unknown))}"
        )
    missing = [p for p, d in tdef.params.items() if d is REQUIRED and p not in spec.params]
    if missing:
        raise TransformError(f"transform '{spec.name}': missing parameter(s) {', '.join(missing)}")
    return {
        p: spec.params.get(p, d)
        for p, d in tdef.params.items()
        if p in spec.params or d is not REQUIRED
    }


class Step:
    """One runnable transform of the chain, with its validated parameters."""

    def __init__(self, spec: TransformSpec, params: dict[str, Any]) -> None:
        tdef = REGISTRY[spec.name]
        self.specs: tuple[TransformSpec, ...] = (spec,)
        self.streams = tdef.streams(params)
        self._func, self.params = tdef.func, params

    def run(self, f: Features) -> Features:
        return self._func(f, **self.params)


class SpectrumStep(Step):
    """A spectrogram with what the chain lets it fuse: a ``pre_emph`` just before it, the
    ``freq_compression`` after it, then per-value transforms (``amplitude_to_decibel`` /
    ``spec_log10``, ``normalize``, ``clamp``). Framing (with pre-emphasis), window, FFT,
    magnitude, interpolation and the value map run chunk by chunk of frames, in cache,
    with the same arithmetic as the transforms one by one."""

    def __init__(
        self,
        stft: TransformSpec,
        params: dict[str, Any],
        compress: tuple[TransformSpec, dict[str, Any]] | None,
        sample_rate: float,
    ) -> None:
        self.specs = (stft,) if compress is None else (stft, compress[0])
        self.streams = True
        self.plan = sg.stft_plan(stft.name, params, sample_rate)
        if compress is None:
            self.lo = np.arange(self.plan.n_bins, dtype=np.int64)
            self.weight, self.freqs = np.zeros(self.plan.n_bins), self.plan.freqs
        else:
            cp = compress[1]
            self.lo, self.weight, self.freqs = interp_plan(
                self.plan.freqs,
                cp["bins"],
                cp["fmin"],
                cp["fmax"],
                cp.get("pamguard_exact", False),
                sample_rate,
            )
        self.pre_emphasis = 0.0
        self.finish: ValueMap | None = None
        self.fixed_frames = None
        if stft.name == "spectrogramketos":
            size = sg.ketos_window_size(params["window_size"])
            self.fixed_frames = sg.ketos_frames(size, self.plan.fft, self.plan.hop, sample_rate)

    def fuse_pre_emphasis(self, step: Step) -> None:
        """Fold the ``pre_emph`` step just before the spectrogram into the framing."""
        factor = step.params["pre_empf_factor"]
        self.pre_emphasis = number("pre_emph", "pre_empf_factor", factor)
        self.specs = (*step.specs, *self.specs)

    def absorb(self, spec: TransformSpec, params: dict[str, Any]) -> bool:
        """Fold a per-value transform that follows into the value map, if it can be."""
        build = VALUE_MAPS.get(spec.name)
        later = build(**params) if build else None
        if later is not None and self.finish is not None:
            later = self.finish.then(later)
        if later is None:
            return False
        self.finish = later
        self.specs = (*self.specs, spec)
        return True

    def frame_count(self, n_samples: int) -> int:
        """Frames in a segment of ``n_samples`` (the tail ones zero padded)."""
        if self.fixed_frames is not None:
            return self.fixed_frames
        return sg.spectrogram_frames(n_samples, self.plan.hop)

    def frames(self, x: np.ndarray, first: int, count: int, offset: int = 0) -> np.ndarray:
        """Frames ``first .. first+count-1`` of the rows of ``x``; ``x[:, 0]`` is sample
        ``offset`` of the segment (or stream)."""
        return self.frames_at(x, self.plan.starts(first, count) - offset)

    def frames_at(self, x: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """The frames starting at samples ``starts`` of the rows of ``x``: (rows, F, bins)."""
        return sg.magnitude_frames(
            x, self.plan, starts, self.lo, self.weight, self.pre_emphasis, self.finish
        )

    def run(self, f: Features) -> Features:
        data = self.frames(f.data, 0, self.frame_count(f.data.shape[1]))
        return Features(data, f.sample_rate, self.freqs)


def _split_stages(steps: list[Step]) -> tuple[list[Step], list[Step]]:
    """(frame stage, window stage): the spectrogram and the per-frame transforms that
    follow it, if the spectrogram comes first; the rest runs per window."""
    if not steps or not isinstance(steps[0], SpectrumStep):
        return [], list(steps)
    n = 1
    while n < len(steps) and steps[n].streams:
        n += 1
    return steps[:n], steps[n:]


class TransformChain:
    """Validated transforms; ``sample_rate`` is the rate the segments are cut at."""

    def __init__(self, specs: Sequence[TransformSpec]) -> None:
        self.specs = list(specs)
        params = [_validated_params(s) for s in self.specs]
        last_rank = -1
        for spec in self.specs:
            rank = _stage_rank(spec)
            if rank < last_rank:
                raise TransformError(
                    f"transform '{spec.name}' cannot follow a later-stage transform"
                )
            last_rank = rank
        loads = [i for i, s in enumerate(self.specs) if REGISTRY[s.name].stage == "load"]
        if len(loads) != 1:
            raise TransformError("a chain needs exactly one load_audio transform (its rate)")
        sr = params[loads[0]]["sr"]
        self.sample_rate = positive_int("load_audio", "sr", sr)
        self.steps = self._compile(params)
        self.frame_steps, self.window_steps = _split_stages(self.steps)

    def _compile(self, params: list[dict[str, Any]]) -> list[Step]:
        steps: list[Step] = []
        stft_seen = False
        i = 0
        while i < len(self.specs):
            spec, p = self.specs[i], params[i]
            tdef = REGISTRY[spec.name]
            if tdef.stage == "load":
                i += 1
                continue
            if tdef.stage == "stft":
                if stft_seen:
                    raise TransformError(
                        f"transform '{spec.name}': the chain has a spectrogram already"
                    )
                stft_seen = True
                if spec.name not in _FUSED_STFTS:  # a whole-window front end of its own
                    steps.append(Step(spec, p))
                    i += 1
                    continue
                nxt = i + 1 < len(self.specs) and self.specs[i + 1].name == "freq_compression"
                compress = (self.specs[i + 1], params[i + 1]) if nxt else None
                spectrum = SpectrumStep(spec, p, compress, self.sample_rate)
                if steps and steps[-1].specs[0].name == "pre_emph":
                    spectrum.fuse_pre_emphasis(steps.pop())
                steps.append(spectrum)
                i += 2 if nxt else 1
                continue
            if tdef.stage == "spec" and not stft_seen:
                raise TransformError(f"{spec.name} needs a spectrogram before it in the chain")
            last = steps[-1] if steps else None
            if isinstance(last, SpectrumStep) and last.absorb(spec, p):
                i += 1
                continue
            if spec.name == "filter_wav":  # design now: bad cut-offs fail before any work
                filter_sos(self.sample_rate, **p)
            steps.append(Step(spec, p))
            i += 1
        return steps

    def resampler(self, input_rate: int, channels: int) -> StreamResampler:
        """The stateful stream stage from the input rate to :attr:`sample_rate`."""
        return StreamResampler(int(input_rate), self.sample_rate, channels)

    def apply(self, segments: np.ndarray) -> np.ndarray:
        """Run the per-segment transforms on ``(n, samples)`` at :attr:`sample_rate`."""
        return self.run_steps(self.steps, np.asarray(segments, dtype=np.float32))

    def run_steps(
        self, steps: Sequence[Step], data: np.ndarray, freqs: np.ndarray | None = None
    ) -> np.ndarray:
        """Run ``steps`` on a batch (waveforms, or spectra with their ``freqs``)."""
        f = Features(data, float(self.sample_rate), freqs)
        for step in steps:
            f = step.run(f)
        return np.ascontiguousarray(f.data, dtype=np.float32)

    def output_shape(self, segment_samples: int) -> tuple[int, ...]:
        return self.apply(np.zeros((1, segment_samples), np.float32)).shape[1:]

    def to_json(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.specs]
