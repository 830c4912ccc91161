"""Forward pamlive alerts to an MQTT broker: ``pamlive sink mqtt`` under its old name.

Needs the ``bridges`` extra (paho-mqtt). Alerts go to ``<prefix>/<station>/<kind>/<class>``
(QoS 1), the monitor's state to the retained ``<prefix>/status`` (``ok``/``stopped``/
``lost``); the bridge keeps its place in ``--state`` (default ``mqtt_bridge.state`` here)
(docs/alerts.md, "Sinks").

    pip install 'pamlive[bridges]'
    python examples/mqtt_bridge.py --broker localhost --publish tcp://127.0.0.1:5556 \
        --replay tcp://127.0.0.1:5557
"""

import sys

from pamlive.cli import main

if __name__ == "__main__":
    # a --state given on the command line comes later, and wins
    sys.exit(main(["sink", "mqtt", "--state", "mqtt_bridge.state", *sys.argv[1:]]))
