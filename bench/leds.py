"""LED strip benchmark: how long from a note-on event to its frame handed to the backend, and
the CPU one frame costs, for a 176-LED strip (88 keys at 2 LEDs each).

    .venv/bin/python bench/leds.py [--notes 5000] [--leds 176]

Prints a table and writes bench/out/leds.json. The target (issue 4): note-on to frame handed
to the backend p99 <= 5 ms. Between note-ons the strip is kept busy as in playing: ticks every
5.8 ms of stream time with fades of the last 8 notes and a level event every 50 ms.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

import numpy as np

from notesight.device.config import LedSettings
from notesight.device.led_backends import (
    DdpBackend,
    SpiWs2812Backend,
    Ws2812SpiEncoder,
    reorder,
)
from notesight.device.leds import FrameRenderer, LedStrip
from notesight.dsp.events import Level, NoteOff, NoteOn

BLOCK_S = 256 / 44100
OUT = Path(__file__).resolve().parent / "out"


class TimedBackend:
    """Wraps a backend; records when each frame was handed over (perf_counter_ns)."""

    def __init__(self, inner=None) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "none")
        self.keepalive_s = getattr(inner, "keepalive_s", None)
        self.handed: list[int] = []

    def show(self, frame: np.ndarray, t: float) -> None:
        self.handed.append(time.perf_counter_ns())
        if self.inner is not None:
            self.inner.show(frame, t)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


class NullSpi:
    """An SPI device that takes the bytes and drops them (no SPI on the build machine)."""

    max_speed_hz = 0
    mode = 0

    def writebytes2(self, data) -> None:
        bytes(np.asarray(data, np.uint8))

    def close(self) -> None:
        pass


def note_on_latency(settings: LedSettings, backend, notes: int, seed: int = 0) -> np.ndarray:
    """ms from calling handle(NoteOn) to the frame being handed to the backend."""
    rng = np.random.default_rng(seed)
    timed = TimedBackend(backend)
    strip = LedStrip(settings, timed)
    t = 0.0
    latencies = []
    sounding: list[int] = []
    for _ in range(notes):
        for _ in range(int(rng.integers(5, 30))):  # 30-170 ms of playing between notes
            t += BLOCK_S
            if rng.random() < BLOCK_S / 0.05:
                strip.handle(Level(float(rng.uniform(-40, -10)), -80.0, t))
            strip.tick(t)
        midi = int(rng.integers(21, 109))
        while midi in sounding:  # re-striking a key lit at full changes no LED: no frame
            midi = int(rng.integers(21, 109))
        if len(sounding) >= 8:
            old = sounding.pop(0)
            strip.handle(NoteOff(old, "", t, t))
        sounding.append(midi)
        before = len(timed.handed)
        start = time.perf_counter_ns()
        strip.handle(NoteOn(midi, "", 440.0, 0.0, int(rng.integers(20, 127)), t - 0.02, t))
        if len(timed.handed) != before + 1:
            raise AssertionError("a note-on must hand a frame over at once")
        latencies.append((timed.handed[-1] - start) / 1e6)
    strip.close()
    return np.array(latencies)


def render_cpu(settings: LedSettings, frames: int, lit_keys: int) -> tuple[float, float]:
    """CPU (process time) per rendered frame in us, mean; and wall p99 in us."""
    renderer = FrameRenderer(settings)
    for i in range(lit_keys):
        renderer.note_on(NoteOn(21 + i * 7 % 88, "", 440.0, 0.0, 90, 0.0, 0.0))
    renderer.level(Level(-20.0, -80.0, 0.01))
    walls = []
    cpu_start = time.process_time()
    for i in range(frames):
        start = time.perf_counter_ns()
        renderer.render(0.02 + i * BLOCK_S)
        walls.append((time.perf_counter_ns() - start) / 1e3)
    cpu_us = (time.process_time() - cpu_start) / frames * 1e6
    return cpu_us, float(np.percentile(walls, 99))


def encode_cpu(settings: LedSettings, frames: int) -> float:
    encoder = Ws2812SpiEncoder()
    frame = np.random.default_rng(1).integers(0, 256, (settings.led_count, 3)).astype(np.uint8)
    start = time.process_time()
    for _ in range(frames):
        encoder.encode(reorder(frame, settings.colour_order))
    return (time.process_time() - start) / frames * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=5000)
    parser.add_argument("--leds", type=int, default=176)
    args = parser.parse_args(argv)
    settings = LedSettings(led_count=args.leds, c8_led=args.leds - 1)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    ddp_settings = LedSettings(
        led_count=args.leds,
        c8_led=args.leds - 1,
        backend="ddp",
        ddp_host="127.0.0.1",
        ddp_port=receiver.getsockname()[1],
    )
    rows = []
    for label, make in (
        ("handed to the backend (no device)", lambda: None),
        ("into SpiWs2812Backend (thread queue)", lambda: SpiWs2812Backend(settings, NullSpi())),
        ("sent by DdpBackend (UDP, localhost)", lambda: DdpBackend(ddp_settings)),
    ):
        lat = note_on_latency(settings if "Ddp" not in label else ddp_settings, make(), args.notes)
        rows.append(
            {
                "path": f"note-on -> frame {label}",
                "n": len(lat),
                "p50_ms": round(float(np.percentile(lat, 50)), 3),
                "p99_ms": round(float(np.percentile(lat, 99)), 3),
                "max_ms": round(float(lat.max()), 3),
            }
        )
    receiver.close()
    cpu = {}
    for lit in (1, 10, 88):
        mean_us, p99_us = render_cpu(settings, 3000, lit)
        cpu[f"render, {lit} keys lit"] = (round(mean_us, 1), round(p99_us, 1))
    spi_us = encode_cpu(settings, 3000)

    print(f"LED strip benchmark: {args.leds} LEDs, {args.notes} note-ons per row")
    print(f"{'latency':<62} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for row in rows:
        print(
            f"{row['path']:<62} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} {row['max_ms']:>8.3f}"
        )
    print(f"\n{'CPU per frame':<62} {'mean us':>8} {'p99 us':>8}")
    for name, (mean_us, p99_us) in cpu.items():
        print(f"{name:<62} {mean_us:>8.1f} {p99_us:>8.1f}")
    print(f"{'WS2812 SPI encoding (in the writer thread)':<62} {spi_us:>8.1f}")
    target_met = all(r["p99_ms"] <= 5.0 for r in rows)
    print(f"\ntarget note-on -> frame p99 <= 5 ms: {'met' if target_met else 'NOT met'}")
    OUT.mkdir(exist_ok=True)
    report = {
        "leds": args.leds,
        "latency": rows,
        "cpu_us": {k: {"mean": v[0], "p99_wall": v[1]} for k, v in cpu.items()},
        "spi_encode_us": round(spi_us, 1),
    }
    (OUT / "leds.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
