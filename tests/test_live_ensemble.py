"""Ensembles in the live monitor (issue 23 item 1): a `[[model.members]]` config runs
through `pamlive run`, alerts what `analyze` finds on the same audio, and its health
says what each member costs and how late it is. The JACK end-to-end test with the
Koogu member is in test_live_jack.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone_in_noise
from test_ensemble import members_config
from test_monitor import Subscriber

from pamlive.app import run_monitor
from pamlive.config import load_config
from pamlive.ensemble import EnsembleDetector, EnsembleMerger, load_ensemble
from pamlive.inference.classifier import Classifier
from pamlive.pipeline import classify_windows

RECORDING = "data/narw-dclde2013/train/narw/NOPP6_EST_20090328_000000.wav"
FROM_S, SECONDS = 628, 50  # six annotated upcalls


def ensemble_config(tmp: Path, audio: Path, tonal: Path, speed: float = 40.0) -> Path:
    """The built-in member at 0.3: its first detection comes seconds into the excerpt, after
    the test's subscriber has joined (at 40 times real time a lower threshold raises an onset
    within the first 0.1 s, before a subscription can reach the bus)."""
    cfg = tmp / "pamlive.toml"
    cfg.write_text(f'data_dir = "{tmp / "data"}"\n[source]\nkind = "replay"\n'
                   f'files = ["{audio}"]\nspeed = {speed}\nblocksize = 1000\n'
                   f'[alerts]\npublish = "ipc://{tmp}/pub"\nreplay = "ipc://{tmp}/replay"\n'
                   + members_config(tonal, '{ rule = "k_of_n", k = 1 }', narw_threshold=0.3),
                   encoding="utf-8")
    return cfg


@pytest.mark.slow
def test_a_live_ensemble_alerts_what_analyze_finds(shared_dir: Path, tonal_package: Path,
                                                   tmp_path: Path) -> None:
    """Accelerated playback of a real recording through an ensemble of the built-in
    model and a second model: every detection analyze's ensemble finds arrives on the
    bus, sample-exact and with its score, named after both members, with no seq gaps;
    health gives each member's windows, CPU share and latency."""
    audio, rate = sf.read(shared_dir / RECORDING, dtype="float32", always_2d=True,
                          start=2000 * FROM_S, frames=2000 * SECONDS)
    wav = tmp_path / "excerpt.wav"
    sf.write(wav, audio, rate, subtype="FLOAT")
    cfg = load_config(ensemble_config(tmp_path, wav, tonal_package))
    sub = Subscriber(cfg.alerts.publish)
    rc = run_monitor(cfg, headless=True, duration_s=60.0)
    messages = sub.close()
    assert rc == 0
    ensemble = load_ensemble(cfg.model)
    offline = EnsembleDetector(ensemble, rate, 1, max_merge=10)
    expected = offline.push(audio) + offline.finish()
    assert len(expected) >= 2, "the reference found too little to compare"
    live = sub.of("detection.")
    assert [(d["class"], d["start_sample"], d["end_sample"]) for d in live] == [
        (e.class_name, e.start_sample, e.end_sample) for e in expected]
    np.testing.assert_allclose([d["score"] for d in live], [e.score for e in expected],
                               rtol=1e-5)
    assert {d["model"]["name"] for d in live} == {"narw-upcall+tonal-test"}
    onsets = sub.of("onset.")
    assert [o["id"] for o in onsets] == [d["id"] for d in live]
    seqs = [b["seq"] for _, b in messages]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gaps once joined
    final = sub.of("health")[-1]
    assert final["drops"]["window_queue"] == final["drops"]["detection_queue"] == 0
    narw, tonal = final["ensemble"]["members"]
    assert (narw["name"], tonal["name"]) == ("narw-upcall", "tonal-test")
    # every window of each member was scored, as many as analyze cuts
    cut = [len(w.push(audio) + w.flush()) for w in
           (m.windower(rate, 1) for m in ensemble.members)]
    assert [narw["windows"], tonal["windows"]] == cut
    assert narw["errors"] == tonal["errors"] == 0
    assert narw["cpu_share"] + tonal["cpu_share"] == pytest.approx(1.0, abs=0.002)
    assert narw["cpu_s"] > 0 and tonal["cpu_s"] > 0
    assert 0 <= narw["latency_ms"]["median"] <= narw["latency_ms"]["p95"]
    # missing at the grid points where analyze's merge found them missing
    assert [narw["missing"], tonal["missing"]] == offline.merger.missing


@pytest.mark.slow
def test_a_failing_member_is_missing_and_never_holds_the_others(
        tonal_package: Path, tmp_path: Path, monkeypatch) -> None:
    """Every batch of the built-in member fails (injected after its warm-up): its windows
    are counted lost and it is missing at every grid point, while the other member's
    detections (one of two suffices; it hears tones) still go out during the run, not at
    its end."""
    rate = 2000
    audio = tone_in_noise(rate, SECONDS, [(10, 14, 150.0), (30, 34, 200.0)])
    wav = tmp_path / "excerpt.wav"
    sf.write(wav, audio, rate, subtype="FLOAT")
    cfg = load_config(ensemble_config(tmp_path, wav, tonal_package, speed=10.0))
    real = Classifier.predict
    calls = {"n": 0}

    def failing(self: Classifier, features: np.ndarray) -> np.ndarray:
        if self.package.name == "narw-upcall":
            calls["n"] += 1
            if calls["n"] > 1:  # its warm-up passes
                raise RuntimeError("injected failure")
        return real(self, features)

    monkeypatch.setattr(Classifier, "predict", failing)
    sub = Subscriber(cfg.alerts.publish)
    assert run_monitor(cfg, headless=True, duration_s=60.0) == 0
    messages = sub.close()
    monkeypatch.undo()

    ensemble = load_ensemble(cfg.model)
    tonal = ensemble.members[1]
    windower = tonal.windower(rate, 1)
    windows = windower.push(audio) + windower.flush()
    reference = EnsembleMerger(ensemble, rate, 10)  # the tonal member's windows only
    expected = reference.push(1, windows, classify_windows(tonal.classifier, windows))
    expected += reference.flush(audio.shape[0])
    assert len(expected) == 2, expected  # the two tones
    live = sub.of("detection.")
    assert [(d["start_sample"], d["end_sample"]) for d in live] == [
        (e.start_sample, e.end_sample) for e in expected]
    final = sub.of("health")[-1]
    narw = final["ensemble"]["members"][0]
    assert narw["windows"] == 0 and narw["errors"] > 0
    assert narw["missing"] == final["ensemble"]["members"][1]["windows"]
    assert "ensemble.member_errors" in final["flags"]
    # the first detection went out while the stream was still running
    first = next(i for i, (t, _) in enumerate(messages) if t.startswith("detection."))
    running = [i for i, (t, b) in enumerate(messages) if t == "health" and "final" not in b]
    assert first < running[-1]
