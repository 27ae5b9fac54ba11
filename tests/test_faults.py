"""Faults the daemon survives: the USB microphone unplugged and plugged back (or missing at
boot), audio overruns, an output failing mid-run, a full disk, SIGTERM.

The microphone is `service_fakes.MicHardware`, a recording fake of PortAudio that can be
unplugged; the supervisor's timing runs on a fake clock where the test needs to say "after
2 s" (so nothing here depends on how fast the machine is). The outputs are recording outputs.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from service_fakes import PA_INPUT_OVERFLOW, MicHardware, RecordingOutput

from notesight.device.audio import MicrophoneSource
from notesight.device.config import Settings
from notesight.device.daemon import Daemon, NoAudio
from notesight.device.errors import MicrophoneError
from notesight.device.outputs import DeviceStatus, JsonlEvents
from notesight.device.run import RunOptions, run
from notesight.device.supervise import SupervisedMicrophone
from notesight.device.synth import Note
from notesight.device.systemd import Notifier
from notesight.device.transcribe import blocks_of
from notesight.dsp.events import NoteOff, NoteOn

RATE = 48000
BLOCK = 256


class FakeClock:
    """The supervisor's clock: moves only when the test (or the supervisor's wait) says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return False


def block_of(value: float, size: int = BLOCK) -> np.ndarray:
    return np.full(size, value, dtype=np.float32)


def supervised(
    hw: MicHardware, clock: FakeClock, attempts: list[float] | None = None, **kwargs
) -> tuple[SupervisedMicrophone, DeviceStatus]:
    status = DeviceStatus()

    def factory():
        if attempts is not None:
            attempts.append(clock.now)
        return hw()

    def open_mic(target_rate: int | None) -> MicrophoneSource:
        return MicrophoneSource(None, RATE, BLOCK, target_rate, pyaudio_factory=factory)

    options = {"read_timeout_s": 0.001, "stall_s": 2.0, "retry_s": 1.0, **kwargs}
    sup = SupervisedMicrophone(
        open_mic,
        status,
        threading.Event(),
        fallback_rate=RATE,
        clock=clock,
        wait=clock.wait,
        **options,
    )
    return sup, status


def next_block(items: Iterator, limit: int = 1000) -> tuple[np.ndarray, list[NoAudio]]:
    gaps = []
    for _ in range(limit):
        item = next(items)
        if not isinstance(item, NoAudio):
            return item, gaps
        gaps.append(item)
    raise AssertionError(f"no audio block in {limit} items")


# --------------------------------------------------------------------------------------------
# The microphone unplugged and plugged back
# --------------------------------------------------------------------------------------------


def test_unplugged_mic_is_retried_every_second_and_resumes(caplog) -> None:
    hw, clock, attempts = MicHardware(), FakeClock(), []
    sup, status = supervised(hw, clock, attempts)
    items = iter(sup)
    assert status.mic_ok and status.mic_name == hw.name and sup.sample_rate == RATE

    hw.deliver(block_of(0.1))
    np.testing.assert_array_equal(next(items), block_of(0.1))

    hw.unplug()
    unplugged_at = clock.now
    clock.advance(2.5)  # longer than stall_s with no audio
    with caplog.at_level(logging.INFO):
        gap = next(items)
        assert isinstance(gap, NoAudio)
        assert not status.mic_ok
        first = hw.streams[0]
        assert first.events == ["start", "stop", "close"]  # closed although stop failed
        assert hw.sessions[0].terminated

        # While it is gone: the loop keeps going in ticks of at most 0.1 s, one open attempt
        # per second, each failing, and the daemon's clock follows the wall clock.
        attempts.clear()
        no_audio_s = 0.0
        while clock.now < unplugged_at + 10.0:
            item = next(items)
            assert isinstance(item, NoAudio)
            assert item.seconds <= 0.1 + 1e-9
            no_audio_s += item.seconds
        assert no_audio_s == pytest.approx(clock.now - unplugged_at - 2.5, abs=1e-6)
        assert len(attempts) >= 6
        assert np.allclose(np.diff(attempts), 1.0)
        assert not status.mic_ok

        hw.plug()
        plugged_at = clock.now
        block, _ = next_block_after(items, hw, block_of(0.2))
    np.testing.assert_array_equal(block, block_of(0.2))
    assert status.mic_ok
    resumed_after = attempts[-1] - plugged_at
    assert 0.0 <= resumed_after <= 1.0  # the first attempt after the plug succeeded
    assert sup.reconnects == 1
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # Logged once when lost and once for the missing device, not once per attempt.
    assert len([m for m in messages if "lost" in m]) == 1
    assert len([m for m in messages if m.startswith("no microphone")]) == 1
    assert "check its USB cable" in messages[0]
    sup.close()


def next_block_after(items: Iterator, hw: MicHardware, block: np.ndarray):
    """Step until the microphone is open again, then deliver `block` and read it."""
    for _ in range(1000):
        item = next(items)
        assert isinstance(item, NoAudio)
        if hw.live_stream is not None:
            assert hw.deliver(block)
            return next_block(items)
    raise AssertionError("the microphone was never reopened")


def test_mic_missing_at_boot_is_waited_for() -> None:
    hw, clock = MicHardware(), FakeClock()
    hw.unplug()
    sup, status = supervised(hw, clock, wait_for_first=True)
    assert not status.mic_ok
    assert sup.sample_rate == RATE  # the configured rate until a microphone shows up
    items = iter(sup)
    for _ in range(25):
        assert isinstance(next(items), NoAudio)
    hw.plug()
    block, _ = next_block_after(items, hw, block_of(0.3))
    np.testing.assert_array_equal(block, block_of(0.3))
    assert status.mic_ok
    sup.close()


def test_mic_missing_at_start_is_an_error_when_not_waiting() -> None:
    hw, clock = MicHardware(), FakeClock()
    hw.unplug()
    with pytest.raises(MicrophoneError, match="no microphone found"):
        supervised(hw, clock, wait_for_first=False)


def test_a_replacement_mic_at_another_rate_is_resampled_to_the_first(caplog) -> None:
    hw, clock = MicHardware(rate=48000), FakeClock()
    sup, _ = supervised(hw, clock)
    items = iter(sup)
    hw.unplug()
    clock.advance(3.0)
    assert isinstance(next(items), NoAudio)
    hw.rate = 44100  # another microphone is plugged in
    hw.plug()
    with caplog.at_level(logging.INFO):
        for _ in range(100):
            if isinstance(next(items), NoAudio) and hw.live_stream is not None:
                break
    assert sup.sample_rate == RATE
    assert hw.streams[-1].kwargs["rate"] == 44100
    assert any("resampled from 44100 to 48000 Hz" in r.getMessage() for r in caplog.records)
    t = np.arange(44100) / 44100
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = []
    for start in range(0, len(tone), BLOCK):
        hw.deliver(tone[start : start + BLOCK])
        item = next(items)  # a block, or NoAudio while soxr fills its first chunk
        if not isinstance(item, NoAudio):
            out.append(item)
    total = sum(len(b) for b in out)
    assert sup.dropped_blocks == 0
    assert 0.9 * RATE < total <= RATE  # one second of audio, now at 48 kHz
    sup.close()


# --------------------------------------------------------------------------------------------
# Overruns: stale audio dropped and counted
# --------------------------------------------------------------------------------------------


def test_stale_audio_is_dropped_counted_and_logged_once(caplog) -> None:
    hw, clock = MicHardware(), FakeClock()
    sup, status = supervised(hw, clock, drop_log_interval_s=60.0)
    items = iter(sup)
    kept = max(2, -(-int(0.5 * RATE) // BLOCK))  # MicrophoneSource keeps 0.5 s
    for k in range(kept + 30):
        hw.deliver(block_of(k / 1000), status=PA_INPUT_OVERFLOW if k == 5 else 0)
    with caplog.at_level(logging.WARNING):
        first = next(items)
    assert first[0] == pytest.approx(30 / 1000)  # the 30 oldest blocks were stale and went
    assert status.dropped_blocks == 30
    assert sup.dropped_blocks == 30 and sup.overruns == 1
    warnings = [r.getMessage() for r in caplog.records if "fell behind" in r.getMessage()]
    assert warnings == [
        "audio fell behind: 30 stale blocks dropped, 1 overruns reported by the sound card since "
        "the last report (30 and 1 in all); the Pi may be too busy"
    ]
    # More drops within the minute: counted at once, logged at the next report only.
    for _ in range(kept):
        next(items)
    for k in range(kept + 10):
        hw.deliver(block_of(k / 1000))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        next(items)
    assert status.dropped_blocks == 40
    assert not [r for r in caplog.records if "fell behind" in r.getMessage()]
    sup.close()


# --------------------------------------------------------------------------------------------
# The whole run: microphone unplugged mid-run, the outputs see "no mic", it resumes
# --------------------------------------------------------------------------------------------


class Player(threading.Thread):
    """Plays audio into the fake microphone, at most `lead` blocks ahead of the daemon."""

    def __init__(self, hw: MicHardware, output: RecordingOutput, lead: int = 8) -> None:
        super().__init__(daemon=True)
        self.hw = hw
        self.output = output
        self.lead = lead
        self.delivered = 0
        self.script: list = []
        self.error: BaseException | None = None

    def play(self, audio: np.ndarray) -> None:
        for start in range(0, len(audio) - BLOCK + 1, BLOCK):
            while not self.hw.deliver(audio[start : start + BLOCK]):
                self.output.wait_ticks(len(self.output.ticks) + 1)  # the mic is reopening
            self.delivered += 1
            self.output.wait_ticks(self.delivered - self.lead)

    def run(self) -> None:
        try:
            for step in self.script:
                step()
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_run_survives_the_mic_unplugged_and_shows_no_mic(render, caplog) -> None:
    before = render([Note(0.2, 1.5, 60, 100)], sample_rate=RATE)[: int(1.2 * RATE)]
    after = render([Note(0.2, 0.6, 67, 100)], sample_rate=RATE)
    hw = MicHardware()
    stop = threading.Event()
    made: list[RecordingOutput] = []

    def build(settings, options, status):
        made.append(RecordingOutput("leds", status))
        return [made[-1]]

    def script_unplug() -> None:
        hw.unplug()
        out = made[0]
        # Wait until the outputs have shown "no mic" for a few ticks and open attempts failed.
        while sum(not ok for _, ok in out.ticks) < 5 or len(hw.sessions) < 3:
            out.wait_ticks(len(out.ticks) + 1)
        hw.plug()

    settings = Settings.model_validate({"audio": {"block_size": BLOCK}})
    results: list = []

    def run_daemon() -> None:
        options = RunOptions(wait_for_mic=True)
        results.append(run(settings, options, stop, build=build, pyaudio_factory=hw))

    with caplog.at_level(logging.INFO):
        player = Player(hw, _LazyOutput(made))
        player.script = [lambda: player.play(before), script_unplug, lambda: player.play(after)]
        player.script.append(stop.set)
        runner = threading.Thread(target=run_daemon)
        runner.start()
        player.start()
        player.join(120)
        runner.join(120)
    assert player.error is None
    assert not runner.is_alive() and results, "run() did not return after stop"
    stats = results[0]
    out = made[0]
    assert out.closed == 1
    notes = [(type(e).__name__, e.midi) for e in out.events if isinstance(e, NoteOn | NoteOff)]
    assert notes == [("NoteOn", 60), ("NoteOff", 60), ("NoteOn", 67), ("NoteOff", 67)]
    # The C4 still sounding when the cable went is ended at the gap, not held forever; the G4
    # after the gap is timed on the same, still advancing, clock.
    off_c4 = next(e for e in out.events if isinstance(e, NoteOff) and e.midi == 60)
    on_g4 = next(e for e in out.events if isinstance(e, NoteOn) and e.midi == 67)
    no_mic = [s for s, ok in out.ticks if not ok]
    assert off_c4.offset_s <= min(no_mic) <= max(no_mic) < on_g4.onset_s
    assert on_g4.onset_s == pytest.approx(len(before) / RATE + stats.no_audio_s + 0.2, abs=0.06)
    times = [s for s, _ in out.ticks]
    assert times == sorted(times)
    assert stats.no_audio_s > 0
    assert hw.streams[0].events == ["start", "stop", "close"]
    assert hw.streams[-1].events == ["start", "stop", "close"]
    assert len(hw.streams) == 2


class _LazyOutput:
    """The recording output run() builds, once it exists (the player starts first)."""

    def __init__(self, made: list[RecordingOutput]) -> None:
        self.made = made

    @property
    def ticks(self):
        return self.made[0].ticks if self.made else []

    def wait_ticks(self, count: int, timeout: float = 60.0) -> bool:
        while not self.made:
            threading.Event().wait(0.01)
        return self.made[0].wait_ticks(count, timeout)


# --------------------------------------------------------------------------------------------
# Outputs failing mid-run, a full disk
# --------------------------------------------------------------------------------------------


def quiet_then_tone(seconds: float = 3.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t) * (t > 1.0)).astype(np.float32)


def test_an_output_failing_mid_run_is_dropped_and_the_others_go_on(caplog) -> None:
    good = RecordingOutput("oled")
    spi = RecordingOutput("leds", fail_at_tick=50)
    buggy = RecordingOutput("motor", fail_at_tick=80, error=ValueError("bug in the motor"))
    with caplog.at_level(logging.ERROR):
        stats = Daemon(RATE, [spi, buggy, good]).run(blocks_of(quiet_then_tone(), BLOCK))
    assert stats.failed_outputs == ["leds", "motor"]
    assert len(spi.ticks) == 50 and len(buggy.ticks) == 80
    assert len(good.ticks) == stats.blocks  # the good one saw every block to the end
    assert spi.closed == buggy.closed == good.closed == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors[0].getMessage() == (
        "leds output stopped: [Errno 5] Input/output error: '/dev/spidev0.0'"
    )
    assert errors[1].getMessage().startswith("motor output stopped by an unexpected error")
    assert errors[1].exc_info is not None  # a bug: the traceback is logged for the report
    assert len(errors) == 2


def test_a_full_disk_stops_only_the_output_writing_to_it(caplog) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full (a device that is always full) is not available")
    good = RecordingOutput("oled")
    with open("/dev/full", "w") as full, caplog.at_level(logging.ERROR):
        log_file = JsonlEvents(full, levels=True)  # a real output writing to a full disk
        stats = Daemon(RATE, [log_file, good]).run(blocks_of(quiet_then_tone(10.0), BLOCK))
    assert stats.failed_outputs == ["events"]
    assert len(good.ticks) == stats.blocks
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert messages == [
        "events output stopped: no space left on the disk: free some space, then restart notesight"
    ]


def test_permission_denied_on_a_device_names_the_fix(caplog) -> None:
    out = RecordingOutput(
        "oled", fail_at_tick=3, error=PermissionError(errno.EACCES, "denied", "/dev/i2c-1")
    )
    with caplog.at_level(logging.ERROR):
        Daemon(RATE, [out]).run(blocks_of(quiet_then_tone(0.5), BLOCK))
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.getMessage() == (
        "oled output stopped: no permission to open oled device /dev/i2c-1: enable I2C "
        "(sudo raspi-config nonint do_i2c 0) and add the user to group i2c"
    )


# --------------------------------------------------------------------------------------------
# SIGTERM
# --------------------------------------------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.settimeout(60)  # a guard against a hang, not a speed limit
    yield sock, path
    sock.close()


def received(sock: socket.socket) -> list[str]:
    messages = []
    sock.setblocking(False)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(60)
    return messages


def test_sigterm_stops_cleanly_closing_the_outputs(tmp_path: Path, notify_socket) -> None:
    sock, path = notify_socket
    wav = tmp_path / "tone.wav"
    sf.write(wav, quiet_then_tone(5.0), RATE)
    made: list[RecordingOutput] = []

    def build(settings, options, status):
        made.append(RecordingOutput("leds", status, on_tick=term_at_40))
        return [made[-1]]

    def term_at_40(ticks: int) -> None:
        if ticks == 40:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    notifier = Notifier({"NOTIFY_SOCKET": str(path)})
    stats = run(Settings(), RunOptions(input_file=wav, fast=True), build=build, notifier=notifier)
    assert 40 <= stats.blocks <= 41  # stopped at the next block, not at the end of the file
    assert made[0].closed == 1
    assert signal.getsignal(signal.SIGTERM) == before  # handlers restored
    messages = received(sock)
    assert messages[0].startswith("READY=1")
    assert messages[-1] == "STOPPING=1\nSTATUS=stopping"


def test_the_service_command_tells_systemd_and_stops_on_sigterm(
    tmp_path: Path, notify_socket
) -> None:
    """`notesight run` as systemd runs it: READY, WATCHDOG and STOPPING over $NOTIFY_SOCKET."""
    sock, path = notify_socket
    wav = tmp_path / "long.wav"
    sf.write(wav, quiet_then_tone(60.0), RATE)  # played in real time: SIGTERM comes first
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(path),
        "WATCHDOG_USEC": "200000",  # 0.2 s: pinged every 0.1 s of audio
        "INVOCATION_ID": "0123456789abcdef",
        "NOTESIGHT_CONFIG": str(Path(__file__).resolve().parents[1] / "config/notesight.toml"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "notesight.device.cli", "run", "--input", str(wav)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = sock.recv(4096).decode()
        assert first.startswith("READY=1\nSTATUS=listening to file long.wav")
        watchdogs = 0
        while watchdogs < 3:
            watchdogs += sock.recv(4096).decode() == "WATCHDOG=1"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert received(sock)[-1] == "STOPPING=1\nSTATUS=stopping"
    # Under systemd the log lines carry a journald priority and no timestamp.
    assert "<6>notesight.device.run: signal 15: stopping" in err.splitlines()
