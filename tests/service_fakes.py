"""A USB microphone that can be unplugged and plugged back, standing in for pyaudio.PyAudio.

`MicHardware` is the factory MicrophoneSource takes (`pyaudio_factory`): every call starts a
new PortAudio session that lists the devices plugged in at that moment, as real PortAudio does.
It records every session, every stream and what each stream was asked to do, and
`deliver(block)` plays PortAudio's real-time thread by calling the live stream's callback.
While unplugged, nothing is delivered (a pulled-out USB device simply stops calling back),
and opening or starting a stream fails the way PortAudio does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

import numpy as np

PA_INPUT_OVERFLOW = 0x2  # portaudio.h paInputOverflow


class FakeStream:
    def __init__(self, hardware: MicHardware, kwargs: dict[str, Any]) -> None:
        self.hardware = hardware
        self.kwargs = kwargs
        self.events: list[str] = []
        self.running = False
        self.closed = False

    def start_stream(self) -> None:
        self.events.append("start")
        if not self.hardware.plugged:
            raise OSError(-9999, "Unanticipated host error")
        self.running = True

    def stop_stream(self) -> None:
        self.events.append("stop")
        was_running, self.running = self.running, False
        if was_running and not self.hardware.plugged:
            raise OSError(-9999, "Unanticipated host error")  # as PortAudio on a gone device

    def close(self) -> None:
        self.events.append("close")
        self.running = False
        self.closed = True


class DeviceList:
    """PortAudio's device enumeration over `self.devices` (dicts as pyaudio returns them, less
    the index), shared by the fake PortAudio sessions of the tests."""

    devices: list[dict[str, Any]]

    def get_device_count(self) -> int:
        return len(self.devices)

    def get_device_info_by_index(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.devices):
            raise OSError(-9996, "Invalid device")
        return {"index": index, **self.devices[index]}


class FakeSession(DeviceList):
    """One PortAudio session (one PyAudio object): a snapshot of the devices at its start."""

    def __init__(self, hardware: MicHardware) -> None:
        self.hardware = hardware
        self.devices = list(hardware.devices()) if hardware.plugged else []
        self.terminated = False

    def get_default_input_device_info(self) -> dict[str, Any]:
        if not self.devices:
            raise OSError("No Default Input Device Available")
        return self.get_device_info_by_index(0)

    def open(self, **kwargs: Any) -> FakeStream:
        if not self.hardware.plugged:
            raise OSError(-9996, "Invalid device")
        if kwargs["rate"] != self.hardware.rate:
            raise OSError(-9997, "Invalid sample rate")
        stream = FakeStream(self.hardware, kwargs)
        self.hardware.streams.append(stream)
        return stream

    def terminate(self) -> None:
        self.terminated = True


class MicHardware:
    """The factory: `MicrophoneSource(pyaudio_factory=hardware)`."""

    def __init__(
        self, name: str = "USB PnP Sound Device: Audio (hw:1,0)", rate: int = 48000
    ) -> None:
        self.name = name
        self.rate = rate
        self.plugged = True
        self.sessions: list[FakeSession] = []
        self.streams: list[FakeStream] = []
        self.lock = threading.Lock()

    def devices(self) -> list[dict[str, Any]]:
        return [
            {
                "name": self.name,
                "maxInputChannels": 1,
                "maxOutputChannels": 0,
                "defaultSampleRate": float(self.rate),
                "hostApi": 0,
            }
        ]

    def __call__(self) -> FakeSession:
        with self.lock:
            session = FakeSession(self)
            self.sessions.append(session)
            return session

    def unplug(self) -> None:
        self.plugged = False

    def plug(self) -> None:
        self.plugged = True

    @property
    def live_stream(self) -> FakeStream | None:
        with self.lock:
            for stream in reversed(self.streams):
                if stream.running and not stream.closed:
                    return stream
        return None

    def deliver(self, mono: np.ndarray, status: int = 0) -> bool:
        """Hand one block to the running stream's callback; False when nothing is listening."""
        stream = self.live_stream
        if stream is None or not self.plugged:
            return False
        data = np.asarray(mono, dtype=np.float32)
        stream.kwargs["stream_callback"](data.tobytes(), len(data), {}, status)
        return True


class RecordingOutput:
    """An Output that records every call: events, ticks with the microphone state at that
    moment, closes. `fail_at_tick` makes its n-th tick raise `error` (a device failing
    mid-run); `on_tick(n)` runs on every tick (to send a signal at a known block)."""

    def __init__(
        self,
        name: str = "recorder",
        status: Any = None,
        *,
        fail_at_tick: int | None = None,
        error: Exception | None = None,
        on_tick: Any = None,
        settings: Any = None,
    ) -> None:
        self.name = name
        self.status = status
        self.settings = settings
        self.fail_at_tick = fail_at_tick
        self.error = error
        self.on_tick = on_tick
        self.events: list[Any] = []
        self.ticks: list[tuple[float, bool]] = []
        self.closed = 0
        self.tick_lock = threading.Condition()

    def handle(self, event: Any) -> None:
        self.events.append(event)

    def tick(self, stream_s: float) -> None:
        mic_ok = self.status.snapshot().mic_ok if self.status is not None else True
        with self.tick_lock:
            self.ticks.append((stream_s, mic_ok))
            self.tick_lock.notify_all()
        if self.on_tick is not None:
            self.on_tick(len(self.ticks))
        if self.fail_at_tick is not None and len(self.ticks) >= self.fail_at_tick:
            raise self.error or OSError(5, "Input/output error", "/dev/spidev0.0")

    def wait_ticks(self, count: int, timeout: float = 60.0) -> bool:
        """Block until `count` ticks were seen (a guard against a hang, not a speed limit)."""
        with self.tick_lock:
            return self.tick_lock.wait_for(lambda: len(self.ticks) >= count, timeout)

    def close(self) -> None:
        self.closed += 1


def notified_daemon(
    tmp_path, args: list[str], extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], socket.socket]:
    """`python -m notesight.device.cli ARGS` as systemd would start it: a notify socket in
    `tmp_path` (its messages readable from the returned socket), journald-style logging on
    stderr (captured as text), stdout discarded."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(60)  # a guard against a hang, not a speed limit
    env = {**os.environ, "NOTIFY_SOCKET": str(path), "JOURNAL_STREAM": "8:1", **(extra_env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "notesight.device.cli", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, sock


def received(sock: socket.socket, prefix: str) -> str:
    """Wait for the next sd_notify message that starts with `prefix` (others are skipped)."""
    while not (message := sock.recv(4096).decode()).startswith(prefix):
        pass
    return message


def stop_daemon(proc: subprocess.Popen[str], sock: socket.socket) -> str:
    """SIGTERM, wait for a clean exit (asserted, without a traceback) and return its stderr."""
    try:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return err


def reload_daemon(proc: subprocess.Popen[str], sock: socket.socket) -> None:
    """SIGHUP, then wait until the daemon has told systemd it reloaded and is ready again."""
    proc.send_signal(signal.SIGHUP)
    received(sock, "RELOADING=1")
    received(sock, "READY=1")


def kill_daemon(proc: subprocess.Popen[str], sock: socket.socket) -> None:
    """After a failed step: kill the daemon and close its notify socket."""
    proc.kill()
    proc.communicate()
    sock.close()
