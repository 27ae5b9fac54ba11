"""SIGHUP with a real mosquitto: a reload keeps the outputs whose settings did not change, so a
colour change does not take the MQTT connection down (no offline/online on the status topic,
same boot, the retained info names the new config), while a new [mqtt].topic_prefix closes the
old connection and publishes under the new prefix."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mosquitto import Broker, Recorder, mosquitto_available, wait_for
from service_fakes import kill_daemon, notified_daemon, received, reload_daemon, stop_daemon

from notesight.device.config import parse_settings

pytestmark = pytest.mark.skipif(
    not mosquitto_available(), reason="mosquitto not installed: run ./install.sh"
)

DEVICE = "reloadpiano"
RATE = 48000


def write_config(path: Path, port: int, colour: str, **mqtt: object) -> str:
    values = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": port,
        "device_id": DEVICE,
        "state_dir": str(path.parent / "state"),
        "homeassistant": False,
    } | mqtt
    lines = [f'[leds]\ncolour = "{colour}"', "[mqtt]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    text = "\n".join(lines) + "\n"
    parse_settings(text, str(path))  # the test's own config must be valid
    path.write_text(text)
    return text


def run_and_reload(
    tmp_path: Path, broker: Broker, rec: Recorder, new_config: Callable[[], None]
) -> tuple[subprocess.Popen, str, socket.socket]:
    """The real command in real time on a long silent file, with simulated LEDs, OLED, motor;
    once it is online, `new_config()` rewrites the config and SIGHUP applies it."""
    wav = tmp_path / "silence.wav"
    sf.write(wav, np.zeros(60 * RATE, dtype=np.float32), RATE)
    config = tmp_path / "config.toml"
    args = ["--config", str(config), "run", "--input", str(wav)]
    proc, sock = notified_daemon(tmp_path, [*args, "--simulate", str(tmp_path / "sim")])
    try:
        received(sock, "READY=1")
        wait_for(lambda: rec.on(f"notesight/{DEVICE}/info"), "the daemon's first info")
        new_config()
        reload_daemon(proc, sock)
    except BaseException:
        kill_daemon(proc, sock)
        raise
    return proc, str(config), sock


def statuses(rec: Recorder, prefix: str) -> list[str]:
    return [m.payload.decode() for m in rec.on(f"{prefix}/{DEVICE}/status")]


def infos(rec: Recorder, prefix: str) -> list[dict]:
    return [m.json() for m in rec.on(f"{prefix}/{DEVICE}/info")]


def levels_after(rec: Recorder, prefix: str, boot_id: str, stream_s: float) -> list[dict]:
    return [
        m.json()
        for m in rec.on(f"{prefix}/{DEVICE}/level")
        if m.json()["boot_id"] == boot_id and m.json()["stream_s"] > stream_s
    ]


def test_a_colour_change_keeps_the_mqtt_connection(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker").start()
    config = tmp_path / "config.toml"
    try:
        write_config(config, broker.port, "#ff0000")
        with Recorder(broker, ["notesight/#"]) as rec:
            proc, _, sock = run_and_reload(
                tmp_path, broker, rec, lambda: write_config(config, broker.port, "#00ff00")
            )
            # The kept output republishes its retained info with the new config's hash.
            wait_for(lambda: len(infos(rec, "notesight")) == 2, "the info of the new config")
            first, second = infos(rec, "notesight")
            # And it goes on publishing, on the same connection.
            wait_for(
                lambda: levels_after(rec, "notesight", first["boot_id"], 0.0),
                "a level after the reload",
            )
            err = stop_daemon(proc, sock)
            assert statuses(rec, "notesight") == ["online", "offline"]  # no offline/online
    finally:
        broker.stop()
    assert first["boot_id"] == second["boot_id"]  # the same output, not a new one
    assert first["config_hash"] != second["config_hash"]
    lines = err.splitlines()
    assert "<6>notesight.device.run: outputs kept open: mqtt, oled, motor; rebuilt: leds" in lines
    assert f"<6>notesight.device.run: config reloaded from {config}" in lines
    connects = [line for line in lines if "MQTT: connected to" in line]
    assert len(connects) == 1, err


def test_a_new_topic_prefix_reconnects_under_it(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker").start()
    config = tmp_path / "config.toml"
    try:
        write_config(config, broker.port, "#ff0000")
        with Recorder(broker, ["notesight/#", "home/#"]) as rec:
            proc, _, sock = run_and_reload(
                tmp_path,
                broker,
                rec,
                lambda: write_config(config, broker.port, "#ff0000", topic_prefix="home/piano"),
            )
            wait_for(lambda: infos(rec, "home/piano"), "the info under the new prefix")
            (new_info,) = infos(rec, "home/piano")
            wait_for(
                lambda: levels_after(rec, "home/piano", new_info["boot_id"], 0.0),
                "a level under the new prefix",
            )
            old_statuses = statuses(rec, "notesight")
            err = stop_daemon(proc, sock)
            new_statuses = statuses(rec, "home/piano")
    finally:
        broker.stop()
    # The old connection said goodbye before the new one came up under the new prefix.
    assert old_statuses == ["online", "offline"]
    assert new_statuses == ["online", "offline"]
    (old_info,) = infos(rec, "notesight")
    assert new_info["boot_id"] != old_info["boot_id"]  # a new MQTT output
    lines = err.splitlines()
    assert "<6>notesight.device.run: outputs kept open: leds, oled, motor; rebuilt: mqtt" in lines
