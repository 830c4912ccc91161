"""The ``spectrum`` bus topic: a coarse live spectrogram for the dashboard's strip.

The live engine feeds its input blocks to a :class:`SpectrumFeed` (a block observer, see
``live/observers.py``) and publishes what comes out; the dashboard renders the rows and
imports the topic and schema names from here. Rows are small (64 bands, 0.1 dB) so four
messages a second per channel cost a few kB/s even on a satellite link.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SPECTRUM_TOPIC = "spectrum"
SPECTRUM_SCHEMA = "pamlive.spectrum/1"


class SpectrumFeed:
    """Turns input blocks into ``pamlive.spectrum/1`` bodies (one per channel per message).

    Each row is the Hann-windowed power spectrum of ``row_s`` seconds (50 % overlap),
    averaged into ``bands`` equal bands from 0 to ``fmax_hz``, in dB re full scale. The
    bus adds ``run_id``, ``seq``, ``time_utc`` and ``station``.
    """

    def __init__(self, sample_rate: int, channels: int, *, fmax_hz: float = 500.0,
                 bands: int = 64, row_s: float = 0.125, rows_per_message: int = 2) -> None:
        if sample_rate <= 0 or channels <= 0 or bands <= 0 or row_s <= 0:
            raise ValueError("SpectrumFeed: sample_rate, channels, bands, row_s must be positive")
        self.sample_rate = sample_rate
        self.channels = channels
        self.fmax_hz = min(float(fmax_hz), sample_rate / 2)
        self.row_s = row_s
        self._hop = max(1, round(row_s * sample_rate))
        self._nfft = 1 << (2 * self._hop - 1).bit_length()
        self._window = np.hanning(self._nfft)
        freqs = np.fft.rfftfreq(self._nfft, 1 / sample_rate)
        edges = np.linspace(0.0, self.fmax_hz, bands + 1)
        self._starts = np.searchsorted(freqs, edges[:-1])
        self._stop = int(np.searchsorted(freqs, self.fmax_hz, side="right"))
        self._counts = np.diff(np.append(self._starts, self._stop)).clip(min=1)
        # a full-scale sine's bin reads 0 dB
        self._scale = (2.0 / self._window.sum()) ** 2
        self._rows_per_message = rows_per_message
        # channel-major samples not yet past a row: each block is copied in once, and the
        # frames of a row are contiguous for the FFT (one row costs an FFT, not a block)
        self._pending = np.zeros((channels, 2 * self._nfft), np.float32)
        self._held = 0
        # one row's frames and FFT, reused: fresh 2 MB arrays eight times a second would
        # each be fresh pages from the kernel (page faults: a third of this stage's CPU)
        self._frame = np.empty((channels, self._nfft), np.float64)
        self._spectrum = np.empty((channels, self._nfft // 2 + 1), np.complex128)
        self._rows: list[np.ndarray] = []

    def push(self, block: np.ndarray) -> list[dict[str, Any]]:
        """Add ``(frames, channels)`` samples; return the message bodies now complete."""
        block = np.asarray(block, np.float32)
        end = self._held + block.shape[0]
        if end > self._pending.shape[1]:
            grown = np.zeros((self.channels, 2 * end), np.float32)
            grown[:, : self._held] = self._pending[:, : self._held]
            self._pending = grown
        self._pending[:, self._held : end] = block.T
        self._held = end
        n_rows = (end - self._nfft) // self._hop + 1 if end >= self._nfft else 0
        for i in range(n_rows):
            np.multiply(self._pending[:, i * self._hop : i * self._hop + self._nfft],
                        self._window, out=self._frame)
            spectrum = np.fft.rfft(self._frame, axis=1, out=self._spectrum)[:, : self._stop]
            power = (np.abs(spectrum) ** 2 * self._scale).T  # (bins, channels)
            banded = np.add.reduceat(power, self._starts, axis=0) / self._counts[:, None]
            self._rows.append(10 * np.log10(banded + 1e-20))
        if n_rows:  # move the samples the next rows still need to the front
            used = n_rows * self._hop
            self._pending[:, : end - used] = self._pending[:, used:end]
            self._held = end - used
        bodies: list[dict[str, Any]] = []
        while len(self._rows) >= self._rows_per_message:
            rows = np.stack(self._rows[: self._rows_per_message])  # (rows, bands, channels)
            del self._rows[: self._rows_per_message]
            for ch in range(self.channels):
                bodies.append({
                    "schema": SPECTRUM_SCHEMA, "channel": ch, "sample_rate": self.sample_rate,
                    "fmax_hz": self.fmax_hz, "row_s": self.row_s,
                    "rows": np.round(rows[:, :, ch], 1).tolist(),
                })
        return bodies
