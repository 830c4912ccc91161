"""Event-detection models (bats): calls decoded from a network's heatmaps.

A model whose package says ``"output": {"kind": "events", ...}`` emits calls, not window
scores: no merge rule, one :class:`~pamlive.calls.call.Call` per call, each with its own
time-frequency box and species.
"""
