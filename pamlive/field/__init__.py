"""Field operations: the pieces that let the monitor run unattended on a vessel.

``sdnotify`` (systemd readiness and watchdog), ``watchdog`` (liveness state machine and
device-reopen policy), ``reexec`` (a fresh PortAudio by re-executing in place), ``clips``
(evidence per detection), ``archive`` (raw recording within a disk budget) and
``position`` (vessel position from NMEA 0183 or gpsd); ``settings`` parses their config
sections. Each is self-contained; the live engine (``pamlive.live``) drives them.
"""
