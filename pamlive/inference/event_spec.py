"""What a package's ``"output"`` object says about decoding an event model's heatmaps."""

from __future__ import annotations

from dataclasses import dataclass

DECODERS = ("batdetect2",)


@dataclass(frozen=True)
class EventSpec:
    """batdetect2's post-processing numbers (its ``run_nms`` parameters), as the package
    states them; ``sample_rate`` is the package's (the model's) rate.

    A network pixel column ``x`` (after the network's resize by ``resize_factor``) starts
    at spectrogram frame ``x / resize_factor``, i.e. at ``frame * frame_step_s +
    frame_offset_s`` seconds from its window's start; rows span ``min_freq_hz`` (bottom)
    to ``max_freq_hz`` (top).
    """

    decoder: str
    min_freq_hz: float
    max_freq_hz: float
    frame_step_s: float
    frame_offset_s: float
    resize_factor: float
    nms_kernel_size: int
    nms_top_k_per_sec: float
    detection_threshold: float
    width_multiple: int
    sample_rate: int

    def band_problem(self, input_rate: int) -> str | None:
        """Why audio at ``input_rate`` cannot hold a single call of this model: it records
        nothing above its Nyquist frequency (half the rate), and that lies at or below the
        model's band, so the audio would analyse silently to no calls. None if it can."""
        if input_rate / 2 > self.min_freq_hz:
            return None
        return (f"sample rate {input_rate} Hz holds frequencies up to {input_rate / 2:g} Hz "
                f"only, below the model's band ({self.min_freq_hz:g}-{self.max_freq_hz:g} Hz; "
                f"it needs a rate over {2 * self.min_freq_hz:g} Hz)")

    def threshold(self, override: float | None = None) -> float:
        """The detection threshold in force: ``override`` (the config's or ``--threshold``),
        else the package's."""
        return self.detection_threshold if override is None else override

    @property
    def step_samples(self) -> float:
        """The spectrogram hop in samples (batdetect2's ``nfft - noverlap``)."""
        return _whole(self.frame_step_s * self.sample_rate)

    @property
    def offset_samples(self) -> float:
        """The first frame's time offset in samples (batdetect2's ``noverlap``)."""
        return _whole(self.frame_offset_s * self.sample_rate)


def _whole(samples: float) -> float:
    """A sample count snapped to the integer it is meant to be (``hop / rate`` written in
    seconds loses the last bits), so times are batdetect2's ``(x * step + noverlap) / sr``."""
    near = round(samples)
    return float(near) if abs(samples - near) < 1e-6 else samples
