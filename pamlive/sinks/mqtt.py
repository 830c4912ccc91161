"""MQTT sink (needs the ``bridges`` extra: paho-mqtt).

Alerts go to ``<prefix>/<station>/<kind>/<class>`` (kind ``onset``, ``detection``,
``bearing`` ...; QoS 1, the bus's JSON body); the monitor's state to ``<prefix>/status``
as a retained ``ok``/``stopped``/``lost`` (also the broker's last will when this sink
dies), so a late MQTT subscriber sees the current state at once.
"""

from __future__ import annotations

import json

import paho.mqtt.client as mqtt

from pamlive.alerts.client import BusEvent
from pamlive.errors import ConfigError

ACK_TIMEOUT_S = 30.0  # the broker's PUBACK: past this the alert is not taken as delivered


class MqttSink:
    """A paho client with its own network thread (reconnects, QoS 1 resends)."""

    def __init__(self, broker: str, port: int = 1883, prefix: str = "pamlive") -> None:
        self.prefix = prefix
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self._client.will_set(f"{prefix}/status", "lost", qos=1, retain=True)
        try:
            self._client.connect(broker, port)
        except OSError as e:
            raise ConfigError(f"MQTT broker {broker}:{port}: {e.strerror or e}") from e
        self._client.loop_start()

    def alert(self, event: BusEvent) -> None:
        body = event.body or {}
        name = body.get("class", body.get("species", "all"))
        self._publish(f"{self.prefix}/{body['station']}/{event.alert}/{name}",
                      json.dumps(body))

    def notice(self, event: BusEvent) -> None:
        if event.liveness is not None:  # a gap has no retained state to set
            self._publish(f"{self.prefix}/status", event.liveness, retain=True)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

    def _publish(self, topic: str, payload: str, retain: bool = False) -> None:
        """Publish and wait for the broker's acknowledgement: only then is it delivered."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(ACK_TIMEOUT_S)
        if not info.is_published():
            raise RuntimeError(f"MQTT broker did not acknowledge {topic} "
                               f"within {ACK_TIMEOUT_S:.0f} s")
