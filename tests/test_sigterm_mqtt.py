"""SIGTERM, the way systemd stops the service, with MQTT on: the daemon says `offline` itself
(a clean disconnect sends no last will), exits 0, and keeps in the outbox whatever the broker
has not acknowledged, to send after the next start."""

from __future__ import annotations

import signal
import sqlite3
import subprocess

import pytest
from mosquitto import Broker, Recorder, free_port, mosquitto_available, wait_for
from test_mqtt_daemon import TOPICS, db_path, long_wav, notesight, start_playing, write_config

__all__ = ["long_wav"]  # the fixture, shared with test_mqtt_daemon

pytestmark = pytest.mark.skipif(
    not mosquitto_available(), reason="mosquitto not installed: run ./install.sh"
)


def test_sigterm_publishes_offline_and_exits_cleanly(long_wav, tmp_path):
    broker = Broker(tmp_path / "broker").start()
    try:
        config = write_config(tmp_path, broker.port)
        with Recorder(broker, TOPICS) as rec:
            daemon = start_playing(long_wav, config, rec)
            daemon.send_signal(signal.SIGTERM)
            _, err = daemon.communicate(timeout=60)
            assert daemon.returncode == 0, err
            assert "Traceback" not in err
            wait_for(
                lambda: [m.payload for m in rec.on("/status")] == [b"online", b"offline"],
                "offline from the stopping daemon",
            )
    finally:
        broker.kill()


def test_sigterm_with_the_broker_down_keeps_the_outbox(long_wav, tmp_path):
    config = write_config(tmp_path, free_port(), drain_timeout_s=1.0)  # nobody listens there
    daemon = subprocess.Popen(
        notesight("run", "--input", str(long_wav), "--config", str(config)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def queued() -> int:
        if not db_path(config).exists():
            return 0
        with sqlite3.connect(db_path(config)) as db:
            try:
                return db.execute("select count(*) from outbox").fetchone()[0]
            except sqlite3.OperationalError:  # created but not set up yet
                return 0

    try:
        wait_for(lambda: queued() >= 3, "events queued in the outbox")
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
    assert queued() >= 3
