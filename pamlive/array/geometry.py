"""Bearing (and elevation where the array resolves it) from pair delays, by least squares.

A plane wave from the unit direction ``u`` (pointing from the array towards the source)
reaches element ``k`` at ``t0 - p_k . u / c``, so each pair gives one linear equation
``(p_j - p_i) . u = -c * tdoa_ij``. The array's shape decides what can be solved:

* elements on a line (a towed array): only the angle between ``u`` and the line axis,
  the cone angle; the bearing is one of two mirror images, both reported;
* elements in a plane: the horizontal direction, i.e. the bearing (a plane array cannot
  tell a source above it from one below, so no elevation);
* elements spanning three dimensions: bearing and elevation.

Bearings are in degrees clockwise from the array's +y axis (the vessel's bow for a towed
array, the reference direction of a moored one); with a heading, also true bearings.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from pamlive.array.gcc_phat import PairDelay

_RANK_TOL = 1e-6  # fraction of the array's extent below which a dimension is flat
MIN_TDOA_SIGMA_SAMPLES = 0.1  # floor on the delay error: sampling and model error


@dataclass(frozen=True)
class Bearing:
    """One bearing estimate; angles in degrees, ``bearing_deg`` in 0..360."""

    bearing_deg: float  # relative to the array's +y axis (one candidate for a line)
    uncertainty_deg: float  # one standard deviation
    ambiguous: bool = False  # a line array: the source is at either candidate
    candidates_deg: tuple[float, ...] = ()  # both mirror bearings of a line array
    cone_deg: float | None = None  # line arrays: angle between source and the line's +axis
    elevation_deg: float | None = None  # 3-D arrays: above the horizontal plane (+ up)
    residual_s: float = 0.0  # RMS misfit of the delays to one plane wave
    pairs_used: int = 0

    def turned(self, heading_deg: float) -> Bearing:
        """The same estimate as true bearings, the array's +y axis pointing at ``heading``."""
        return Bearing(
            (self.bearing_deg + heading_deg) % 360.0, self.uncertainty_deg, self.ambiguous,
            tuple((c + heading_deg) % 360.0 for c in self.candidates_deg), self.cone_deg,
            self.elevation_deg, self.residual_s, self.pairs_used,
        )


def compass_deg(x: float, y: float) -> float:
    """Direction of the vector (x, y), degrees clockwise from +y, in 0..360."""
    return math.degrees(math.atan2(x, y)) % 360.0


class ArrayGeometry:
    """Element positions (metres, channel order) and the sound speed (m/s)."""

    def __init__(self, positions: np.ndarray | list, sound_speed: float) -> None:
        p = np.asarray(positions, dtype=float)
        if p.ndim != 2 or p.shape[0] < 2 or p.shape[1] not in (2, 3):
            raise ValueError("array positions must be at least two [x, y] or [x, y, z] rows")
        if sound_speed <= 0:
            raise ValueError(f"sound speed must be positive, got {sound_speed}")
        self.positions = np.hstack([p, np.zeros((p.shape[0], 3 - p.shape[1]))])
        self.sound_speed = float(sound_speed)
        centred = self.positions - self.positions.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        if s[0] <= 0:
            raise ValueError("array elements must not all be at the same place")
        self.rank = int(np.sum(s > _RANK_TOL * s[0]))
        self.axis = vt[0]  # line arrays: the direction of the line
        if self.axis @ np.array([0.0, 1.0, 0.0]) < 0 or (
                abs(self.axis[1]) < _RANK_TOL and self.axis[0] < 0):
            self.axis = -self.axis  # point it forward (+y), else to +x
        self.pairs = list(itertools.combinations(range(p.shape[0]), 2))

    @property
    def channels(self) -> int:
        return int(self.positions.shape[0])

    @property
    def linear(self) -> bool:
        return self.rank == 1

    def max_delays_s(self) -> dict[tuple[int, int], float]:
        """The largest physically possible delay of every pair: its spacing / sound speed."""
        return {(i, j): float(np.linalg.norm(self.positions[j] - self.positions[i]))
                / self.sound_speed for i, j in self.pairs}

    def delays_for(self, direction: np.ndarray) -> dict[tuple[int, int], float]:
        """The pair delays of a plane wave from unit ``direction`` (x, y, z)."""
        lead = self.positions @ np.asarray(direction, float) / self.sound_speed
        return {(i, j): float(lead[i] - lead[j]) for i, j in self.pairs}

    def solve(self, delays: list[PairDelay], fs: float, min_confidence: float = 0.0
              ) -> Bearing | None:
        """Least-squares bearing from the pair delays (weighted by confidence); None when
        too few pairs pass ``min_confidence`` to fix a direction."""
        used = [d for d in delays if d.confidence >= min_confidence and d.confidence > 0]
        if not used:
            return None
        a = np.array([self.positions[d.j] - self.positions[d.i] for d in used])
        b = np.array([-self.sound_speed * d.tdoa_s for d in used])
        w = np.array([d.confidence for d in used])
        floor_m = MIN_TDOA_SIGMA_SAMPLES * self.sound_speed / fs
        if self.linear:
            return self._solve_line(a @ self.axis, b, w, floor_m, len(used))
        basis = np.eye(3)[:, :2] if self.rank == 2 and self._horizontal() else None
        if basis is None and self.rank < 3:
            _, _, vt = np.linalg.svd(self.positions - self.positions.mean(axis=0))
            basis = vt[: self.rank].T
        design = a if basis is None else a @ basis
        if np.linalg.matrix_rank(design * w[:, None]) < design.shape[1]:
            return None
        sol, cov, residual = _weighted_lstsq(design, b, w, floor_m)
        u = sol if basis is None else basis @ sol
        jac = basis if basis is not None else np.eye(3)
        cov3 = jac @ cov @ jac.T
        horiz = math.hypot(u[0], u[1])
        if horiz == 0:
            return None
        grad = np.array([u[1], -u[0], 0.0]) / horiz**2  # d atan2(x, y) / d(x, y)
        sigma = math.degrees(math.sqrt(max(grad @ cov3 @ grad, 0.0)))
        elevation = (math.degrees(math.atan2(u[2], horiz)) if self.rank == 3 else None)
        return Bearing(compass_deg(u[0], u[1]), min(sigma, 180.0), elevation_deg=elevation,
                       residual_s=residual / self.sound_speed, pairs_used=len(used))

    def _horizontal(self) -> bool:
        return bool(np.ptp(self.positions[:, 2]) <= _RANK_TOL * np.ptp(self.positions[:, :2]))

    def _solve_line(self, spans: np.ndarray, b: np.ndarray, w: np.ndarray, floor_m: float,
                    used: int) -> Bearing | None:
        """Line arrays: cos(cone) = u . axis; the two mirror bearings about the axis."""
        sol, cov, residual = _weighted_lstsq(spans[:, None], b, w, floor_m)
        cos_cone = float(np.clip(sol[0], -1.0, 1.0))
        cone = math.degrees(math.acos(cos_cone))
        sin_cone = max(math.sqrt(1.0 - cos_cone**2), 1e-3)
        sigma = min(math.degrees(math.sqrt(max(cov[0, 0], 0.0)) / sin_cone), 180.0)
        axis_deg = compass_deg(self.axis[0], self.axis[1])
        first, second = (axis_deg + cone) % 360.0, (axis_deg - cone) % 360.0
        return Bearing(first, sigma, ambiguous=True, candidates_deg=(first, second),
                       cone_deg=cone, residual_s=residual / self.sound_speed, pairs_used=used)


def _weighted_lstsq(design: np.ndarray, b: np.ndarray, w: np.ndarray, floor_m: float
                    ) -> tuple[np.ndarray, np.ndarray, float]:
    """Solution, its covariance and the RMS residual (metres of path difference). The
    error scale is the residual's when there are spare equations, never below the floor."""
    sw = np.sqrt(w)
    sol, *_ = np.linalg.lstsq(design * sw[:, None], b * sw, rcond=None)
    resid = b - design @ sol
    rms = float(np.sqrt(np.mean(resid**2)))
    dof = design.shape[0] - design.shape[1]
    scale2 = float(np.sum(w * resid**2) / dof) if dof > 0 else 0.0
    scale2 = max(scale2, floor_m**2 * float(np.mean(w)))
    normal = design.T @ (design * w[:, None])
    return sol, scale2 * np.linalg.pinv(normal), rms
