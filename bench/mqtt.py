"""MQTT benchmark: events per second through the MQTT output (SQLite outbox on, QoS 1) to a
local mosquitto, and the latency from `handle()` (the event leaving the pipeline) to the
broker's PUBACK.

    .venv/bin/python bench/mqtt.py [--events 20000] [--rate 1000] [--seconds 5] [--out bench/out]

Three kinds of figures, each with max_in_flight 1, 10 and 100:

* burst: `--events` note events handed over as fast as the caller can; events/s is the number
  of events divided by the time from the first `handle()` to the last PUBACK (the outbox write,
  the publish and the acknowledgement included). Latency here includes the time spent queued
  behind the burst.
* steady: `--rate` events per second for `--seconds`, the way a player produces them; the
  latency is what one event takes when nothing is queued ahead of it.
* handle(): the time the audio thread spends in one `handle()` call (it only queues).

mosquitto (the Debian package) is started on a free port of 127.0.0.1 in a temporary folder;
the outbox lives in that folder too. Results are also written to <out>/mqtt.json.
"""

from __future__ import annotations

import argparse
import getpass
import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from notesight.device.config import MqttSettings
from notesight.device.mqtt import MqttOutput
from notesight.dsp.events import NoteOff, NoteOn

TARGET_EVENTS_PER_S = 2000.0


def start_broker(folder: Path) -> tuple[subprocess.Popen, int]:
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
        "max_inflight_messages 0\nmax_queued_messages 0\n"
    )
    proc = subprocess.Popen([mosquitto, "-c", str(conf)], stderr=subprocess.DEVNULL)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise SystemExit(f"mosquitto did not start on port {port}")


def note_events(count: int) -> list:
    events = []
    for i in range(count // 2):
        t = i * 0.05
        midi = 48 + i % 37
        events.append(NoteOn(midi, "C4", 261.6, 0.0, 80, t, t + 0.01))
        events.append(NoteOff(midi, "C4", t + 0.04, t + 0.045))
    return events


def make_output(folder: Path, port: int, in_flight: int, name: str) -> MqttOutput:
    settings = MqttSettings(
        enabled=True,
        host="127.0.0.1",
        port=port,
        device_id=f"bench-{name}",
        state_dir=str(folder / name),
        max_in_flight=in_flight,
        homeassistant=False,
        health_interval_s=3600.0,
        session_gap_s=3600.0,
        drain_timeout_s=600.0,
    )
    output = MqttOutput(settings, record_latency=True, drain_on_close=True)
    end = time.monotonic() + 10
    while not output.status.snapshot().mqtt_connected:
        if time.monotonic() > end:
            raise SystemExit("the MQTT output did not connect")
        time.sleep(0.01)
    return output


def wait_acked(output: MqttOutput, count: int) -> float:
    while output.counters.acked < count:
        time.sleep(0.0005)
    return time.perf_counter()


def burst(folder: Path, port: int, in_flight: int, count: int) -> dict:
    output = make_output(folder, port, in_flight, f"burst{in_flight}")
    events = note_events(count)
    handle_s = np.empty(len(events))
    start = time.perf_counter()
    for i, event in enumerate(events):
        t0 = time.perf_counter()
        output.handle(event)
        handle_s[i] = time.perf_counter() - t0
    # +1: the session_start the first note-on opened
    end = wait_acked(output, len(events) + 1)
    latencies = np.array(output.ack_latencies or [])
    output.close()
    return {
        "mode": "burst",
        "max_in_flight": in_flight,
        "events": len(events) + 1,
        "events_per_s": (len(events) + 1) / (end - start),
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p95_ms": 1000 * float(np.percentile(latencies, 95)),
        "handle_p50_us": 1e6 * float(np.percentile(handle_s, 50)),
        "handle_p99_us": 1e6 * float(np.percentile(handle_s, 99)),
    }


def steady(folder: Path, port: int, in_flight: int, rate: float, seconds: float) -> dict:
    output = make_output(folder, port, in_flight, f"steady{in_flight}")
    events = note_events(int(rate * seconds))
    start = time.perf_counter()
    for i, event in enumerate(events):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        output.handle(event)
    end = wait_acked(output, len(events) + 1)
    latencies = np.array(output.ack_latencies or [])
    output.close()
    return {
        "mode": f"steady {rate:g}/s",
        "max_in_flight": in_flight,
        "events": len(events) + 1,
        "events_per_s": (len(events) + 1) / (end - start),
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p95_ms": 1000 * float(np.percentile(latencies, 95)),
        "handle_p50_us": float("nan"),
        "handle_p99_us": float("nan"),
    }


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'mode':<16} {'in flight':>9} {'events':>7} {'events/s':>9} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'handle p50 us':>14} {'handle p99 us':>14}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['mode']:<16} {r['max_in_flight']:>9d} {r['events']:>7d} "
            f"{r['events_per_s']:>9.0f} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} "
            f"{r['handle_p50_us']:>14.1f} {r['handle_p99_us']:>14.1f}"
        )
    best = max(r["events_per_s"] for r in rows if r["mode"] == "burst")
    verdict = "met" if best >= TARGET_EVENTS_PER_S else "NOT met"
    print(f"\ntarget >= {TARGET_EVENTS_PER_S:.0f} events/s sustained (burst): {verdict} "
          f"(best {best:.0f}/s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="events per burst run")
    parser.add_argument("--rate", type=float, default=1000.0, help="steady events per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of a steady run")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="notesight-bench-mqtt-") as tmp:
        folder = Path(tmp)
        broker, port = start_broker(folder)
        try:
            for in_flight in (1, 10, 100):
                rows.append(burst(folder, port, in_flight, args.events))
            for in_flight in (1, 10, 100):
                rows.append(steady(folder, port, in_flight, args.rate, args.seconds))
        finally:
            broker.kill()
            broker.wait()
    print_table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mqtt.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
