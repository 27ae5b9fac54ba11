"""`notesight run`: build the source and the outputs the config asks for, then run the daemon.

Each output family has its own builder below; a builder returns the outputs it could open and
logs (never raises) for one that it could not, so a missing OLED does not stop the LEDs.

As a service (see systemd/notesight.service) the run also tells systemd when it is ready, feeds
its watchdog from the audio loop, survives the microphone coming and going (`supervise.py`) and
applies a new config on SIGHUP (`systemctl reload notesight`) without stopping the audio.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .classifier import build_alert_hook
from .config import Settings, load_settings
from .daemon import Daemon, RunStats
from .errors import ConfigError, NotesightError
from .feedback import build_feedback_outputs
from .outputs import DeviceStatus, JsonlEvents, Output
from .systemd import Notifier
from .transcribe import daemon_block_size, listener_params

if TYPE_CHECKING:
    from .audio import FileSource
    from .supervise import SupervisedMicrophone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """How this run was asked for on the command line."""

    input_file: Path | None = None  # None: the microphone from [audio]
    simulate_dir: Path | None = None  # simulated LEDs/OLED/motor written here
    fast: bool = False  # a file as fast as possible instead of in real time
    events_out: IO[str] | None = None  # every event as JSON lines (None: not logged)
    config_path: Path | None = None  # read again on SIGHUP (None: the search order)
    wait_for_mic: bool = False  # a microphone missing at the start is waited for, not an error
    log_level_from_config: bool = False  # [log].level sets the level, also after a reload


def build_outputs(settings: Settings, options: RunOptions, status: DeviceStatus) -> list[Output]:
    outputs: list[Output] = []
    if options.events_out is not None:
        outputs.append(JsonlEvents(options.events_out))
    if settings.mqtt.enabled:
        from .mqtt import mqtt_outputs  # paho is imported only when [mqtt] is on

        # Raises OutputError for an unreadable password_file or TLS file: refusing to start is
        # better than running without the outbox and losing every event.
        outputs.extend(mqtt_outputs(settings, status, options.input_file))
    outputs.extend(build_feedback_outputs(settings, options, status))  # LEDs, OLED, motor
    return outputs


OutputBuilder = Callable[[Settings, RunOptions, DeviceStatus], list[Output]]


@contextmanager
def _stop_on_signals(
    stop: threading.Event, reload_requested: threading.Event | None = None
) -> Iterator[None]:
    """SIGTERM/SIGINT end the loop cleanly (outputs closed, queues kept) instead of killing it;
    SIGHUP asks for the config to be read again (the loop does it between two blocks)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = [signal.SIGTERM, signal.SIGINT]
    if reload_requested is not None:
        signals.append(signal.SIGHUP)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def request_stop(signum: int, frame: object) -> None:
        if signum == signal.SIGHUP and reload_requested is not None:
            reload_requested.set()  # logged by the loop when it reloads
            return
        log.info("signal %d: stopping", signum)
        stop.set()

    for sig in previous:
        signal.signal(sig, request_stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def apply_log_level(settings: Settings) -> None:
    logging.getLogger().setLevel(settings.log.level.upper())


def _status_line(status: DeviceStatus) -> str:
    """One line for `systemctl status notesight`."""
    if not status.mic_ok:
        return "no microphone: plug in the USB microphone"
    return f"listening to {status.mic_name or 'the microphone'}"


class _ServiceLoop:
    """What the daemon's loop does between two blocks, via Daemon's on_block hook: tell systemd
    it is ready (once the first block, or the first tick without a microphone, went through),
    feed its watchdog, report microphone changes as STATUS, and reload the config on SIGHUP."""

    def __init__(
        self,
        settings: Settings,
        options: RunOptions,
        status: DeviceStatus,
        notifier: Notifier,
        reload_requested: threading.Event,
        build: OutputBuilder,
    ) -> None:
        self.settings = settings
        self._options = options
        self._status = status
        self._notifier = notifier
        self._reload_requested = reload_requested
        self._build = build
        self._mic_ok: bool | None = None
        self.daemon: Daemon | None = None

    def on_block(self, stats: RunStats) -> None:
        mic_ok = self._status.mic_ok
        if mic_ok != self._mic_ok:
            self._mic_ok = mic_ok
            self._notifier.ready(_status_line(self._status))
            self._notifier.status(_status_line(self._status))
        self._notifier.watchdog()
        if self._reload_requested.is_set():
            self._reload_requested.clear()
            self.reload()

    def reload(self) -> None:
        """Read the config again; apply it if valid, otherwise log why and keep the old one."""
        assert self.daemon is not None
        self._notifier.reloading()
        path = self._options.config_path
        try:
            new = load_settings(path)
        except ConfigError as exc:
            reason = "; ".join(str(exc).splitlines())
            log.error("config not reloaded, still running with the previous one: %s", reason)
            self._notifier.reloaded(_status_line(self._status))
            return
        if new.audio != self.settings.audio:
            log.warning(
                "config reloaded, but [audio] changes need a restart: "
                "sudo systemctl restart notesight"
            )
        if self._options.log_level_from_config:
            apply_log_level(new)
        old = self.settings

        def build_new() -> list[Output]:
            try:
                return self._build(new, self._options, self._status)
            except NotesightError as exc:  # builders log and skip; this is a last resort
                log.error("outputs of the new config failed (%s); back to the previous ones", exc)
                return self._build(old, self._options, self._status)

        self.daemon.reload(listener_params(new.listen), build_new)
        self.settings = new
        log.info("config reloaded from %s", path or "the search order")
        self._notifier.reloaded(_status_line(self._status))


def _open_source(
    settings: Settings,
    options: RunOptions,
    status: DeviceStatus,
    stop: threading.Event,
    pyaudio_factory: Callable[[], object] | None,
) -> FileSource | SupervisedMicrophone:
    # Imported here: a file run must not need PortAudio.
    from .audio import FileSource, MicrophoneSource, audio_file_rate
    from .supervise import SupervisedMicrophone

    if options.input_file is not None:
        rate = audio_file_rate(options.input_file)
        source = FileSource(
            options.input_file, None, daemon_block_size(rate), realtime=not options.fast
        )
        status.update(mic_name=f"file {options.input_file.name}")
        return source
    audio = settings.audio

    def open_microphone(target_rate: int | None) -> MicrophoneSource:
        return MicrophoneSource(
            audio.device or None,
            audio.sample_rate,
            audio.block_size,
            target_rate,
            pyaudio_factory=pyaudio_factory,
        )

    return SupervisedMicrophone(
        open_microphone,
        status,
        stop,
        fallback_rate=audio.sample_rate,
        wait_for_first=options.wait_for_mic,
    )


def run(
    settings: Settings,
    options: RunOptions,
    stop: threading.Event | None = None,
    *,
    build: OutputBuilder = build_outputs,
    notifier: Notifier | None = None,
    pyaudio_factory: Callable[[], object] | None = None,
) -> RunStats:
    """Run until the audio ends or `stop` is set (SIGTERM/SIGINT set it too).

    `build` makes the outputs (again on each reload); `pyaudio_factory` stands in for
    pyaudio.PyAudio (tests pass a fake microphone); `notifier` talks to systemd.
    """
    stop = stop or threading.Event()
    reload_requested = threading.Event()
    notifier = notifier or Notifier()
    status = DeviceStatus()
    if options.log_level_from_config:
        apply_log_level(settings)
    loop = _ServiceLoop(settings, options, status, notifier, reload_requested, build)
    try:
        with _stop_on_signals(stop, reload_requested):
            with _open_source(settings, options, status, stop, pyaudio_factory) as source:
                outputs = build(settings, options, status)
                realtime = not options.fast
                daemon = Daemon(
                    source.sample_rate,
                    outputs,
                    params=listener_params(settings.listen),
                    status=status,
                    stop=stop,
                    on_block=loop.on_block,
                    alerts=build_alert_hook(settings, source.sample_rate, realtime=realtime),
                )
                loop.daemon = daemon
                try:
                    stats = daemon.run(source)
                finally:
                    notifier.stopping()
            dropped = getattr(source, "dropped_blocks", 0)
            if dropped:
                log.warning("%d stale audio blocks were dropped during the run", dropped)
            return stats
    finally:
        notifier.close()
