"""The MQTT parts that need no broker: the [mqtt] config rules, the SQLite outbox, practice
sessions, payload building against the JSON Schemas, `listen`'s gap detection, startup errors."""

from __future__ import annotations

import io
import json
import math
import sqlite3
from pathlib import Path

import pytest
from mqtt_schemas import validate

from notesight.device.config import MqttSettings, Settings, parse_settings
from notesight.device.errors import ConfigError, OutputError
from notesight.device.mqtt import (
    Connection,
    derive_device_id,
    discovery_messages,
    event_body,
    iso_utc,
    schema_id,
)
from notesight.device.mqtt_listen import Listener, SeqTracker
from notesight.device.outbox import Outbox, default_state_dir, is_disk_full
from notesight.device.session import SessionEnd, SessionStart, SessionTracker
from notesight.dsp.events import Alert, Chord, Level, NoteOff, NoteOn

SRC = "/etc/notesight/config.toml"


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, SRC)
    return str(info.value)


# --- [mqtt] config: defaults and one error per rule -------------------------------------------


def test_mqtt_is_off_by_default_and_the_defaults_are_sane():
    m = Settings().mqtt
    assert m.enabled is False
    assert (m.host, m.port, m.protocol, m.topic_prefix) == ("localhost", 1883, "3.1.1", "notesight")
    assert m.homeassistant is True
    assert (m.tls, m.tls_ca_file, m.tls_cert_file, m.tls_key_file) == (False, "", "", "")


def test_a_full_mqtt_section_is_accepted():
    s = parse_settings(
        """
        [mqtt]
        enabled = true
        host = "broker.lan"
        port = 8883
        protocol = "5"
        client_id = "piano-1"
        device_id = "living_room-piano"
        topic_prefix = "home/piano"
        username = "piano"
        password_file = "/etc/notesight/mqtt-password"
        tls = true
        tls_ca_file = "/etc/notesight/ca.crt"
        tls_cert_file = "/etc/notesight/client.crt"
        tls_key_file = "/etc/notesight/client.key"
        keepalive_s = 30
        level_interval_s = 0.5
        health_interval_s = 30
        session_gap_s = 60
        homeassistant = false
        discovery_prefix = "ha"
        outbox_max_rows = 1000
        outbox_max_age_s = 3600
        max_in_flight = 10
        drain_timeout_s = 0
        state_dir = "/var/lib/notesight"
        """,
        SRC,
    )
    assert s.mqtt.protocol == "5"
    assert s.mqtt.topic_prefix == "home/piano"
    assert s.mqtt.health_interval_s == 30.0


DEVICE_ID_RULE = (
    'must be "" (from the host name) or 1 to 64 letters, digits, "-" or "_" (it is part of the '
    "MQTT topics)"
)
PASSWORD_FILE_RULE = 'must be a string: the path of a file holding the password, "" for none'
STATE_DIR_RULE = (
    'must be a string: a folder for the outbox, "" for $STATE_DIRECTORY, /var/lib/notesight or '
    "~/.local/state/notesight"
)


@pytest.mark.parametrize(
    ("toml", "rule", "got"),
    [
        ('enabled = "yes"', "must be true or false", '"yes"'),
        ('host = ""', "must be a broker host name or IP address", '""'),
        ('host = "my broker"', "must be a broker host name or IP address", '"my broker"'),
        ("port = 0", "must be a whole number from 1 to 65535", "0"),
        ("port = 65536", "must be a whole number from 1 to 65535", "65536"),
        (
            'port = "1883"',
            "must be a whole number from 1 to 65535, written without quotes",
            '"1883"',
        ),
        ('protocol = "3"', 'must be one of "3.1.1", "5"', '"3"'),
        ("protocol = 5", 'must be one of "3.1.1", "5"', "5"),
        ("client_id = 7", 'must be a string: "" for "notesight-<device_id>"', "7"),
        ('device_id = "my piano"', DEVICE_ID_RULE, '"my piano"'),
        ('device_id = "piano/1"', DEVICE_ID_RULE, '"piano/1"'),
        ("username = 5", 'must be a string: "" for no login', "5"),
        ("password_file = true", PASSWORD_FILE_RULE, "true"),
        ('tls = "on"', "must be true or false", '"on"'),
        ("keepalive_s = 4", "must be a whole number from 5 to 3600", "4"),
        ("keepalive_s = 60.5", "must be a whole number from 5 to 3600", "60.5"),
        ("level_interval_s = 0.05", "must be a number from 0.1 to 3600", "0.05"),
        ("health_interval_s = 0.5", "must be a number from 1 to 86400", "0.5"),
        ("session_gap_s = 0", "must be a number from 1 to 3600", "0"),
        ('homeassistant = "no"', "must be true or false", '"no"'),
        ("outbox_max_rows = 99", "must be a whole number from 100 to 10000000", "99"),
        ("outbox_max_age_s = 10", "must be a number from 60 to 31536000", "10"),
        ("max_in_flight = 0", "must be a whole number from 1 to 1000", "0"),
        ("drain_timeout_s = -1", "must be a number from 0 to 600", "-1"),
        ("state_dir = 1", STATE_DIR_RULE, "1"),
    ],
)
def test_one_clear_line_per_bad_value(toml, rule, got):
    key = toml.split(" =")[0]
    assert error_of(f"[mqtt]\n{toml}\n") == f"{SRC}: [mqtt].{key}: {rule} (got {got})"


TOPIC_RULE = (
    'must be a non-empty MQTT topic like "notesight" or "home/piano", without "+", "#" and '
    'without a leading or trailing "/"'
)


@pytest.mark.parametrize("key", ["topic_prefix", "discovery_prefix"])
@pytest.mark.parametrize("value", ["", "/notesight", "notesight/", "a//b", "a/+/b", "piano#"])
def test_topic_prefixes_must_be_plain_topics(key, value):
    assert error_of(f'[mqtt]\n{key} = "{value}"\n') == (
        f'{SRC}: [mqtt].{key}: {TOPIC_RULE} (got "{value}")'
    )


@pytest.mark.parametrize("key", ["tls_ca_file", "tls_cert_file", "tls_key_file"])
def test_tls_files_need_tls_on(key):
    message = error_of(f'[mqtt]\n{key} = "/etc/x.pem"\n')
    assert message.splitlines()[0] == (
        f'{SRC}: [mqtt].{key}: needs tls = true (or remove {key}) (got "/etc/x.pem")'
    )


@pytest.mark.parametrize(("cert", "key", "got"), [("/c.pem", "", '""'), ("", "/k.pem", '"/k.pem"')])
def test_client_certificate_and_key_go_together(cert, key, got):
    message = error_of(f'[mqtt]\ntls = true\ntls_cert_file = "{cert}"\ntls_key_file = "{key}"\n')
    assert message == (
        f"{SRC}: [mqtt].tls_key_file: tls_cert_file and tls_key_file must be set together "
        f'(or both "") (got {got})'
    )


def test_unknown_mqtt_key_lists_the_allowed_ones():
    message = error_of('[mqtt]\npassword = "secret"\n')
    assert message.startswith(f"{SRC}: [mqtt].password: unknown key; allowed keys: enabled, host,")
    assert "password_file" in message


# --- startup errors: files named in [mqtt] ------------------------------------------------------


def test_missing_password_file_is_a_clear_output_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(OutputError) as info:
        Connection.from_settings(MqttSettings(password_file=str(missing)))
    assert str(info.value) == f"[mqtt].password_file {missing} does not exist: check the path"


def test_empty_password_file(tmp_path):
    empty = tmp_path / "pw"
    empty.write_text("\n")
    with pytest.raises(OutputError) as info:
        Connection.from_settings(MqttSettings(password_file=str(empty)))
    assert str(info.value) == f"[mqtt].password_file {empty} is empty: write the password in it"


def test_password_is_the_first_line_without_newline(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cret pass\nignored\n")
    conn = Connection.from_settings(MqttSettings(username="u", password_file=str(pw)))
    assert conn.password == "s3cret pass"


def test_missing_ca_file(tmp_path):
    missing = tmp_path / "ca.crt"
    with pytest.raises(OutputError) as info:
        Connection.from_settings(MqttSettings(tls=True, tls_ca_file=str(missing)))
    assert str(info.value) == f"[mqtt].tls_ca_file {missing} does not exist: check the path"


def test_a_ca_file_that_is_not_pem(tmp_path):
    junk = tmp_path / "ca.crt"
    junk.write_text("not a certificate\n")
    conn = Connection.from_settings(MqttSettings(tls=True, tls_ca_file=str(junk)))
    with pytest.raises(OutputError, match=r"^cannot use the TLS files \(\[mqtt\]\.tls_ca_file"):
        conn.new_client()


def test_device_id_from_host_name():
    assert derive_device_id("raspberrypi") == "raspberrypi"
    assert derive_device_id("Piano Pi.local") == "Piano-Pi"
    assert derive_device_id("flügel") == "fl-gel"
    assert derive_device_id("...") == "piano"
    assert len(derive_device_id("x" * 100)) == 64


# --- the outbox ---------------------------------------------------------------------------------


def pending(n: int, queued_at: float = 1000.0, topic: str = "t"):
    return [(topic, lambda seq: json.dumps({"seq": seq}).encode(), queued_at) for _ in range(n)]


def test_outbox_numbers_in_order_and_keeps_the_counter_across_reopening(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path)
    assert box.add(pending(3)) == [1, 2, 3]
    rows = box.after(0, 10)
    assert [json.loads(r.payload)["seq"] for r in rows] == [1, 2, 3]
    assert [r.seq for r in rows] == [1, 2, 3]
    box.delete([rows[0].seq, rows[1].seq, rows[2].seq])
    assert len(box) == 0
    box.close()
    again = Outbox(path)
    assert again.add(pending(2)) == [4, 5]  # the counter survived, the rows did not come back
    assert len(again) == 2
    assert [r.seq for r in again.after(0, 10)] == [4, 5]


def test_outbox_after_pages_from_a_row_id(tmp_path):
    box = Outbox(tmp_path / "o.db")
    box.add(pending(5))
    first = box.after(0, 2)
    assert [r.seq for r in first] == [1, 2]
    assert [r.seq for r in box.after(first[-1].seq, 10)] == [3, 4, 5]


def test_outbox_drops_the_oldest_beyond_max_rows(tmp_path):
    box = Outbox(tmp_path / "o.db", max_rows=100)
    box.add(pending(60))
    box.add(pending(90))
    assert len(box) == 100
    assert box.dropped == 50
    seqs = [r.seq for r in box.after(0, 1000)]
    assert seqs == list(range(51, 151))


def test_outbox_drops_rows_older_than_max_age(tmp_path):
    now = [5000.0]
    box = Outbox(tmp_path / "o.db", max_age_s=100.0, clock=lambda: now[0])
    box.add(pending(3, queued_at=4850.0))  # 150 s old
    box.add(pending(2, queued_at=4950.0))  # 50 s old
    assert box.prune_old() == 3
    assert [r.seq for r in box.after(0, 10)] == [4, 5]
    assert box.dropped == 3


def test_outbox_on_a_full_disk_raises_sqlite_full_and_keeps_what_it_had(tmp_path):
    box = Outbox(tmp_path / "o.db")
    box.add(pending(5))
    # SQLite's page limit gives exactly the error a full disk gives (SQLITE_FULL).
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages}")
    big = [("t", lambda seq: b"x" * 5000, 1000.0)] * 50
    with pytest.raises(sqlite3.OperationalError) as info:
        box.add(big)
    assert is_disk_full(info.value)
    assert len(box) == 5
    assert box.seq == 5  # no number was used up
    assert [r.seq for r in box.after(0, 10)] == [1, 2, 3, 4, 5]


def test_outbox_write_stores_and_deletes_in_one_transaction(tmp_path):
    box = Outbox(tmp_path / "o.db")
    box.add(pending(3))
    changes = box._db.total_changes
    assert box.write(pending(2), [1, 2]) == [4, 5]
    assert box._db.total_changes - changes == 4  # 2 deleted + 2 inserted, nothing else
    assert [r.seq for r in box.after(0, 10)] == [3, 4, 5]
    assert len(box) == 3


def test_outbox_writes_the_counter_only_when_the_newest_row_goes(tmp_path):
    path = tmp_path / "o.db"
    box = Outbox(path)
    stored = "SELECT value FROM meta WHERE key = 'seq'"
    box.add(pending(3))
    box.write(pending(2), [1, 2, 3])
    assert box._db.execute(stored).fetchone() == (0,)  # row 5 holds the counter
    box.close()
    box = Outbox(path)
    assert box.seq == 5
    box.delete([4, 5])
    assert box._db.execute(stored).fetchone() == (5,)  # no row holds it any more
    box.close()
    assert Outbox(path).add(pending(1)) == [6]


def test_outbox_keeps_the_counter_when_pruning_empties_it(tmp_path):
    path = tmp_path / "o.db"
    now = [5000.0]
    box = Outbox(path, max_age_s=100.0, clock=lambda: now[0])
    box.add(pending(4, queued_at=4000.0))
    assert box.prune_old() == 4
    box.close()
    assert Outbox(path).add(pending(1)) == [5]


def test_outbox_of_the_first_version_is_migrated_with_its_rows(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL,
                topic TEXT NOT NULL, payload BLOB NOT NULL, queued_at REAL NOT NULL);
            CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
            INSERT INTO meta VALUES ('seq', 12);
            INSERT INTO outbox (seq, topic, payload, queued_at)
                VALUES (11, 't', x'31', 1.0), (12, 't', x'32', 2.0);
            """
        )
    box = Outbox(path)
    assert [(r.seq, r.payload) for r in box.after(0, 10)] == [(11, b"1"), (12, b"2")]
    assert box.add(pending(1)) == [13]
    columns = [row[1] for row in box._db.execute("PRAGMA table_info(outbox)")]
    assert columns == ["seq", "topic", "payload", "queued_at"]


def test_unwritable_state_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match=r"set \[mqtt\]\.state_dir"):
        Outbox(blocker / "sub" / "outbox.sqlite3")


def test_state_dir_order(tmp_path):
    assert default_state_dir("/srv/x") == Path("/srv/x")
    env = {"STATE_DIRECTORY": "/var/lib/notesight:/var/lib/other", "HOME": str(tmp_path)}
    assert default_state_dir("", env) == Path("/var/lib/notesight")
    fallback = default_state_dir("", {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "s")})
    assert fallback in (Path("/var/lib/notesight"), tmp_path / "s" / "notesight")


# --- sessions -----------------------------------------------------------------------------------


def on(t: float, midi: int = 60, velocity: int = 80) -> NoteOn:
    return NoteOn(midi, "X", 261.6, 0.0, velocity, t, t + 0.01)


def test_a_session_starts_at_the_first_note_and_ends_after_the_gap():
    tracker = SessionTracker(gap_s=5.0)
    assert tracker.feed(on(1.0, 60, 40)) == [SessionStart(1.0)]
    assert tracker.feed(on(2.0, 72, 100)) == []
    assert tracker.feed(Level(-20.0, -60.0, 2.1)) == []
    assert tracker.feed(Level(-12.5, -60.0, 2.2)) == []
    assert tracker.feed(NoteOff(72, "C5", 4.0, 4.01)) == []  # sounded until 4.0
    assert tracker.tick(8.9) == []
    (end,) = tracker.tick(9.0)
    assert isinstance(end, SessionEnd)
    assert (end.start_s, end.end_s, end.notes) == (1.0, 4.0, 2)
    assert (end.lowest_name, end.highest_name, end.distinct_keys) == ("C4", "C5", 2)
    assert (end.mean_velocity, end.max_velocity, end.peak_dbfs) == (70.0, 100, -12.5)
    assert not tracker.playing
    assert tracker.tick(20.0) == []
    assert tracker.feed(on(30.0)) == [SessionStart(30.0)]
    (second,) = tracker.flush()
    assert (second.start_s, second.notes, second.peak_dbfs) == (30.0, 1, -math.inf)


def test_a_note_after_a_long_pause_without_ticks_starts_a_new_session():
    tracker = SessionTracker(gap_s=5.0)
    tracker.feed(on(1.0))
    events = tracker.feed(on(10.0))
    assert [type(e) for e in events] == [SessionEnd, SessionStart]
    assert tracker.flush()[0].notes == 1


# --- payloads against the schemas -----------------------------------------------------------


def envelope(kind: str, **body) -> dict:
    """A payload as the output sends it: telemetry (level, health) carries no seq."""
    numbered = {} if kind in ("level", "health") else {"seq": 7}
    return {
        "schema": schema_id(kind),
        "device_id": "piano-1",
        "boot_id": "0f5b7a4e-8d6b-4f55-9f73-6c8f2e1d2a10",
        **numbered,
        "event_id": "6c1e2a44-1d2b-4c9a-8a51-3e0f3b2c9d11",
        "t": iso_utc(1_700_000_000.5),
        "clock_synced": True,
        "stream_s": 1.25,
        **body,
    }


@pytest.mark.parametrize(
    "event",
    [
        NoteOn(60, "C4", 261.63, -3.2, 80, 1.2, 1.21),
        NoteOff(60, "C4", 1.9, 1.91),
        Chord("Cmaj", (60, 64, 67), 2.0),
        Chord("", (), 3.0),
        Level(-23.4, -61.0, 2.5),
        Alert("doorbell", 0.91, 4.0, True),
        Alert("doorbell", 0.2, 6.0, False),
    ],
)
def test_every_event_body_fits_its_schema(event):
    kind, body, stream_s = event_body(event)
    validate(envelope(kind, **body) | {"stream_s": stream_s})


def test_the_schemas_catch_what_is_wrong():
    from jsonschema import ValidationError

    good = envelope("note", **event_body(NoteOn(60, "C4", 261.6, 1.0, 80, 1.0, 1.0))[1])
    validate(good)
    for broken in (
        {k: v for k, v in good.items() if k != "seq"},
        good | {"seq": 0},
        good | {"t": "2024-01-01 12:00:00"},
        good | {"surprise": 1},
        good | {"type": "note_off"},  # a note_off needs offset_s
        good | {"velocity": 128},
        envelope("level", dbfs=-20.0, floor_dbfs=-60.0) | {"seq": 7},  # telemetry: no seq
    ):
        with pytest.raises(ValidationError):
            validate(broken)


def test_iso_utc():
    assert iso_utc(0.0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1_700_000_000.9996) == "2023-11-14T22:13:20.999Z"


def test_discovery_points_at_our_topics():
    configs = dict(discovery_messages("homeassistant", "notesight/p1", "p1", "1.0"))
    assert set(configs) == {
        "homeassistant/sensor/notesight_p1/note/config",
        "homeassistant/sensor/notesight_p1/chord/config",
        "homeassistant/sensor/notesight_p1/level/config",
        "homeassistant/event/notesight_p1/alert/config",
        "homeassistant/binary_sensor/notesight_p1/playing/config",
    }
    for config in configs.values():
        assert config["availability_topic"] == "notesight/p1/status"
        assert config["state_topic"].startswith("notesight/p1/")
        assert config["device"]["identifiers"] == ["notesight_p1"]
    assert len({c["unique_id"] for c in configs.values()}) == 5
    alert = configs["homeassistant/event/notesight_p1/alert/config"]
    assert "doorbell" in alert["event_types"] and "stopped" in alert["event_types"]


# --- listen: gaps and duplicates ----------------------------------------------------------------


def test_seq_tracker_reports_gaps_duplicates_and_late_arrivals():
    seqs = SeqTracker()
    assert seqs.observe("p", 10, "a") == []
    assert seqs.observe("p", 11, "b") == []
    assert seqs.observe("p", 15, "c") == ["GAP: 3 events missing (#12-#14)"]
    assert seqs.observe("p", 15, "c") == ["duplicate of #15 (already received)"]
    assert seqs.observe("p", 13, "d") == ["late: fills an earlier gap"]
    assert seqs.observe("p", 17, "e") == ["GAP: 1 events missing (#16)"]
    assert seqs.observe("q", 1, "f") == []  # devices are counted apart
    assert (seqs.events, seqs.duplicates, seqs.missing) == (6, 1, 3)


def test_listener_prints_one_line_per_message():
    out = io.StringIO()
    printer = Listener(out)
    payload = envelope("note", **event_body(NoteOn(69, "A4", 440.0, 1.5, 90, 1.0, 1.0))[1])
    assert printer.message("notesight/piano-1/status", b"online", True) is False
    assert printer.message("notesight/piano-1/note", json.dumps(payload).encode(), False)
    later = payload | {"seq": 9, "event_id": "x"}
    assert printer.message("notesight/piano-1/note", json.dumps(later).encode(), False)
    lines = out.getvalue().splitlines()
    assert lines[0] == "piano-1 status online (retained)"
    assert lines[1] == "2023-11-14T22:13:20.500Z piano-1 #7 note_on  A4   vel  90  +1.5 cents"
    assert lines[2] == "piano-1 GAP: 1 events missing (#8)"
    assert lines[3].startswith("2023-11-14T22:13:20.500Z piano-1 #9 note_on")
    assert printer.summary() == "2 events, 0 duplicates, 1 missing"


def test_listener_shows_telemetry_without_counting_it_as_a_gap():
    out = io.StringIO()
    printer = Listener(out)
    level = envelope("level", **event_body(Level(-23.4, -61.0, 2.5))[1])
    assert "seq" not in level
    assert printer.message("notesight/piano-1/level", json.dumps(level).encode(), False) is False
    assert out.getvalue() == "2023-11-14T22:13:20.500Z piano-1 level  -23.4 dBFS (floor -61.0)\n"
    assert printer.summary() == "0 events, 0 duplicates, 0 missing"
