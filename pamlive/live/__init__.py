"""The live engine's stages: capture -> ring -> windows -> ONNX -> merge + publish, in
threads (``pamlive/engine.py`` builds them and runs the loop that ties them).

One module per stage, each owning its thread, its bounded queue and its counters::

    capture.py    the source writes blocks into the ring; the sample clock is kept true
    windowing.py  thread: ring -> block observers -> windows -> window queue
    observers.py  what else sees every block: watchdog, archive, level meter, spectrum
    scoring.py    thread: window queue -> ONNX batches -> score queue
    publish.py    engine's thread: score queue -> merge -> events -> bus, clips, hooks
    supervise.py  liveness watchdog alerts, systemd notifications, device-restart decision
    wiring.py     clips (evidence), raw archive, GPS: built from the config, their health
    health.py     a pure function: counter snapshot -> ``pamlive.health/1`` body
    spectrum.py   the ``spectrum`` topic's producer (for the dashboard's strip)

Nothing upstream ever waits for anything downstream: a full queue drops the item and
counts it, an overrun ring loses its oldest audio and counts every sample. The app
(sources from the config, signals, exit codes, re-exec, dashboard) is ``pamlive.app``.
What depends on the model's kind of output (one model's scores, an ensemble, an event
model's calls) is swapped in by ``pamlive/kinds/``, which sits above these stages and
below the engine.
"""
