"""An alert on the wire names its sound `class` (issue 6: "an MQTT `alert` event with class and
confidence"), in MQTT, in `run --jsonl` and in `notesight listen`; in Python the field stays
`Alert.label` (`class` is a keyword)."""

from __future__ import annotations

import io
import json

import pytest
from jsonschema import ValidationError
from mqtt_schemas import validate

from notesight.device.mqtt import event_body, iso_utc, schema_id
from notesight.device.mqtt_listen import Listener
from notesight.device.outputs import JsonlEvents, event_dict
from notesight.dsp.events import Alert


def alert_payload(alert: Alert) -> dict:
    kind, body, stream_s = event_body(alert)
    assert kind == "alert"
    return {
        "schema": schema_id("alert"),
        "device_id": "piano-1",
        "boot_id": "0f5b7a4e-8d6b-4f55-9f73-6c8f2e1d2a10",
        "seq": 3,
        "event_id": "6c1e2a44-1d2b-4c9a-8a51-3e0f3b2c9d11",
        "t": iso_utc(1_700_000_000.5),
        "clock_synced": True,
        "stream_s": stream_s,
        **body,
    }


def test_the_mqtt_alert_carries_class_and_confidence():
    payload = alert_payload(Alert("doorbell", 0.93127, 12.5, True))
    validate(payload)
    assert payload["class"] == "doorbell" and payload["confidence"] == 0.9313
    assert "label" not in payload
    assert payload["event_type"] == "doorbell" and payload["active"] is True


def test_a_stopped_alert_keeps_its_class():
    payload = alert_payload(Alert("smoke_alarm", 0.2, 20.0, False))
    validate(payload)
    assert (payload["class"], payload["event_type"]) == ("smoke_alarm", "stopped")


def test_the_schema_wants_class_not_label():
    payload = alert_payload(Alert("doorbell", 0.9, 1.0))
    old_style = {k: v for k, v in payload.items() if k != "class"} | {"label": "doorbell"}
    with pytest.raises(ValidationError):
        validate(old_style)


def test_run_jsonl_names_the_class():
    out = io.StringIO()
    events = JsonlEvents(out)
    events.handle(Alert("knock", 0.81, 4.25, True))
    (line,) = [json.loads(text) for text in out.getvalue().splitlines()]
    assert line == {
        "event": "alert",
        "class": "knock",
        "confidence": 0.81,
        "stream_s": 4.25,
        "active": True,
    }
    assert event_dict(Alert("knock", 0.81, 4.25, False))["class"] == "knock"


def test_listen_shows_the_class():
    out = io.StringIO()
    payload = alert_payload(Alert("baby_cry", 0.875, 9.0, True))
    assert Listener(out).message("notesight/piano-1/alert", json.dumps(payload).encode(), False)
    assert out.getvalue() == ("2023-11-14T22:13:20.500Z piano-1 #3 alert baby_cry ACTIVE (0.88)\n")
