"""SIGHUP (`systemctl reload notesight`): a valid new config is applied live without touching
the audio stream; an invalid one is rejected with the reason logged and the old one kept."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from service_fakes import (
    MicHardware,
    RecordingOutput,
    kill_daemon,
    notified_daemon,
    received,
    reload_daemon,
    stop_daemon,
)

from notesight.device.config import load_settings
from notesight.device.run import RunOptions, run
from notesight.device.systemd import Notifier
from notesight.device.transcribe import daemon_block_size
from notesight.dsp.events import NoteOff, NoteOn

RATE = 48000


def piano_like(rate: int, onsets: list[tuple[float, float]], seconds: float) -> np.ndarray:
    """Decaying harmonic strikes of (time, frequency); enough for the listener to name."""
    out = np.zeros(int(seconds * rate))
    for start, f0 in onsets:
        t = np.arange(int(3.0 * rate)) / rate
        tone = sum(np.sin(2 * np.pi * k * f0 * t) * np.exp(-t * (1.0 + k)) / k for k in range(1, 7))
        begin = int(start * rate)
        end = min(len(out), begin + len(tone))
        out[begin:end] += tone[: end - begin]
    return (0.4 * out / np.max(np.abs(out))).astype(np.float32)


class Recorder:
    """The output builder run() calls (again on every reload): one RecordingOutput per call,
    which rewrites the config and sends SIGHUP at its `hup_at_tick`-th tick."""

    def __init__(self, config: Path, new_text: str | None = None, hup_at_tick: int = 0) -> None:
        self.config = config
        self.new_text = None if new_text is None else mono(new_text)
        self.hup_at_tick = hup_at_tick
        self.built: list[tuple[object, RecordingOutput]] = []

    def __call__(self, settings, options, status):
        def maybe_hup(ticks: int) -> None:
            if len(self.built) == 1 and ticks == self.hup_at_tick and self.new_text is not None:
                self.config.write_text(self.new_text)
                os.kill(os.getpid(), signal.SIGHUP)

        output = RecordingOutput("leds", status, on_tick=maybe_hup, settings=settings)
        self.built.append((settings, output))
        return [output]


def mono(text: str) -> str:
    """`text` with [listen].pipeline = "mono" spelled out: these tests feed a synthetic
    piano-like tone, which the note model ("poly") was not made for."""
    if "[listen]\n" in text:
        return text.replace("[listen]\n", '[listen]\npipeline = "mono"\n', 1)
    return '[listen]\npipeline = "mono"\n' + text


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(mono('[leds]\ncolour = "#ff0000"\n'))
    return path


@pytest.fixture
def held_note_wav(tmp_path: Path) -> Path:
    path = tmp_path / "held.wav"
    sf.write(path, piano_like(RATE, [(0.3, 261.63)], 3.0), RATE)
    return path


def test_a_valid_config_is_applied_without_losing_a_block(
    config: Path, held_note_wav: Path, caplog
) -> None:
    recorder = Recorder(config, '[leds]\ncolour = "#00ff00"\n', hup_at_tick=100)
    options = RunOptions(input_file=held_note_wav, fast=True, config_path=config)
    with caplog.at_level(logging.INFO):
        stats = run(load_settings(config), options, build=recorder)

    assert stats.reloads == 1
    (old_settings, old), (new_settings, new) = recorder.built
    assert old_settings.leds.colour == "#ff0000" and new_settings.leds.colour == "#00ff00"
    assert old.closed == 1 and new.closed == 1
    # Every block went through, the first 100 ticks to the old outputs and the rest to the new.
    block = daemon_block_size(RATE)
    assert stats.blocks == -(-int(3.0 * RATE) // block)
    assert len(old.ticks) == 100 and len(old.ticks) + len(new.ticks) == stats.blocks
    assert new.ticks[0][0] == pytest.approx(old.ticks[-1][0] + block / RATE)
    # Only colours changed: the listener was kept, so the held C4 is one note, not two.
    notes = [(type(e).__name__, e.midi) for e in old.events + new.events if not _level(e)]
    assert notes == [("NoteOn", 60), ("NoteOff", 60)]
    assert any(r.getMessage().startswith("config reloaded from") for r in caplog.records)


def _level(event) -> bool:
    return not isinstance(event, NoteOn | NoteOff)


def test_new_listening_settings_end_the_sounding_note_and_keep_the_clock(
    config: Path, held_note_wav: Path
) -> None:
    recorder = Recorder(config, "[listen]\nmin_level_dbfs = -60.0\n", hup_at_tick=150)
    options = RunOptions(input_file=held_note_wav, fast=True, config_path=config)
    stats = run(load_settings(config), options, build=recorder)
    assert stats.reloads == 1
    (_, old), (new_settings, new) = recorder.built
    assert new_settings.listen.min_level_dbfs == -60.0
    ons = [e for e in old.events if isinstance(e, NoteOn)]
    offs = [e for e in old.events if isinstance(e, NoteOff)]
    assert [e.midi for e in ons] == [60] and [e.midi for e in offs] == [60]
    reload_s = old.ticks[-1][0]
    assert offs[0].offset_s == pytest.approx(reload_s, abs=0.01)  # ended at the reload
    # The new listener's events are on the daemon's clock, after the reload.
    later = [e for e in new.events if isinstance(e, NoteOn | NoteOff)]
    assert all(getattr(e, "emitted_s", 0) >= reload_s for e in later)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[leds]\ncolour = "green"\n', '[leds].colour: must be a colour written "#rrggbb"'),
        ("[leds\ncolour = 1\n", "invalid TOML"),
        ("[listen]\nlowest_note = 3\n", "[listen].lowest_note: must be a note name"),
    ],
)
def test_an_invalid_config_is_rejected_and_the_old_one_kept(
    config: Path, held_note_wav: Path, caplog, text: str, reason: str, tmp_path: Path
) -> None:
    recorder = Recorder(config, text, hup_at_tick=100)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    options = RunOptions(input_file=held_note_wav, fast=True, config_path=config)
    with caplog.at_level(logging.INFO):
        stats = run(load_settings(config), options, build=recorder, notifier=notifier)
    assert stats.reloads == 0
    ((settings, output),) = recorder.built  # never rebuilt
    assert settings.leds.colour == "#ff0000"
    assert output.closed == 1 and len(output.ticks) == stats.blocks  # kept to the end
    (error,) = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name == "notesight.device.run"
    ]
    assert error.startswith("config not reloaded, still running with the previous one: ")
    assert str(config) in error and reason in error
    assert "\n" not in error
    sock.setblocking(False)
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            break
    sock.close()
    kinds = [m.split("\n")[0].split("=")[0] for m in messages]
    # systemctl reload waits for READY=1 after RELOADING=1, also when the reload is refused.
    assert kinds == ["READY", "RELOADING", "READY", "STOPPING"]


def audio_blocks(recorder: Recorder, block: int) -> int:
    """Ticks that came with an audio block (the clock moved by exactly one block), over every
    output built so far; a tick without audio (NoAudio) moves it by a wait's length."""
    ticks = [stream_s for _, output in recorder.built for stream_s, _ in list(output.ticks)]
    steps = np.diff([0.0, *ticks])
    return int(np.sum(np.isclose(steps, block / RATE, atol=1e-9)))


def test_the_microphone_stream_is_not_touched_by_a_reload(config: Path) -> None:
    """With the live microphone: one stream, started once, every delivered block processed."""
    hw = MicHardware()
    stop = threading.Event()
    recorder = Recorder(config, '[leds]\ncolour = "#0000ff"\n', hup_at_tick=60)
    audio = piano_like(RATE, [(0.2, 440.0)], 1.5)
    block = 256
    delivered = 0

    def wait_for_daemon(behind: int) -> None:
        while audio_blocks(recorder, block) < delivered - behind:
            current = recorder.built[-1][1]
            current.wait_ticks(len(current.ticks) + 1, 0.05)

    def play() -> None:
        nonlocal delivered
        while not recorder.built:
            threading.Event().wait(0.01)
        for start in range(0, len(audio) - block + 1, block):
            while not hw.deliver(audio[start : start + block]):
                threading.Event().wait(0.01)
            delivered += 1
            wait_for_daemon(behind=8)  # at most 8 blocks ahead: nothing goes stale
        wait_for_daemon(behind=0)
        stop.set()

    settings = load_settings(config)
    settings = settings.model_copy(
        update={"audio": settings.audio.model_copy(update={"block_size": block})}
    )
    config.write_text('[leds]\ncolour = "#ff0000"\n[audio]\nblock_size = 256\n')
    recorder.new_text = '[leds]\ncolour = "#0000ff"\n[audio]\nblock_size = 256\n'
    player = threading.Thread(target=play, daemon=True)
    player.start()
    stats = run(settings, RunOptions(config_path=config), stop, build=recorder, pyaudio_factory=hw)
    player.join(60)
    assert stats.reloads == 1
    assert recorder.built[1][0].leds.colour == "#0000ff"
    (stream,) = hw.streams
    assert stream.events == ["start", "stop", "close"]  # never restarted by the reload
    assert len(hw.sessions) == 1
    assert stats.blocks == delivered == len(audio) // block
    assert hw.streams[0].kwargs["stream_callback"].__self__.dropped_blocks == 0


def test_log_level_follows_the_config_on_reload(config: Path, held_note_wav: Path) -> None:
    root = logging.getLogger()
    before = root.level
    try:
        recorder = Recorder(config, '[log]\nlevel = "error"\n', hup_at_tick=20)
        options = RunOptions(
            input_file=held_note_wav, fast=True, config_path=config, log_level_from_config=True
        )
        run(load_settings(config), options, build=recorder)
        assert root.level == logging.ERROR
    finally:
        root.setLevel(before)


def test_audio_changes_are_logged_as_needing_a_restart(
    config: Path, held_note_wav: Path, caplog
) -> None:
    recorder = Recorder(config, "[audio]\nblock_size = 256\n", hup_at_tick=20)
    options = RunOptions(input_file=held_note_wav, fast=True, config_path=config)
    with caplog.at_level(logging.WARNING):
        stats = run(load_settings(config), options, build=recorder)
    assert stats.reloads == 1
    assert any("[audio] changes need a restart" in r.getMessage() for r in caplog.records)


def test_sighup_to_the_running_command(tmp_path: Path, config: Path) -> None:
    """The real command: SIGHUP with a good config, then a broken one, then SIGTERM."""
    wav = tmp_path / "long.wav"
    sf.write(wav, np.zeros(60 * RATE, dtype=np.float32), RATE)
    proc, sock = notified_daemon(tmp_path, ["--config", str(config), "run", "--input", str(wav)])

    try:
        received(sock, "READY=1")
        config.write_text('[leds]\ncolour = "#123456"\n')
        reload_daemon(proc, sock)
        config.write_text("[leds]\ncolour = 12\n")
        reload_daemon(proc, sock)
    except BaseException:
        kill_daemon(proc, sock)
        raise
    err = stop_daemon(proc, sock)
    lines = err.splitlines()
    assert f"<6>notesight.device.run: config reloaded from {config}" in lines
    assert (
        "<3>notesight.device.run: config not reloaded, still running with the previous one: "
        f'{config}: [leds].colour: must be a colour written "#rrggbb", like "#ff8000" (got 12)'
    ) in lines
