"""The MQTT output against a real mosquitto broker (tests/mosquitto.py): everything arrives,
once each after de-duplication and in order, through broker kills, refused logins, unknown
hosts, untrusted certificates and a full disk; every payload fits its JSON Schema."""

from __future__ import annotations

import itertools
import logging
import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from mosquitto import Broker, Recorder, make_ca, make_server_cert, mosquitto_available, wait_for
from mqtt_schemas import validate

from notesight.device.config import MqttSettings
from notesight.device.mqtt import MqttOutput, schema_id
from notesight.device.outbox import Outbox
from notesight.device.outputs import DeviceStatus
from notesight.dsp.events import Alert, Chord, Event, Level, NoteOff, NoteOn

pytestmark = pytest.mark.skipif(
    not mosquitto_available(), reason="mosquitto not installed: run ./install.sh"
)

DEVICE = "testpiano"
TOPICS = [f"notesight/{DEVICE}/#", "homeassistant/#"]
EVENT_KINDS = ("note", "chord", "level", "alert", "session", "health")


@pytest.fixture
def broker(tmp_path: Path):
    b = Broker(tmp_path / "broker").start()
    yield b
    b.kill()


def mqtt_settings(tmp_path: Path, port: int, **changes) -> MqttSettings:
    values = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": port,
        "device_id": DEVICE,
        "state_dir": str(tmp_path / "state"),
        "drain_timeout_s": 30.0,
        "level_interval_s": 0.5,
        "session_gap_s": 2.0,
    }
    return MqttSettings(**(values | changes))


def stream(count: int, start_s: float = 0.0) -> list[Event]:
    """A plausible event stream: notes with their offs, chords, a level every 0.05 s, alerts."""
    events: list[Event] = []
    t = start_s
    for i in range(count):
        midi = 48 + (i * 5) % 37
        events.append(NoteOn(midi, "C4", 261.6, 1.5, 40 + i % 80, t, t + 0.012))
        events.append(Level(-30.0 + i % 20, -62.0, t + 0.02))
        if i % 4 == 3:
            events.append(Chord("Cmaj", (60, 64, 67), t + 0.03))
        if i % 50 == 25:
            events.append(Alert("doorbell", 0.9, t + 0.04, True))
        if i % 50 == 30:
            events.append(Alert("doorbell", 0.1, t + 0.04, False))
        events.append(NoteOff(midi, "C4", t + 0.08, t + 0.09))
        t += 0.1
    return events


def output(settings: MqttSettings, status: DeviceStatus | None = None, **options) -> MqttOutput:
    """An MQTT output whose close() waits (up to drain_timeout_s) for the broker's acks."""
    return MqttOutput(settings, status, **({"drain_on_close": True} | options))


def feed(output: MqttOutput, events: list[Event], pause_s: float = 0.0) -> None:
    for event in events:
        output.handle(event)
        output.tick(getattr(event, "emitted_s", getattr(event, "stream_s", 0.0)))
        if pause_s:
            time.sleep(pause_s)


def last_seq(output: MqttOutput) -> int:
    box = Outbox(output.outbox_path)
    try:
        return box.seq
    finally:
        box.close()


def outbox_rows(output: MqttOutput) -> int:
    box = Outbox(output.outbox_path)
    try:
        return len(box)
    finally:
        box.close()


def is_telemetry(payload: dict) -> bool:
    return payload["schema"] in (schema_id("level"), schema_id("health"))


def numbered(rec: Recorder) -> list[dict]:
    """The events received (they carry a seq); telemetry (level, health) is not numbered."""
    return [p for p in rec.events() if not is_telemetry(p)]


def assert_complete(events: list[dict], upto: int) -> None:
    """Every seq from 1 to `upto` arrived; duplicates carry the same event_id; all validate;
    telemetry has no seq."""
    by_seq: dict[int, set[str]] = {}
    for payload in events:
        validate(payload)
        assert ("seq" in payload) != is_telemetry(payload), payload
        if "seq" in payload:
            by_seq.setdefault(payload["seq"], set()).add(payload["event_id"])
    missing = sorted(set(range(1, upto + 1)) - set(by_seq))
    assert not missing, f"{len(missing)} events never arrived: {missing[:20]}"
    assert all(len(ids) == 1 for ids in by_seq.values()), "one seq with two event ids"
    assert max(by_seq) == upto


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# --- the happy path: topics, payloads, retained status, Home Assistant -----------------------


def test_every_event_arrives_once_in_order_and_fits_its_schema(broker, tmp_path):
    status = DeviceStatus()
    events = stream(60)
    with Recorder(broker, TOPICS) as rec:
        settings = mqtt_settings(tmp_path, broker.port, health_interval_s=1.0)
        out = output(settings, status, mic="USB mic", sample_rate=48000, config_digest="0" * 16)
        wait_for(lambda: status.snapshot().mqtt_connected, "connected status")
        assert status.snapshot().mqtt_enabled
        feed(out, events)
        out.tick(9.0)  # 3 s without a note: the session ends
        wait_for(lambda: rec.on("/health"), "a health message")
        wait_for(lambda: any(p.get("type") == "session_end" for p in rec.events()), "session end")
        out.close()
        wait_for(lambda: rec.on("/status")[-1:] and rec.on("/status")[-1].payload == b"offline",
                 "status offline")  # fmt: skip
        seqs = [p["seq"] for p in numbered(rec)]
        # one connection, no outage: each once, in order
        assert seqs == list(range(1, last_seq(out) + 1))
        assert_complete(rec.events(), last_seq(out))
        assert outbox_rows(out) == 0
        assert not status.snapshot().mqtt_connected and status.snapshot().mqtt_queued == 0

    payloads = rec.events()
    assert {p["device_id"] for p in payloads} == {DEVICE}
    assert {p["boot_id"] for p in payloads} == {out.boot_id}
    assert len({p["event_id"] for p in payloads}) == len(payloads)
    notes = [p for p in payloads if p["schema"] == schema_id("note")]
    sent = [e for e in events if isinstance(e, NoteOn | NoteOff)]
    assert [(p["type"], p["midi"]) for p in notes] == [
        ("note_on" if isinstance(e, NoteOn) else "note_off", e.midi) for e in sent
    ]
    assert [p["stream_s"] for p in notes] == [round(e.emitted_s, 4) for e in sent]
    chords = [p for p in payloads if p["schema"] == schema_id("chord")]
    assert len(chords) == sum(isinstance(e, Chord) for e in events)
    alerts = [p for p in payloads if p["schema"] == schema_id("alert")]
    assert [(a["class"], a["event_type"]) for a in alerts] == [
        ("doorbell", "doorbell"),
        ("doorbell", "stopped"),
    ]
    # levels: 60 levels over 6 s of stream, rate-limited to one per 0.5 s
    levels = [p["stream_s"] for p in payloads if p["schema"] == schema_id("level")]
    assert 11 <= len(levels) <= 13
    assert min(b - a for a, b in itertools.pairwise(levels)) >= 0.5 - 1e-9
    sessions = [p for p in payloads if p["schema"] == schema_id("session")]
    assert [s["type"] for s in sessions] == ["session_start", "session_end"]
    summary = sessions[1]
    assert summary["notes"] == 60
    assert summary["lowest_midi"] == 48 and summary["highest_midi"] == 84
    health = [p for p in payloads if p["schema"] == schema_id("health")]
    assert health and health[0]["dropped_events"] == 0 and health[0]["dropped_blocks"] == 0

    status_msgs = [m.payload for m in rec.on(f"{DEVICE}/status")]
    assert status_msgs[0] == b"online" and status_msgs[-1] == b"offline"
    (info_msg,) = rec.on(f"{DEVICE}/info")
    info = info_msg.json()
    validate(info)
    assert (info["mic"], info["sample_rate"], info["boot_id"]) == ("USB mic", 48000, out.boot_id)
    # a new subscriber gets the retained state: offline, and what the device was
    with Recorder(broker, [f"notesight/{DEVICE}/status"], client_id="late") as late:
        wait_for(lambda: late.messages, "retained status")
        assert (late.messages[0].payload, late.messages[0].retain) == (b"offline", True)


def test_home_assistant_discovery_is_sent_again_when_home_assistant_comes_online(broker, tmp_path):
    with Recorder(broker, ["homeassistant/+/+/+/config"]) as rec:
        out = output(mqtt_settings(tmp_path, broker.port))
        wait_for(lambda: len(rec.messages) == 5, "five discovery configs")
        components = sorted(m.topic.split("/")[1] for m in rec.messages)
        assert components == ["binary_sensor", "event", "sensor", "sensor", "sensor"]
        with Recorder(broker, ["homeassistant/+/+/+/config"], client_id="late") as late:
            wait_for(lambda: len(late.messages) == 5, "the retained configs")
            assert all(m.retain for m in late.messages)
        for m in rec.messages:
            config = m.json()
            assert config["state_topic"].startswith(f"notesight/{DEVICE}/")
            assert config["availability_topic"] == f"notesight/{DEVICE}/status"
        rec.client.publish("homeassistant/status", "online", qos=1)
        wait_for(lambda: len(rec.messages) == 10, "discovery sent again")
        out.close()


def test_discovery_can_be_switched_off(broker, tmp_path):
    with Recorder(broker, ["homeassistant/#", f"notesight/{DEVICE}/#"]) as rec:
        out = output(mqtt_settings(tmp_path, broker.port, homeassistant=False))
        feed(out, stream(3))
        out.close()
        wait_for(lambda: rec.on("/status")[-1:] and rec.on("/status")[-1].payload == b"offline",
                 "status offline")  # fmt: skip
        assert not [m for m in rec.messages if m.topic.startswith("homeassistant/")]
        assert rec.events()


def test_mqtt_5(broker, tmp_path):
    with Recorder(broker, TOPICS) as rec:
        out = output(mqtt_settings(tmp_path, broker.port, protocol="5"))
        feed(out, stream(20))
        out.close()
        assert outbox_rows(out) == 0
        wait_for(lambda: len(numbered(rec)) >= last_seq(out), "all events")
        assert_complete(rec.events(), last_seq(out))


# --- outages ---------------------------------------------------------------------------------


def test_broker_killed_and_restarted_in_the_middle_of_a_stream(broker, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    events = stream(1500)
    with Recorder(broker, TOPICS) as rec:
        broker.save()  # the recorder's session (and so its queue) survives the kill
        out = output(mqtt_settings(tmp_path, broker.port, max_in_flight=50))
        feeder = threading.Thread(target=feed, args=(out, events, 0.0002))
        feeder.start()
        wait_for(lambda: len(rec.events()) >= 300, "the stream to flow")
        broker.kill()
        received_before = len(rec.events())
        wait_for(lambda: not out.status.snapshot().mqtt_connected, "the output to notice")
        time.sleep(0.3)  # events keep coming while the broker is away
        assert out.queued > 0
        broker.start()
        feeder.join()
        out.close()  # drains: waits until the broker has acknowledged everything
        assert outbox_rows(out) == 0
        upto = last_seq(out)
        wait_for(lambda: {p["seq"] for p in numbered(rec)} >= set(range(1, upto + 1)),
                 f"all {upto} events at the recorder")  # fmt: skip
        assert_complete(rec.events(), upto)
    assert received_before < upto
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(w.startswith(f"MQTT: lost the broker at 127.0.0.1:{broker.port}") for w in warnings)
    assert out.counters.connects >= 2
    # per device the order holds apart from re-sent duplicates: first arrivals are increasing
    first_arrivals: list[int] = []
    seen: set[int] = set()
    for payload in numbered(rec):
        if payload["seq"] not in seen:
            seen.add(payload["seq"])
            first_arrivals.append(payload["seq"])
    assert first_arrivals == sorted(first_arrivals)


def test_seq_keeps_increasing_across_restarts(broker, tmp_path):
    with Recorder(broker, TOPICS) as rec:
        first = output(mqtt_settings(tmp_path, broker.port))
        feed(first, stream(5))
        first.close()
        second = output(mqtt_settings(tmp_path, broker.port))
        feed(second, stream(5))
        second.close()
        upto = last_seq(second)
        wait_for(lambda: len(numbered(rec)) >= upto, "both runs' events")
    assert_complete(rec.events(), upto)
    boots = [p["boot_id"] for p in rec.events()]
    assert boots[0] == first.boot_id and boots[-1] == second.boot_id != first.boot_id
    assert min(p["seq"] for p in numbered(rec) if p["boot_id"] == second.boot_id) > max(
        p["seq"] for p in numbered(rec) if p["boot_id"] == first.boot_id
    )


# --- a broker that will not have us: events stay in the outbox ----------------------------------


def refused_then_fixed(
    tmp_path: Path,
    broker: Broker,
    bad: MqttSettings,
    good: MqttSettings,
    expected: str,
    caplog: pytest.LogCaptureFixture,
    recorder_login: dict,
) -> None:
    """Events go in while `bad` cannot connect (one clear error line, all kept); with `good`
    they all arrive."""
    caplog.set_level(logging.INFO)
    out = output(bad)
    feed(out, stream(20))
    wait_for(lambda: errors(caplog), "the error line")
    time.sleep(0.8)  # a few more attempts (0.25 s, 0.5 s): still only one line
    out.close()
    problems = errors(caplog)
    assert len(problems) == 1, problems
    assert re.fullmatch(expected + r"; events are kept in the outbox \(\d+ queued\)", problems[0])
    kept = outbox_rows(out)
    assert kept == last_seq(out) >= 40
    assert not out.counters.published
    with Recorder(broker, TOPICS, **recorder_login) as rec:
        fixed = output(good)
        fixed.close()
        assert outbox_rows(fixed) == 0
        wait_for(lambda: len(numbered(rec)) >= kept, "the kept events")
        assert_complete(rec.events(), kept)


def test_wrong_password(tmp_path, caplog):
    broker = Broker(tmp_path / "broker", users={"piano": "right horse"}).start()
    try:
        wrong, right = tmp_path / "wrong", tmp_path / "right"
        wrong.write_text("battery staple\n")
        right.write_text("right horse\n")
        common = {"username": "piano", "drain_timeout_s": 0.0}
        refused_then_fixed(
            tmp_path,
            broker,
            mqtt_settings(tmp_path, broker.port, password_file=str(wrong), **common),
            mqtt_settings(
                tmp_path,
                broker.port,
                password_file=str(right),
                drain_timeout_s=30.0,
                username="piano",
            ),
            rf"the MQTT broker at 127\.0\.0\.1:{broker.port} refused the login \(Not authorized\):"
            r" check \[mqtt\]\.username and \[mqtt\]\.password_file",
            caplog,
            {"username": "piano", "password": "right horse"},
        )
    finally:
        broker.kill()


def test_unknown_host(broker, tmp_path, caplog):
    refused_then_fixed(
        tmp_path,
        broker,
        mqtt_settings(tmp_path, broker.port, host="no-such-broker.invalid", drain_timeout_s=0.0),
        mqtt_settings(tmp_path, broker.port),
        r"cannot find the MQTT broker host 'no-such-broker\.invalid' \([^)]+\): check "
        r"\[mqtt\]\.host and the network",
        caplog,
        {},
    )


def test_nothing_listening_on_the_port(broker, tmp_path, caplog):
    from mosquitto import free_port

    closed = free_port()
    refused_then_fixed(
        tmp_path,
        broker,
        mqtt_settings(tmp_path, closed, drain_timeout_s=0.0),
        mqtt_settings(tmp_path, broker.port),
        rf"the MQTT broker at 127\.0\.0\.1:{closed} refused the connection: is the broker "
        r"running\? check \[mqtt\]\.host and \[mqtt\]\.port",
        caplog,
        {},
    )


@pytest.fixture
def tls_broker(tmp_path: Path):
    certs = tmp_path / "certs"
    ca = make_ca(certs, "notesight-test-ca")
    server = make_server_cert(certs, ca)
    b = Broker(tmp_path / "broker", users={"piano": "tls pass"}, tls=(ca[0], *server)).start()
    yield b, ca[0], certs
    b.kill()


def test_tls_with_a_ca_made_here_and_a_password_file(tls_broker, tmp_path):
    broker, ca_cert, _ = tls_broker
    pw = tmp_path / "mqtt-password"
    pw.write_text("tls pass\n")
    settings = mqtt_settings(
        tmp_path,
        broker.port,
        host="localhost",
        tls=True,
        tls_ca_file=str(ca_cert),
        username="piano",
        password_file=str(pw),
    )
    login = {"username": "piano", "password": "tls pass", "ca_file": ca_cert}
    with Recorder(broker, TOPICS, **login) as rec:
        out = output(settings)
        feed(out, stream(30))
        out.close()
        assert outbox_rows(out) == 0
        wait_for(lambda: len(numbered(rec)) >= last_seq(out), "all events over TLS")
        assert_complete(rec.events(), last_seq(out))


def test_tls_with_a_client_certificate(tmp_path):
    certs = tmp_path / "certs"
    ca = make_ca(certs, "notesight-test-ca")
    server = make_server_cert(certs, ca)
    client = make_server_cert(certs, ca, name="piano-client")
    broker = Broker(tmp_path / "broker", tls=(ca[0], *server), require_client_cert=True).start()
    try:
        tls = {"host": "localhost", "tls": True, "tls_ca_file": str(ca[0])}
        with_cert = mqtt_settings(
            tmp_path, broker.port, tls_cert_file=str(client[0]), tls_key_file=str(client[1]), **tls
        )
        with Recorder(broker, TOPICS, ca_file=ca[0], client_cert=client) as rec:
            out = output(with_cert)
            feed(out, stream(10))
            out.close()
            assert outbox_rows(out) == 0
            wait_for(lambda: len(numbered(rec)) >= last_seq(out), "all events")
            assert_complete(rec.events(), last_seq(out))
    finally:
        broker.kill()


def test_tls_without_the_client_certificate_the_broker_wants(tmp_path, caplog):
    certs = tmp_path / "certs"
    ca = make_ca(certs, "notesight-test-ca")
    client = make_server_cert(certs, ca, name="piano-client")
    broker = Broker(
        tmp_path / "broker", tls=(ca[0], *make_server_cert(certs, ca)), require_client_cert=True
    ).start()
    try:
        tls = {"host": "localhost", "tls": True, "tls_ca_file": str(ca[0])}
        refused_then_fixed(
            tmp_path,
            broker,
            mqtt_settings(tmp_path, broker.port, drain_timeout_s=0.0, **tls),
            mqtt_settings(
                tmp_path,
                broker.port,
                tls_cert_file=str(client[0]),
                tls_key_file=str(client[1]),
                **tls,
            ),
            r"(TLS with the MQTT broker at localhost:\d+ failed \(.+\): check \[mqtt\]\.tls, "
            r"tls_ca_file, tls_cert_file, tls_key_file and \[mqtt\]\.port"
            r"|the MQTT broker at localhost:\d+ closed the connection before accepting it \(.+\): "
            r"check \[mqtt\]\.port, \[mqtt\]\.tls and the TLS files \(a client certificate may "
            r"be required\))",
            caplog,
            {"ca_file": ca[0], "client_cert": client},
        )
    finally:
        broker.kill()


def test_tls_with_the_wrong_ca(tls_broker, tmp_path, caplog):
    broker, ca_cert, certs = tls_broker
    other_ca, _ = make_ca(certs / "other", "some-other-ca")
    pw = tmp_path / "mqtt-password"
    pw.write_text("tls pass\n")
    tls = {"host": "localhost", "tls": True, "username": "piano", "password_file": str(pw)}
    refused_then_fixed(
        tmp_path,
        broker,
        mqtt_settings(tmp_path, broker.port, tls_ca_file=str(other_ca), drain_timeout_s=0.0, **tls),
        mqtt_settings(tmp_path, broker.port, tls_ca_file=str(ca_cert), **tls),
        rf"TLS: the MQTT broker's certificate at localhost:{broker.port} is not trusted by "
        rf"\[mqtt\]\.tls_ca_file {re.escape(str(other_ca))} \(.+\): check \[mqtt\]\.tls_ca_file"
        r" and that \[mqtt\]\.host is the name in the broker's certificate",
        caplog,
        {"username": "piano", "password": "tls pass", "ca_file": ca_cert},
    )


# --- bounded outbox, full disk -------------------------------------------------------------------


def test_outbox_bound_drops_the_oldest_and_health_counts_them(broker, tmp_path):
    from mosquitto import free_port

    nowhere = mqtt_settings(tmp_path, free_port(), outbox_max_rows=100, drain_timeout_s=0.0)
    out = output(nowhere)
    feed(out, stream(100))  # about 300 events: 200 more than the outbox holds
    out.close()
    total = last_seq(out)
    assert outbox_rows(out) == 100
    assert out.dropped_events == total - 100
    with Recorder(broker, TOPICS) as rec:
        later = output(mqtt_settings(tmp_path, broker.port, health_interval_s=1.0))
        wait_for(lambda: rec.on("/health"), "a health message")
        later.close()
        wait_for(lambda: len(rec.events()) >= 101, "the kept events and health")
    seqs = sorted({p["seq"] for p in numbered(rec)})
    # the newest 100 survived (oldest dropped first), then the new run's own events
    assert seqs[:100] == list(range(total - 99, total + 1))
    for payload in rec.events():
        validate(payload)


def test_a_full_disk_drops_events_with_one_clear_line_and_never_raises(broker, tmp_path, caplog):
    from mosquitto import free_port

    caplog.set_level(logging.INFO)
    out = output(mqtt_settings(tmp_path, free_port(), drain_timeout_s=0.0))
    feed(out, stream(3))
    wait_for(lambda: outbox_rows(out) >= 7, "the first events stored")
    db = out._outbox._db
    # SQLite's page limit raises exactly what a full disk raises (SQLITE_FULL).
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    feed(out, stream(400, start_s=10.0))  # must not raise on the audio thread
    wait_for(lambda: out.queued - outbox_rows(out) == 0, "the thread to try storing them")
    wait_for(lambda: out.counters.dropped_disk > 0, "events dropped")
    db.execute("PRAGMA max_page_count = 1073741823")  # space again
    feed(out, stream(3, start_s=100.0))
    out.close()
    full = [e for e in errors(caplog) if "disk is full" in e]
    assert len(full) == 1
    assert re.fullmatch(
        r"MQTT outbox .*outbox\.sqlite3: the disk is full; \d+ events dropped \(free some space "
        r"on the device holding \[mqtt\]\.state_dir\)",
        full[0],
    )
    stored = outbox_rows(out)
    assert stored + out.counters.dropped_disk >= 3 * 3 + 400 * 2 + 3 * 2
    assert out.dropped_events >= out.counters.dropped_disk
    with Recorder(broker, TOPICS) as rec:
        later = output(mqtt_settings(tmp_path, broker.port))
        later.close()
        wait_for(lambda: len(numbered(rec)) >= stored, "the stored events")
    for payload in rec.events():
        validate(payload)
    assert len({p["seq"] for p in numbered(rec)}) == stored


def test_the_outbox_survives_a_reopen_with_rows_in_it(tmp_path):
    """Rows written by one process are there, in order, for the next (no broker needed)."""
    from mosquitto import free_port

    out = output(mqtt_settings(tmp_path, free_port(), drain_timeout_s=0.0))
    feed(out, stream(10))
    out.close()
    box = Outbox(out.outbox_path)
    rows = box.after(0, 1000)
    box.close()
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert len(rows) == last_seq(out)
    with sqlite3.connect(out.outbox_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_telemetry_is_never_stored_and_events_are_stored_in_few_transactions(tmp_path):
    """With no broker: levels are skipped (not queued for later), and the events reach the
    outbox in at most one transaction per COMMIT_EVERY_OFFLINE_S (of audio or of wall clock)
    instead of one per event."""
    from mosquitto import free_port

    from notesight.device.mqtt import COMMIT_EVERY_OFFLINE_S

    out = output(mqtt_settings(tmp_path, free_port(), drain_timeout_s=0.0, health_interval_s=1.0))
    events = stream(60)  # 6 s of audio: about 200 events and 60 levels
    started = time.monotonic()
    feed(out, events)
    out.close()
    elapsed = time.monotonic() - started
    levels_sent = 11  # one per level_interval_s = 0.5 s of the 6 s (as in the first test)
    # + session_start, and session_end when close() flushes the session
    numbered_events = sum(not isinstance(e, Level) for e in events) + 2
    box = Outbox(out.outbox_path)
    try:
        topics = [row.topic.rsplit("/", 1)[-1] for row in box.after(0, 10_000)]
    finally:
        box.close()
    assert len(topics) == numbered_events == last_seq(out)
    assert not {"level", "health"} & set(topics)
    assert out.counters.telemetry_skipped >= levels_sent
    assert out.counters.telemetry_sent == 0
    # the first event is stored at once, the rest once per interval (6 s of audio) plus what the
    # wall clock adds while feeding, plus the last commit at close
    assert out.counters.commits <= 2 + (6.0 + elapsed) / COMMIT_EVERY_OFFLINE_S
