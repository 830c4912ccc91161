"""Forward pamlive alerts to an HTTP webhook: ``pamlive sink webhook`` under its old name.

Every onset, detection (and, with ``[array]``, bearing), live or healed through replay, is
POSTed as the bus's JSON body, the monitor's state as ``{"event": "stopped"|"lost"|
"recovered", ...}``; the bridge keeps its place in ``--state`` (default
``webhook_bridge.state`` here), so a restarted bridge misses nothing (docs/alerts.md, "Sinks").

    python examples/webhook_bridge.py https://example.org/hook \
        --publish tcp://127.0.0.1:5556 --replay tcp://127.0.0.1:5557
"""

import sys

from pamlive.cli import main

if __name__ == "__main__":
    # a --state given on the command line comes later, and wins
    sys.exit(main(["sink", "webhook", "--state", "webhook_bridge.state", *sys.argv[1:]]))
