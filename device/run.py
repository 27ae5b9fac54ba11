"""`notesight run`: build the source and the outputs the config asks for, then run the daemon.

Each output family has its own builder below; a builder returns the outputs it could open and
logs (never raises) for one that it could not, so a missing OLED does not stop the LEDs.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .config import Settings
from .daemon import Daemon, RunStats
from .outputs import DeviceStatus, JsonlEvents, Output
from .transcribe import daemon_block_size, listener_params

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """How this run was asked for on the command line."""

    input_file: Path | None = None  # None: the microphone from [audio]
    simulate_dir: Path | None = None  # simulated LEDs/OLED/motor written here
    fast: bool = False  # a file as fast as possible instead of in real time
    events_out: IO[str] | None = None  # every event as JSON lines (None: not logged)


def build_outputs(settings: Settings, options: RunOptions, status: DeviceStatus) -> list[Output]:
    outputs: list[Output] = []
    if options.events_out is not None:
        outputs.append(JsonlEvents(options.events_out))
    return outputs


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT end the loop cleanly (outputs closed, queues kept) instead of killing it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def request_stop(signum: int, frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    for sig in previous:
        signal.signal(sig, request_stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(settings: Settings, options: RunOptions, stop: threading.Event | None = None) -> RunStats:
    from .audio import FileSource, MicrophoneSource, audio_file_rate

    stop = stop or threading.Event()
    status = DeviceStatus()
    params = listener_params(settings.listen)
    with _stop_on_signals(stop):
        if options.input_file is not None:
            rate = audio_file_rate(options.input_file)
            source = FileSource(
                options.input_file, None, daemon_block_size(rate), realtime=not options.fast
            )
            status.update(mic_name=f"file {options.input_file.name}")
        else:
            audio = settings.audio
            source = MicrophoneSource(audio.device or None, audio.sample_rate, audio.block_size)
            status.update(mic_name=source.device.name)
        with source:
            outputs = build_outputs(settings, options, status)
            daemon = Daemon(source.sample_rate, outputs, params=params, status=status, stop=stop)
            return daemon.run(source)
