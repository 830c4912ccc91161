"""Streaming rational resampler whose output equals ``scipy.signal.resample_poly``.

The live path sees audio in blocks of arbitrary size; the offline path sees whole
files. Both must give the model the same samples, so decimation is one stateful
object: a zero-phase polyphase FIR evaluated sample by sample from a history buffer.
Output sample ``n`` is centred on input time ``n / out_rate`` (no group delay), which
keeps detection times on the sample clock.
"""

from __future__ import annotations

from math import gcd

import numpy as np
from numba import njit

from pamlive.dsp.kernels import fir_decimate
from pamlive.dsp.windows import lowpass_kaiser


@njit(cache=True, nogil=True)
def _polyphase(history, history_start, taps, up, down, half_len, first_out, out):
    """Evaluate ``out[m] = up * sum_k taps[k] * xup[(first_out+m)*down + half_len - k]``.

    ``xup`` is the input upsampled by zero stuffing; ``history[c, i - history_start]``
    holds input sample ``i`` of channel ``c``; samples before 0 or past it are zeros.
    Where ``8 * up`` consecutive outputs lie wholly inside the history they are computed
    eight at a time per phase (:func:`_phase8`); the outputs at the edges one by one
    (:func:`_one`). Both add the same products in the same order (no fastmath), so the
    blocking changes no bit.
    """
    n_taps = taps.shape[0]
    n_out = out.shape[0]
    span = 8 * up  # outputs per block: eight of each phase
    # a block whose first output has ``top`` reads the inputs from (top - n_taps + 1) // up
    # to (top + (span - 1) * down) // up: inside the history for ``first <= top < stop``
    first = max(history_start, 0) * up + n_taps - 1
    stop = (history_start + history.shape[1]) * up - (span - 1) * down
    for c in range(out.shape[1]):
        row = history[c]
        m = 0
        top = first_out * down + half_len  # upsampled index under taps[0] for output m
        while m < n_out:
            if m + span <= n_out and first <= top < stop:
                for r in range(up):
                    t = top + r * down
                    _phase8(taps, t % up, up, row, t // up - history_start, down,
                            out[m + r:, c], up)
                m += span
                top += span * down
                continue
            out[m, c] = _one(row, history_start, taps, up, top) * up
            m += 1
            top += down


@njit(cache=True, nogil=True)
def _one(row, history_start, taps, up, top):
    """``sum_k taps[k] * xup[top - k]`` for one output, zeros outside the history."""
    n_taps = taps.shape[0]
    acc = 0.0
    kk = top % up
    while kk < n_taps:
        i = (top - kk) // up
        if i < 0:
            break
        j = i - history_start
        if j < row.shape[0]:
            acc += taps[kk] * row[j]
        kk += up
    return acc


@njit(cache=True, nogil=True)
def _phase8(taps, phase, up, x, at, stride, out, step):
    """Eight outputs of one phase: ``out[q * step] = up * sum_t taps[phase + t * up] *
    x[at + q * stride - t]`` for ``q < 8``, the products added in ``t`` order as
    :func:`_one` adds them. Eight independent sums keep the core busy (one sum is a chain
    of dependent additions); each reads its own slice at an index Numba knows is not
    negative (a negative one gets a wraparound check in the loop). Not
    :func:`~pamlive.dsp.kernels.fir_decimate`'s ``_dot8``: that one may reorder its sums
    (fastmath, to vectorise them); this one keeps the order, so no bit changes."""
    n = (taps.shape[0] - phase + up - 1) // up
    w = taps[phase::up]
    lo = at - (n - 1)
    x0, x1, x2, x3 = x[lo:], x[lo + stride:], x[lo + 2 * stride:], x[lo + 3 * stride:]
    x4, x5 = x[lo + 4 * stride:], x[lo + 5 * stride:]
    x6, x7 = x[lo + 6 * stride:], x[lo + 7 * stride:]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for t in range(n):
        u = n - 1 - t  # x[at - t] is x0[u]
        a = w[t]
        s0 += a * x0[u]
        s1 += a * x1[u]
        s2 += a * x2[u]
        s3 += a * x3[u]
        s4 += a * x4[u]
        s5 += a * x5[u]
        s6 += a * x6[u]
        s7 += a * x7[u]
    out[0], out[step], out[2 * step], out[3 * step] = s0 * up, s1 * up, s2 * up, s3 * up
    out[4 * step], out[5 * step] = s4 * up, s5 * up
    out[6 * step], out[7 * step] = s6 * up, s7 * up


def design_antialias_taps(up: int, down: int) -> np.ndarray:
    """The low-pass FIR that ``resample_poly`` designs by default (Kaiser, beta 5)."""
    max_rate = max(up, down)
    return lowpass_kaiser(2 * 10 * max_rate + 1, 1.0 / max_rate, 5.0)


class StreamResampler:
    """Resample a multichannel stream from ``in_rate`` to ``out_rate`` block by block.

    ``process`` returns every output sample whose filter support is complete;
    ``flush`` ends the stream (zeros after the last input) and returns the rest.
    Concatenated, they equal ``resample_poly(x, up, down, window=self.taps)``.
    """

    def __init__(self, in_rate: int, out_rate: int, channels: int = 1) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        g = gcd(int(in_rate), int(out_rate))
        self.in_rate, self.out_rate, self.channels = int(in_rate), int(out_rate), channels
        self.up, self.down = self.out_rate // g, self.in_rate // g
        self.passthrough = self.up == self.down == 1
        self.taps = np.ones(1) if self.passthrough else design_antialias_taps(self.up, self.down)
        self.half_len = (self.taps.size - 1) // 2
        self._taps_reversed = self.taps[::-1].copy()
        # channel-major input history; _buffer[:, :_held] holds inputs from _history_start
        self._buffer = np.zeros((channels, 4 * self.taps.size), dtype=np.float64)
        self._held = 0
        self._history_start = 0
        self._n_in = 0  # input samples received
        self._n_out = 0  # output samples emitted

    @property
    def delay_in_samples(self) -> int:
        """Input samples that must arrive after time t before output at t is ready."""
        return 0 if self.passthrough else self.half_len // self.up + 1

    def process(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block).reshape(-1, self.channels)
        self._n_in += block.shape[0]
        if self.passthrough:
            self._n_out += block.shape[0]
            return block.astype(np.float32)
        self._append(block)
        # output n is complete when its newest input (n*down + half_len)//up has arrived
        n_ready = (self._n_in * self.up - self.half_len - 1) // self.down + 1
        return self._emit(max(n_ready, self._n_out))

    def _append(self, block: np.ndarray) -> None:
        """Copy ``block`` after the held inputs, growing the buffer only when it is full."""
        end = self._held + block.shape[0]
        if end > self._buffer.shape[1]:
            grown = np.zeros((self.channels, 2 * end), dtype=np.float64)
            grown[:, : self._held] = self._buffer[:, : self._held]
            self._buffer = grown
        self._buffer[:, self._held : end] = block.T
        self._held = end

    def flush(self) -> np.ndarray:
        """End of stream: emit the remaining ``ceil(n_in * up / down)`` outputs."""
        if self.passthrough:
            return np.zeros((0, self.channels), dtype=np.float32)
        total = -(-self._n_in * self.up // self.down)
        return self._emit(total)

    def _emit(self, n_until: int) -> np.ndarray:
        count = n_until - self._n_out
        out = np.empty((max(count, 0), self.channels), dtype=np.float32)
        history = self._buffer[:, : self._held]
        if count > 0 and self.up == 1:  # plain decimation: a strided FIR, no phase bookkeeping
            fir_decimate(
                history,
                self._history_start,
                self._taps_reversed,
                self.down,
                self.half_len,
                self._n_out,
                out,
            )
            self._n_out = n_until
        elif count > 0:
            _polyphase(
                history,
                self._history_start,
                self.taps,
                self.up,
                self.down,
                self.half_len,
                self._n_out,
                out,
            )
            self._n_out = n_until
        # keep only the inputs the next output can still reach
        oldest_needed = (self._n_out * self.down + self.half_len - (self.taps.size - 1)) // self.up
        drop = min(max(oldest_needed - self._history_start, 0), self._held)
        if drop:  # move the few inputs still needed to the front
            self._buffer[:, : self._held - drop] = self._buffer[:, drop : self._held]
            self._held -= drop
            self._history_start += drop
        return out

    def inputs_for(self, outputs: int) -> int:
        """Input samples after which ``process`` has returned ``outputs`` samples."""
        if self.passthrough or outputs <= 0:
            return max(outputs, 0)
        return -(-((outputs - 1) * self.down + self.half_len + 1) // self.up)

    def input_index(self, output_index: int) -> int:
        """The input sample index at the same instant as ``output_index``."""
        return (output_index * self.down) // self.up
