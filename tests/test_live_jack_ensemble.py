"""A live ensemble through a real sound-card path (JACK, dummy backend): the built-in
right whale model and the imported Koogu right whale model, both required to agree
(docs/ensembles.md's `all` rule), alert what `pamlive analyze` finds on the same audio,
with no seq gaps (issue 23's acceptance). A 12 s stretch of a real recording with two
upcalls both models agree on keeps it short."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly
from test_live_jack import (  # noqa: F401 (jack_env: the module's JACK server fixture)
    PERIOD,
    RATE,
    RECORDING,
    SEARCH_PERIODS,
    TimedSubscriber,
    _analyze_cli,
    _event,
    _found,
    _heard,
    jack_env,
    play_to_monitor,
)

from pamlive.alerts.schema import parse_utc
from pamlive.config import load_config
from pamlive.detection import Detection, Onset
from pamlive.ensemble import Ensemble, EnsembleMerger, classify_members, load_ensemble
from pamlive.importers import import_model

pytestmark = [pytest.mark.jack, pytest.mark.slow]

PLAY_FROM_S, PLAY_TO_S = 629, 641  # upcalls at 632 and 637 s: both members agree on them
MAX_MERGE = 10


def ensemble_toml(koogu: Path) -> str:
    """docs/ensembles.md's example: narw >= 0.8 and Koogu >= 0.98 (hops 1 s and 0.5 s)."""
    return ('[model]\nhop_s = 1.0\nmax_merge = 10\n'
            '[[model.members]]\npath = "builtin:narw"\nthresholds = { right_whale = 0.8 }\n'
            f'[[model.members]]\npath = "{koogu}"\nhop_s = 0.5\n'
            'thresholds = { NARW = 0.98 }\nclasses = { right_whale = "NARW" }\n'
            '[model.fusion]\nright_whale = { rule = "all" }\n')


@pytest.fixture(scope="module")
def koogu_narw(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Koogu right whale model imported as `pamlive import-model` does (once)."""
    return import_model(shared_dir / "models/koogu-narw/koogu_narw_model",
                        tmp_path_factory.mktemp("koogu") / "koogu-narw", name="koogu-narw",
                        sample_rate=1000)


def test_a_live_ensemble_through_jack_matches_analyze(
        jack_env, shared_dir: Path, koogu_narw: Path, tmp_path: Path) -> None:  # noqa: F811
    audio2, rate2 = sf.read(shared_dir / RECORDING, dtype="float32", always_2d=True,
                            start=PLAY_FROM_S * 2000, stop=PLAY_TO_S * 2000)
    audio = resample_poly(audio2, RATE // rate2, 1).astype(np.float32)
    cfg = tmp_path / "pamlive.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n[source]\nkind = "device"\n'
                   f'device = "system"\nchannels = 1\nsamplerate = {RATE}\n'
                   f'[alerts]\npublish = "ipc://{tmp_path}/pub"\n'
                   f'replay = "ipc://{tmp_path}/replay"\n' + ensemble_toml(koogu_narw),
                   encoding="utf-8")
    sub = TimedSubscriber(f"ipc://{tmp_path}/pub")
    player, returncode, err = play_to_monitor(jack_env, cfg, audio, sub, tail_s=3.0)
    messages = sub.close()
    assert returncode == 0, err
    assert "Traceback" not in err

    live = sub.of("detection.")
    live_onsets = sub.of("onset.")
    assert len(live) == 2, live  # the two upcalls of the stretch
    assert {d["model"]["name"] for d in live} == {"narw-upcall+koogu-narw"}
    seqs = [b["seq"] for _, b in messages]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no seq gaps
    final = sub.of("health")[-1]
    assert final["drops"] == {"ring_samples": 0, "window_queue": 0, "detection_queue": 0,
                              "publish": 0}
    members = final["ensemble"]["members"]
    assert [m["name"] for m in members] == ["narw-upcall", "koogu-narw"]
    assert all(m["errors"] == 0 and m["windows"] > 0 and m["latency_ms"] for m in members)

    # What the monitor heard: silence, the stretch from some period-aligned offset,
    # silence; the offset whose offline events are the live ones, sample for sample
    # (see test_live_jack.py), must give the same detections in `pamlive analyze`.
    ensemble = load_ensemble(load_config(cfg).model)
    total = final["capture"]["frames"]
    stream_start = parse_utc(live[0]["start_utc"]).timestamp() - live[0]["start_sample"] / RATE
    estimate = round((player.start_utc_s - stream_start) * RATE / PERIOD)
    live_events, live_opened = [_event(d) for d in live], [_event(o) for o in live_onsets]
    for k in sorted(range(estimate - SEARCH_PERIODS, estimate + SEARCH_PERIODS + 1),
                    key=lambda k: abs(k - estimate)):
        if not 0 <= k * PERIOD <= total - audio.shape[0]:
            continue
        onsets, detections = _offline(ensemble, _heard(audio, k * PERIOD, total))
        if ([_found(d) for d in detections] == live_events
                and [_found(o) for o in onsets] == live_opened):
            offset = k * PERIOD
            break
    else:
        raise AssertionError(f"no offset near {estimate} periods gives the live events "
                             f"{live_events} ({final['capture']['overflows']} overflow(s))")
    assert _analyze_cli(jack_env, tmp_path, ensemble_toml(koogu_narw),
                        _heard(audio, offset, total)) == live_events
    print(f"\nJACK ensemble: {live_events}, offset {offset} samples; members "
          + "; ".join(f"{m['name']} CPU share {m['cpu_share']:.2f}, latency "
                      f"{m['latency_ms']['median']:.0f} ms" for m in members))


def _offline(ensemble: Ensemble, audio: np.ndarray) -> tuple[list[Onset], list[Detection]]:
    """The ensemble's onsets and detections on ``audio`` (windows as analyze cuts them)."""
    merger = EnsembleMerger(ensemble, RATE, MAX_MERGE)
    events: list[Onset | Detection] = []
    for m, member in enumerate(ensemble.members):
        windower = member.windower(RATE, audio.shape[1])
        cut = [(m, w) for w in windower.push(audio) + windower.flush()]
        for i, windows, scores in classify_members(ensemble, cut):
            events += merger.push_events(i, windows, scores)
    events += merger.flush_events(audio.shape[0])
    return ([e for e in events if isinstance(e, Onset)],
            [e for e in events if isinstance(e, Detection)])
