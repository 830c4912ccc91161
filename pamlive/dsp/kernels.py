"""Numba kernels for the per-sample work of the spectrogram stage.

Framing + windowing, and magnitude + frequency interpolation, are single passes over
memory that numpy would do in several (index arrays, temporaries); the FFT between
them is numpy's (pocketfft) on the whole batch of frames at once, so there is no Python
loop per frame. Every kernel is compiled once and cached on disk (``cache=True``), so
only the first run on a machine pays the compilation.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def frame_windowed(x, starts, window, pre_emphasis, first_row, out):
    """Rows ``first_row ..`` of the windowed frames of every segment, zero outside ``x``.

    Row ``r`` is frame ``f = r % F`` of segment ``s = r // F`` (``F = len(starts)``):
    ``out[r - first_row, k] = y[s, starts[f] + k] * window[k]``, where ``y`` is ``x``
    pre-emphasised, ``y[i] = x[i] - a x[i-1]`` (``x[-1] = 0``; ``a = pre_emphasis``, 0
    for none), computed as ``pre_emph`` does, so fusing it changes no bit. Working
    through the rows in chunks keeps frames, FFT and magnitudes in cache.
    """
    n_samp = x.shape[1]
    n_frames = starts.shape[0]
    n_win = window.shape[0]
    minus_a = -pre_emphasis
    for j in range(out.shape[0]):
        r = first_row + j
        s = r // n_frames
        start = starts[r - s * n_frames]
        k0 = min(max(0, -start), n_win)  # window samples before the segment: zeros
        k1 = max(min(n_win, n_samp - start), k0)  # ... and past its end
        dst = out[j]
        for k in range(k0):
            dst[k] = 0.0
        if pre_emphasis == 0.0:
            _multiply(x[s, start + k0 :], window[k0:], dst[k0:], k1 - k0)
        else:
            if k1 > k0 and start + k0 == 0:  # y[0] = x[0]
                dst[k0] = x[s, 0] * window[k0]
                k0 += 1
            _multiply_pre_emphasised(
                x[s, start + k0 :], x[s, start + k0 - 1 :], minus_a, window[k0:], dst[k0:], k1 - k0
            )
        for k in range(k1, n_win):
            dst[k] = 0.0


@njit(cache=True, nogil=True)
def _multiply(a, b, out, n):
    """``out[:n] = a[:n] * b[:n]`` as a plain forward loop (vectorised)."""
    for i in range(n):
        out[i] = a[i] * b[i]


@njit(cache=True, nogil=True)
def _multiply_pre_emphasised(cur, prev, minus_a, b, out, n):
    """``out[:n] = (prev[:n] * -a + cur[:n]) * b[:n]`` (vectorised; no FMA contraction)."""
    for i in range(n):
        out[i] = (prev[i] * minus_a + cur[i]) * b[i]


@njit(cache=True, nogil=True, fastmath=True)
def magnitude_interp(spec, lo, hi, weight, out):
    """``out[r, j] = (1 - w_j) |X[r, lo_j]| + w_j |X[r, hi_j]|`` for complex ``X``.

    ``spec`` is ``X`` viewed as float64 pairs (``(rows, 2 * bins)``: re, im). With
    ``weight`` all zero this is a plain gather of magnitudes (no interpolation, or
    nearest-neighbour when ``lo`` repeats bins); ``hi_j`` is ``lo_j + 1``, or ``lo_j``
    where the weight is zero. Magnitudes are computed once per needed bin; every loop
    is a branch-free forward loop.
    """
    n_rows = spec.shape[0]
    n_out = lo.shape[0]
    b0 = min(lo.min(), hi.min())
    mag = np.empty(max(lo.max(), hi.max()) - b0 + 1)
    keep = 1.0 - weight
    lo0 = lo - b0
    hi0 = hi - b0
    for r in range(n_rows):
        row = spec[r]
        for b in range(mag.shape[0]):  # power, then a separate square-root loop: both
            re = row[2 * (b0 + b)]  # vectorise (one fused loop does not)
            im = row[2 * (b0 + b) + 1]
            mag[b] = re * re + im * im
        for b in range(mag.shape[0]):
            mag[b] = np.sqrt(mag[b])
        dst = out[r]
        for j in range(n_out):
            dst[j] = keep[j] * mag[lo0[j]] + weight[j] * mag[hi0[j]]


@njit(cache=True, nogil=True)
def nonpositive_to(data, value):
    """In place: every value that is not positive (or is NaN) becomes ``value``."""
    flat = data.reshape(-1)
    for i in range(flat.shape[0]):
        v = flat[i]
        flat[i] = v if v > 0 else value


@njit(cache=True, nogil=True)
def scale_floor_affine_clip(data, gain, floor, scale, offset, lo, hi):
    """In place, in ``data``'s precision: ``clip(max(x * gain, floor) * scale + offset)``.

    The same operations in the same order as the separate transforms (no fastmath: no
    FMA contraction), so folding them into one pass changes no bit.
    """
    flat = data.reshape(-1)
    for i in range(flat.shape[0]):
        v = flat[i] * gain
        v = floor if v < floor else v  # NaN stays NaN, as np.maximum / np.clip keep it
        v = v * scale + offset
        v = lo if v < lo else v
        flat[i] = hi if v > hi else v


@njit(cache=True, nogil=True)
def divide_rows_by_sum(data):
    """In place: each row divided by its sum; rows whose sum is not positive become 0."""
    n_rows, n_cols = data.shape
    for r in range(n_rows):
        total = 0.0
        for j in range(n_cols):
            total += data[r, j]
        if total > 0.0:
            inv = 1.0 / total
            for j in range(n_cols):
                data[r, j] = data[r, j] * inv
        else:
            for j in range(n_cols):
                data[r, j] = 0.0


@njit(cache=True, nogil=True, fastmath=True)
def fir_decimate(history, history_start, taps_reversed, down, half_len, first_out, out):
    """Integer-factor decimation (``up == 1``) of ``resample_poly``: a strided FIR.

    ``out[m, c] = sum_k taps[k] * x[c, (first_out + m) * down + half_len - k]`` where
    ``x[c, i] = history[c, i - history_start]``, zero outside it. The taps come reversed
    so that taps and samples are both read forwards (a vectorised dot product). Where
    eight consecutive outputs lie wholly inside the history they are computed together
    (:func:`_dot8`: each tap loaded once for eight outputs; loads, not multiplies, bound
    this loop); the outputs at the edges one by one.
    """
    n_taps = taps_reversed.shape[0]
    n_hist = history.shape[1]
    n_out = out.shape[0]
    for c in range(out.shape[1]):
        row = history[c]
        m = 0
        while m < n_out:
            top = (first_out + m) * down + half_len  # input index under taps[0]
            first = top - (n_taps - 1)  # ... and under the last tap
            inside = first >= max(history_start, 0)
            if inside and m + 8 <= n_out and top + 7 * down < history_start + n_hist:
                _dot8(taps_reversed, row[first - history_start :], down, out[m : m + 8, c])
                m += 8
                continue
            i_lo = max(first, history_start, 0)
            i_hi = min(top, history_start + n_hist - 1)
            out[m, c] = _dot(
                taps_reversed[n_taps - 1 - top + i_lo :],
                row[i_lo - history_start :],
                i_hi - i_lo + 1,
            )
            m += 1


@njit(cache=True, nogil=True, fastmath=True)
def _dot8(a, x, stride, out):
    """``out[i] = sum(a * x[i * stride : i * stride + len(a)])`` for ``i < 8``.

    Each row is its own slice indexed by the loop counter alone: an offset index
    (``x[k + stride]``) gets Numba's negative-index check and stops vectorisation.
    """
    x0, x1, x2, x3 = x, x[stride:], x[2 * stride :], x[3 * stride :]
    x4, x5, x6, x7 = x[4 * stride :], x[5 * stride :], x[6 * stride :], x[7 * stride :]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for k in range(a.shape[0]):
        t = a[k]
        s0 += t * x0[k]
        s1 += t * x1[k]
        s2 += t * x2[k]
        s3 += t * x3[k]
        s4 += t * x4[k]
        s5 += t * x5[k]
        s6 += t * x6[k]
        s7 += t * x7[k]
    out[0], out[1], out[2], out[3] = s0, s1, s2, s3
    out[4], out[5], out[6], out[7] = s4, s5, s6, s7


@njit(cache=True, nogil=True, fastmath=True)
def _dot(a, b, n):
    """``sum(a[:n] * b[:n])`` in a loop LLVM vectorises (contiguous, forwards)."""
    acc = 0.0
    for i in range(n):
        acc += a[i] * b[i]
    return acc


@njit(cache=True, nogil=True)
def sos_filter_channels(sos, x, zi):
    """``scipy.signal.sosfilt`` in place on ``x`` (samples, channels), state ``zi``
    (sections, 2, channels): scipy's recurrence, operation for operation (no FMA), with
    the channels as the inner loop so one sample of every channel is a vector op (an
    IIR is serial in time, not across channels)."""
    n_samples, n_channels = x.shape
    for n in range(n_samples):
        row = x[n]
        for s in range(sos.shape[0]):
            b0, b1, b2 = sos[s, 0], sos[s, 1], sos[s, 2]
            a1, a2 = sos[s, 4], sos[s, 5]
            z0 = zi[s, 0]
            z1 = zi[s, 1]
            for c in range(n_channels):
                x_cur = row[c]
                x_new = b0 * x_cur + z0[c]
                z0[c] = b1 * x_cur - a1 * x_new + z1[c]
                z1[c] = b2 * x_cur - a2 * x_new
                row[c] = x_new


@njit(cache=True, nogil=True)
def one_pole_rows(x, b0, a1, z_init, out):
    """``scipy.signal.lfilter([b0], [1, a1], row, zi=[z_init])`` along every row of ``x``
    (2-D) into ``out`` (float64): scipy's transposed direct form operation for operation,
    ``y = z + b0 x; z = 0 x - a1 y`` (its missing ``b1`` is zero: ``0 x`` keeps a NaN or
    infinity in the state as scipy does), so no bit differs. Eight rows run side by side:
    one row is a chain of dependent steps, eight keep the core busy."""
    n_rows, n = x.shape
    z = np.empty(8)
    for r0 in range(0, n_rows, 8):
        r1 = min(r0 + 8, n_rows)
        z[:] = z_init
        for i in range(n):
            for r in range(r0, r1):
                v = np.float64(x[r, i])
                y = z[r - r0] + b0 * v
                z[r - r0] = v * 0.0 - y * a1
                out[r, i] = y
