"""The whole daemon (`notesight run` in a subprocess, FluidSynth piano audio) publishing to a
real mosquitto: a file run publishes every event and waits for the broker before exiting; a
daemon killed with SIGKILL while the broker is down loses nothing; the last will says offline;
`notesight listen` shows the events and the gaps."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mosquitto import Broker, Recorder, free_port, mosquitto_available, wait_for
from mqtt_schemas import validate

from notesight.device.config import parse_settings
from notesight.device.mqtt import MqttOutput, schema_id
from notesight.device.mqtt_listen import listen
from notesight.device.synth import Note
from notesight.dsp.events import NoteOff, NoteOn

pytestmark = pytest.mark.skipif(
    not mosquitto_available(), reason="mosquitto not installed: run ./install.sh"
)

DEVICE = "daemonpiano"
TOPICS = [f"notesight/{DEVICE}/#"]
RATE = 44100
SCALE = (60, 62, 64, 65, 67, 69, 71, 72)


@pytest.fixture(scope="module")
def short_wav(piano, tmp_path_factory) -> Path:
    notes = [Note(0.2 + 0.35 * i, 0.3, midi, 90) for i, midi in enumerate(SCALE)]
    path = tmp_path_factory.mktemp("audio") / "scale.wav"
    sf.write(path, piano(tuple(notes)), RATE)
    return path


@pytest.fixture(scope="module")
def long_wav(piano, tmp_path_factory) -> Path:
    """Notes every 0.25 s for 8 s: a daemon in real time is still playing when killed."""
    notes = [Note(0.1 + 0.25 * i, 0.2, SCALE[i % 8] + 12 * (i % 2), 85) for i in range(32)]
    audio = piano(tuple(notes))
    path = tmp_path_factory.mktemp("audio") / "long.wav"
    sf.write(path, np.asarray(audio, dtype=np.float32), RATE)
    return path


def write_config(folder: Path, port: int, **mqtt: object) -> Path:
    values = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": port,
        "device_id": DEVICE,
        "state_dir": str(folder / "state"),
        "drain_timeout_s": 60.0,
        "homeassistant": False,
    } | mqtt
    lines = ["[mqtt]"] + [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path = folder / "notesight.toml"
    path.write_text("\n".join(lines) + "\n")
    parse_settings(path.read_text(), str(path))  # the test's own config must be valid
    return path


def notesight(*args: str) -> list[str]:
    return [sys.executable, "-m", "notesight.device.cli", *args]


def db_path(config: Path) -> Path:
    return config.parent / "state" / "outbox.sqlite3"


def read_db(config: Path, sql: str) -> list[tuple]:
    """Read the daemon's outbox from outside, read-only, while it may be running."""
    path = db_path(config)
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # created but no tables yet
        return []


def stored_seq(config: Path) -> int:
    """The last seq handed out: the newest row holds it, else meta (device/outbox.py)."""
    rows = read_db(
        config,
        "SELECT MAX((SELECT value FROM meta WHERE key = 'seq'), "
        "COALESCE((SELECT MAX(seq) FROM outbox), 0))",
    )
    return rows[0][0] if rows else 0


def numbered(rec: Recorder) -> list[dict]:
    """The events received; telemetry (level, health) is live, not stored, not numbered."""
    return [p for p in rec.events() if "seq" in p]


def assert_complete(events: list[dict], upto: int) -> None:
    by_seq: dict[int, set[str]] = {}
    for payload in events:
        validate(payload)
        if "seq" in payload:
            by_seq.setdefault(payload["seq"], set()).add(payload["event_id"])
    assert set(by_seq) == set(range(1, upto + 1)), sorted(set(range(1, upto + 1)) - set(by_seq))
    assert all(len(ids) == 1 for ids in by_seq.values())


def test_a_fast_file_run_publishes_every_event_and_waits_for_the_broker(short_wav, tmp_path, piano):
    broker = Broker(tmp_path / "broker").start()
    try:
        config = write_config(tmp_path, broker.port)
        with Recorder(broker, TOPICS) as rec:
            done = subprocess.run(
                notesight(
                    "run", "--input", str(short_wav), "--fast", "--jsonl", "--config", str(config)
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            # it exited only once the broker had everything: nothing left in the outbox
            assert read_db(config, "SELECT COUNT(*) FROM outbox") == [(0,)]
            upto = stored_seq(config)
            wait_for(lambda: len(numbered(rec)) >= upto, f"{upto} events")
            assert_complete(rec.events(), upto)
        logged = [json.loads(line) for line in done.stdout.splitlines()]
        notes = [(e["event"], e["midi"]) for e in logged if e["event"] in ("note_on", "note_off")]
        published = [
            (p["type"], p["midi"]) for p in rec.events() if p["schema"] == schema_id("note")
        ]
        assert published == notes
        assert [m for e, m in notes if e == "note_on"] == list(SCALE)
        summary = [p for p in rec.events() if p.get("type") == "session_end"]
        assert len(summary) == 1 and summary[0]["notes"] == len(SCALE)
        assert (summary[0]["lowest"], summary[0]["highest"]) == ("C4", "C5")
        info = json.loads(rec.on(f"{DEVICE}/info")[0].payload)
        validate(info)
        assert (info["mic"], info["sample_rate"]) == ("file scale.wav", RATE)
    finally:
        broker.kill()


def test_daemon_killed_while_the_broker_is_down_loses_nothing(short_wav, long_wav, tmp_path):
    broker = Broker(tmp_path / "broker").start()
    with Recorder(broker, TOPICS):
        pass  # a persistent session: the broker keeps what is published for the recorder
    broker.stop()  # saved with the session
    config = write_config(tmp_path, broker.port)

    # 1. The daemon runs (real time) with no broker: events pile up in the outbox. SIGKILL.
    daemon = subprocess.Popen(
        notesight("run", "--input", str(long_wav), "--config", str(config)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_for(lambda: len(read_db(config, "SELECT seq FROM outbox")) >= 10, "queued events")
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    stderr = daemon.stderr.read().decode() if daemon.stderr else ""
    assert "refused the connection: is the broker running?" in stderr
    queued = read_db(config, "SELECT seq, payload FROM outbox ORDER BY seq")
    killed_ids = {json.loads(payload)["event_id"] for _, payload in queued}
    killed_seq = stored_seq(config)
    assert [seq for seq, _ in queued] == list(range(1, killed_seq + 1))

    # 2. The daemon comes back first (a short file, then it waits for the broker), then the broker.
    again = subprocess.Popen(
        notesight("run", "--input", str(short_wav), "--fast", "--config", str(config)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_for(lambda: stored_seq(config) > killed_seq, "the second run's events")
    broker.start()
    try:
        assert again.wait(timeout=120) == 0, again.stderr.read().decode() if again.stderr else ""
        assert read_db(config, "SELECT COUNT(*) FROM outbox") == [(0,)]
        upto = stored_seq(config)
        with Recorder(broker, TOPICS) as rec:
            wait_for(lambda: len({p["seq"] for p in numbered(rec)}) >= upto, f"{upto} events")
            assert_complete(rec.events(), upto)
            assert killed_ids <= {p["event_id"] for p in rec.events()}
            boots = {p["boot_id"] for p in rec.events()}
            assert len(boots) == 2
    finally:
        broker.kill()


def start_playing(wav: Path, config: Path, rec: Recorder) -> subprocess.Popen[str]:
    """`notesight run` on `wav` in real time, returned once its first note reached the broker."""
    daemon = subprocess.Popen(
        notesight("run", "--input", str(wav), "--config", str(config)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: any(p["schema"] == schema_id("note") for p in rec.events()),
             "a note from the running daemon")  # fmt: skip
    return daemon


def test_the_last_will_says_offline_when_the_daemon_dies(long_wav, tmp_path):
    broker = Broker(tmp_path / "broker").start()
    try:
        config = write_config(tmp_path, broker.port)
        with Recorder(broker, TOPICS) as rec:
            daemon = start_playing(long_wav, config, rec)
            assert [m.payload for m in rec.on("/status")] == [b"online"]
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            wait_for(lambda: [m.payload for m in rec.on("/status")] == [b"online", b"offline"],
                     "the last will")  # fmt: skip
    finally:
        broker.kill()


def test_an_unreadable_password_file_stops_the_run_with_one_line(short_wav, tmp_path):
    missing = tmp_path / "no-password"
    config = write_config(tmp_path, free_port(), username="piano", password_file=str(missing))
    done = subprocess.run(
        notesight("run", "--input", str(short_wav), "--fast", "--config", str(config)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"notesight: [mqtt].password_file {missing} does not exist: check the path"
    )
    assert "Traceback" not in done.stderr


# --- listen ------------------------------------------------------------------------------------


def test_listen_prints_events_and_shows_the_gap_of_dropped_events(tmp_path):
    broker = Broker(tmp_path / "broker").start()
    try:
        config = write_config(tmp_path, broker.port, drain_timeout_s=30.0)
        settings = parse_settings(config.read_text(), str(config))
        out = io.StringIO()
        stop = threading.Event()
        listener = threading.Thread(
            target=listen, args=(settings, out), kwargs={"stop": stop}, daemon=True
        )
        listener.start()
        wait_for(lambda: "# listening to" in out.getvalue(), "the listener")

        def play(settings, notes: int, start_s: float) -> MqttOutput:
            output = MqttOutput(settings.mqtt, drain_on_close=True)
            for i in range(notes):
                t = start_s + i * 0.1
                output.handle(NoteOn(60 + i % 12, "C4", 261.6, 0.0, 70, t, t + 0.01))
                output.handle(NoteOff(60 + i % 12, "C4", t + 0.05, t + 0.06))
            output.close()
            return output

        play(settings, 2, 0.0)  # seq 1-6: session start, 2 notes on and off, session end
        wait_for(lambda: "#6 " in out.getvalue(), "the first events")
        # A broker that cannot be reached: 200 events for an outbox of 100: the oldest go.
        away = write_config(tmp_path, free_port(), outbox_max_rows=100, drain_timeout_s=0.0)
        play(parse_settings(away.read_text(), str(away)), 100, 10.0)
        play(settings, 1, 100.0)
        upto = stored_seq(config)
        wait_for(lambda: f"#{upto} " in out.getvalue(), "the last event")
        stop.set()
        listener.join()
    finally:
        broker.kill()
    text = out.getvalue()
    lines = text.splitlines()
    assert f"# listening to notesight/{DEVICE}/# on 127.0.0.1:{broker.port}" in lines
    assert f"{DEVICE} status online (retained)" in lines or f"{DEVICE} status online" in lines
    gap = [line for line in lines if "GAP" in line]
    dropped = 1 + 100 * 2 + 1 - 100  # 202 events (with session start and end) for 100 rows
    assert gap == [f"{DEVICE} GAP: {dropped} events missing (#7-#{6 + dropped})"]
    assert lines[-1] == f"# {upto - dropped} events, 0 duplicates, {dropped} missing"
    assert any(f" {DEVICE} #1 session started" in line for line in lines)
    assert any(f" {DEVICE} #2 note_on  C4   vel  70" in line for line in lines)


def test_listen_command_in_a_subprocess(tmp_path):
    broker = Broker(tmp_path / "broker").start()
    try:
        config = write_config(tmp_path, broker.port)
        env = os.environ | {"PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            notesight("listen", "--config", str(config), "--count", "3"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith(f"# listening to notesight/{DEVICE}/#"), first
        settings = parse_settings(config.read_text(), str(config))
        output = MqttOutput(settings.mqtt, drain_on_close=True)
        output.handle(NoteOn(69, "A4", 440.0, 0.0, 64, 0.5, 0.51))
        output.handle(NoteOff(69, "A4", 0.9, 0.91))
        output.close()
        rest, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        broker.kill()
    lines = rest.splitlines()
    assert any(line.endswith(f"{DEVICE} #2 note_on  A4   vel  64  +0.0 cents") for line in lines)
    assert any(line.endswith(f"{DEVICE} #3 note_off A4") for line in lines)
    assert lines[-1] == "# 3 events, 0 duplicates, 0 missing"


def test_listen_with_a_wrong_port_is_one_line(tmp_path):
    config = write_config(tmp_path, free_port())
    done = subprocess.run(
        notesight("listen", "--config", str(config)), capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert done.stderr.startswith("notesight: the MQTT broker at 127.0.0.1:")
    assert "refused the connection: is the broker running?" in done.stderr
    assert "Traceback" not in done.stderr
