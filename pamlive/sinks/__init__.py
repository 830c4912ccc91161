"""Sinks: where alerts go past the bus (a webhook, an MQTT broker, a serial line).

Each sink is its own process (``pamlive sink KIND``), a subscriber like any other, so a
slow or dead sink never holds up the publisher; ``base.forward`` runs it and
``state.ResumeState`` keeps its place across restarts.
"""
