"""Forward pamlive alerts to an MQTT broker (needs the ``bridges`` extra: paho-mqtt).

Onsets (a call has begun: the early alert) go to ``<prefix>/<station>/onset/<class>``,
detections (the call, closed; same ``id``) to ``<prefix>/<station>/detection/<class>``
(QoS 1, the bus's JSON body);
the monitor's state goes to ``<prefix>/status`` as a retained ``ok``/``stopped``/``lost``
(``stopped``: a clean stop, the monitor said goodbye; ``lost``: silent without one, or
this bridge gone) so a late MQTT subscriber sees the current state at once.

    pip install 'pamlive[bridges]'
    python examples/mqtt_bridge.py --broker localhost --publish tcp://127.0.0.1:5556 \
        --replay tcp://127.0.0.1:5557
"""

from __future__ import annotations

import argparse
import json

import paho.mqtt.client as mqtt

from pamlive.alerts.client import AlertClient


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--broker", default="localhost")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--prefix", default="pamlive")
    p.add_argument("--publish", default="tcp://127.0.0.1:5556")
    p.add_argument("--replay", default="tcp://127.0.0.1:5557")
    args = p.parse_args()

    broker = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    broker.will_set(f"{args.prefix}/status", "lost", qos=1, retain=True)
    broker.connect(args.broker, args.port)
    broker.loop_start()  # paho's network thread (reconnects, QoS 1 resends)
    client = AlertClient(args.publish, replay_endpoint=args.replay)
    while True:
        for event in client.poll(500):
            if event.alert is not None:  # "onset", "detection", "bearing" ([array]) ...
                body = event.body
                topic = f"{args.prefix}/{body['station']}/{event.alert}/{body['class']}"
                broker.publish(topic, json.dumps(body), qos=1)  # paho resends until acked
            elif event.liveness is not None:  # "ok", "stopped" or "lost"
                broker.publish(f"{args.prefix}/status", event.liveness, qos=1, retain=True)


if __name__ == "__main__":
    main()
