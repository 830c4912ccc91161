"""The MQTT sink's topics and delivery rule, against a stand-in for paho-mqtt."""

from __future__ import annotations

import importlib
import sys
import types

import pytest

from pamlive.alerts.client import BusEvent


class FakeInfo:
    def __init__(self, acked: bool) -> None:
        self.acked = acked

    def wait_for_publish(self, timeout: float) -> None:
        pass

    def is_published(self) -> bool:
        return self.acked


class FakeClient:
    """paho's Client as the sink uses it: records what is published, acks if told to."""

    acked = True

    def __init__(self, api_version: object) -> None:
        self.published: list[tuple[str, str, bool]] = []

    def will_set(self, topic: str, payload: str, qos: int, retain: bool) -> None:
        self.will = (topic, payload, retain)

    def connect(self, host: str, port: int) -> None:
        pass

    def loop_start(self) -> None:
        pass

    def publish(self, topic: str, payload: str, qos: int, retain: bool) -> FakeInfo:
        assert qos == 1
        self.published.append((topic, payload, retain))
        return FakeInfo(self.acked)


@pytest.fixture
def mqtt_sink(monkeypatch):
    client = types.ModuleType("paho.mqtt.client")
    client.Client = FakeClient
    client.CallbackAPIVersion = types.SimpleNamespace(VERSION2=2)
    for name in ("paho", "paho.mqtt"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", client)
    monkeypatch.delitem(sys.modules, "pamlive.sinks.mqtt", raising=False)
    return importlib.import_module("pamlive.sinks.mqtt").MqttSink


def test_alerts_go_to_kind_topics_and_the_state_is_retained(mqtt_sink):
    sink = mqtt_sink("broker", prefix="ship")
    body = {"station": "buoy7", "class": "right_whale", "run_id": "r", "seq": 4}
    sink.alert(BusEvent("message", "onset.right_whale", body))
    sink.notice(BusEvent("stopped", "health", {"run_id": "r", "reason": "sigterm"}))
    sink.notice(BusEvent("gap", "", {}, "replay: no reply"))  # no retained state for a gap
    topics = [(topic, retain) for topic, _, retain in sink._client.published]
    assert topics == [("ship/buoy7/onset/right_whale", False), ("ship/status", True)]
    assert sink._client.published[1][1] == "stopped"
    assert sink._client.will == ("ship/status", "lost", True)


def test_an_alert_the_broker_does_not_acknowledge_is_not_delivered(mqtt_sink, monkeypatch):
    sink = mqtt_sink("broker")
    monkeypatch.setattr(FakeClient, "acked", False)
    with pytest.raises(RuntimeError, match="did not acknowledge"):
        sink.alert(BusEvent("message", "detection.x", {"station": "s", "class": "x"}))
