"""Bearing accuracy and channel agreement on the simulated array (issue 15).

Runs the simulator through the built-in right whale detector (the ``analyze`` pipeline),
computes every detection's bearing from the same audio, and prints:

1. bearing error against the simulator's truth per SNR band, for a 4-element 40 m
   square and a 2-element 100 m towed line (the line: cone-angle error, and how often
   the left/right ambiguity is reported);
2. with single-channel transients (knocks, flow noise, strum) on, false detections and
   recall without a rule, with k of n channels, and with TDOA consistency;
3. the cost of one bearing (median ms per detection).

    PYTHONPATH=$PWD nice -n 10 python benchmarks/bench_bearings.py [--seconds 900]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from pamlive.array.trial import Trial, bearing_error, cone_error, percentile, run_trial
from pamlive.config import ArraySettings, SimulatorConfig
from pamlive.inference.package import load_model_package
from pamlive.sources.simulator import square_geometry, towed_line_geometry

SNR_BANDS = ((0.0, 5.0), (5.0, 10.0), (10.0, 15.0), (15.0, 20.0), (20.0, 25.0), (10.0, 25.0))


def _sim(geometry: list[tuple[float, float]], seed: int, **kw: float) -> SimulatorConfig:
    return SimulatorConfig(channels=len(geometry), geometry=geometry, snr_db_range=(0.0, 25.0),
                           call_interval_s=8.0, seed=seed, **kw)  # type: ignore[arg-type]


def _square_table(trial: Trial) -> None:
    print("4-element 40 m square: bearing error (deg) against truth")
    print(f"{'SNR dB':>10} {'n':>5} {'median':>8} {'p95':>8} {'max':>8}")
    for lo, hi in SNR_BANDS:
        errs = [e for o in trial.outcomes if o.call and lo <= o.call.snr_db < hi
                and (e := bearing_error(o)) is not None]
        print(f"{f'{lo:.0f}-{hi:.0f}':>10} {len(errs):>5} {percentile(errs, 50):>8.2f} "
              f"{percentile(errs, 95):>8.2f} {max(errs, default=math.nan):>8.2f}")


def _line_table(trial: Trial) -> None:
    print("2-element 100 m towed line: cone-angle error (deg), ambiguity reported")
    print(f"{'SNR dB':>10} {'n':>5} {'median':>8} {'p95':>8} {'ambiguous':>10} "
          f"{'near cand.':>10}")
    for lo, hi in SNR_BANDS:
        sel = [o for o in trial.outcomes if o.call and lo <= o.call.snr_db < hi
               and o.result.relative is not None]
        cones = [e for o in sel if (e := cone_error(o, 0.0)) is not None]
        near = [e for o in sel if (e := bearing_error(o)) is not None]
        amb = sum(o.result.relative.ambiguous for o in sel if o.result.relative)
        print(f"{f'{lo:.0f}-{hi:.0f}':>10} {len(cones):>5} {percentile(cones, 50):>8.2f} "
              f"{percentile(cones, 95):>8.2f} {f'{amb}/{len(sel)}':>10} "
              f"{percentile(near, 50):>10.2f}")


def _agreement_table(trial: Trial, settings: ArraySettings) -> None:
    n = len(settings.positions)
    print(f"\nsingle-channel transients on: {len(trial.transients)} transients, "
          f"{len(trial.calls)} calls in {trial.seconds:.0f} s")
    print(f"{'rule':>22} {'detections':>11} {'false':>6} {'on transient':>13} {'recall':>7} "
          f"{'recall>=10dB':>13}")
    strong = [c for c in trial.calls if c.snr_db >= 10.0]
    rules = [("none", lambda o: True)]
    rules += [(f"k={k} of {n}", lambda o, k=k: len(o.det.channels) >= k) for k in (2, 3)]
    rules.append(("TDOA consistent", lambda o: o.result.tdoa_consistent))
    rules.append(("k=2 and TDOA", lambda o: len(o.det.channels) >= 2 and o.result.tdoa_consistent))
    for name, keep in rules:
        kept = [o for o in trial.outcomes if keep(o)]
        false = [o for o in kept if o.call is None]
        found = {id(o.call) for o in kept if o.call is not None}
        recall = len(found) / len(trial.calls) if trial.calls else math.nan
        strong_recall = (sum(id(c) in found for c in strong) / len(strong) if strong
                         else math.nan)
        print(f"{name:>22} {len(kept):>11} {len(false):>6} "
              f"{sum(o.transient is not None for o in false):>13} {recall:>7.3f} "
              f"{strong_recall:>13.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=900.0, help="simulated audio per run")
    args = ap.parse_args()
    package = load_model_package("builtin:narw")
    square = square_geometry(40.0)
    sq_settings = ArraySettings(positions=[tuple(p) for p in square])
    sq = run_trial(_sim(square, seed=151), sq_settings, package, args.seconds)
    _square_table(sq)
    line = towed_line_geometry(2, 100.0)
    ln = run_trial(_sim(line, seed=152), ArraySettings(positions=[tuple(p) for p in line]),
                   package, args.seconds)
    print()
    _line_table(ln)
    tr = run_trial(_sim(square, seed=153, transient_interval_s=6.0), sq_settings, package,
                   args.seconds)
    _agreement_table(tr, sq_settings)
    costs = [o.result.cost_ms for t in (sq, ln, tr) for o in t.outcomes]
    sq_costs = [o.result.cost_ms for o in sq.outcomes]
    print(f"\ncost per bearing: median {np.median(sq_costs):.1f} ms (4 elements, 6 pairs), "
          f"{np.median([o.result.cost_ms for o in ln.outcomes]):.1f} ms (2 elements); "
          f"p95 over all {np.percentile(costs, 95):.1f} ms")


if __name__ == "__main__":
    main()
