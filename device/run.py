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
from .config import Settings, load_settings_text
from .daemon import Daemon, RunStats
from .errors import ConfigError, NotesightError
from .feedback import feedback_parts
from .lastgood import last_good_path, save_last_good
from .outputs import DeviceStatus, JsonlEvents, Output, OutputPart
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
    return [output for part in output_parts(settings, options, status) for output in part.build()]


def output_parts(settings: Settings, options: RunOptions, status: DeviceStatus) -> list[OutputPart]:
    """The outputs the config asks for, each with the settings it is built from, so that a
    reload rebuilds only those whose settings changed (see OutputPart)."""
    parts: list[OutputPart] = []
    events_out = options.events_out
    if events_out is not None:
        parts.append(OutputPart("events", None, lambda: [JsonlEvents(events_out)]))
    if settings.mqtt.enabled:
        from .mqtt import MqttOutput, config_hash, mqtt_outputs  # paho only when [mqtt] is on

        def new_config(outputs: list[Output]) -> None:
            for output in outputs:
                if isinstance(output, MqttOutput):
                    output.config_changed(config_hash(settings))

        def build() -> list[Output]:
            # Raises OutputError for an unreadable password_file or TLS file: refusing to start
            # is better than running without the outbox and losing every event.
            return mqtt_outputs(settings, status, options.input_file)

        parts.append(OutputPart("mqtt", settings.mqtt, build, kept=new_config))
    parts.extend(feedback_parts(settings, options, status))  # LEDs, OLED, motor
    return parts


OutputBuilder = Callable[[Settings, RunOptions, DeviceStatus], list[Output]]
PartsBuilder = Callable[[Settings, RunOptions, DeviceStatus], list[OutputPart]]


def _as_parts(build: OutputBuilder) -> PartsBuilder:
    """A plain builder (tests pass their own) as one part keyed by the whole config: it is
    built again on every reload that changed anything."""

    def parts(settings: Settings, options: RunOptions, status: DeviceStatus) -> list[OutputPart]:
        return [OutputPart("outputs", settings, lambda: build(settings, options, status))]

    return parts


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
        parts: PartsBuilder,
    ) -> None:
        self.settings = settings
        self._options = options
        self._status = status
        self._notifier = notifier
        self._reload_requested = reload_requested
        self._parts = parts
        # What the outputs were built from, part by part: a reload keeps the unchanged ones.
        self._built: list[tuple[OutputPart, list[Output]]] = []
        self._mic_ok: bool | None = None
        self.daemon: Daemon | None = None

    def build_outputs(self) -> list[Output]:
        """The outputs for the start of the run."""
        parts = self._parts(self.settings, self._options, self._status)
        self._built = [(part, part.build()) for part in parts]
        return [output for _, outputs in self._built for output in outputs]

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
            new, text = load_settings_text(path)
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
        kept, changed = self._unchanged_parts(self._parts(new, self._options, self._status))
        previous = {part.name: part for part, _ in self._built}

        def build_changed() -> list[Output]:
            rebuilt = [self._rebuild(part, previous.get(part.name)) for part in changed]
            self._built = kept + rebuilt
            return [output for _, outputs in rebuilt for output in outputs]

        keep = [output for _, outputs in kept for output in outputs]
        self.daemon.reload(listener_params(new.listen), build_changed, keep=keep)
        for part, outputs in kept:
            if part.kept is not None:
                part.kept(outputs)
        if not new.mqtt.enabled:
            self._status.update(mqtt_enabled=False)  # the status line stops showing MQTT
        self.settings = new
        log.info(
            "outputs kept open: %s; rebuilt: %s",
            ", ".join(part.name for part, _ in kept) or "none",
            ", ".join(part.name for part in changed) or "none",
        )
        log.info("config reloaded from %s", path or "the search order")
        if text is not None and self._options.input_file is None:
            save_last_good(text, last_good_path(new))  # the daemon's fallback (lastgood.py)
        self._notifier.reloaded(_status_line(self._status))

    def _unchanged_parts(
        self, parts: list[OutputPart]
    ) -> tuple[list[tuple[OutputPart, list[Output]]], list[OutputPart]]:
        """(the new config's parts whose outputs can stay open, with them; the parts to build).

        A part stays when it was built from equal settings and its outputs are still running
        (one that failed, or that could not start, is tried again)."""
        assert self.daemon is not None
        running = {id(output) for output in self.daemon.outputs}
        before = {part.name: (part, outputs) for part, outputs in self._built}
        kept: list[tuple[OutputPart, list[Output]]] = []
        changed: list[OutputPart] = []
        for part in parts:
            old, outputs = before.get(part.name, (None, []))
            alive = bool(outputs) and all(id(output) in running for output in outputs)
            if old is not None and old.key == part.key and alive:
                kept.append((part, outputs))
            else:
                changed.append(part)
        return kept, changed

    def _rebuild(
        self, part: OutputPart, previous: OutputPart | None
    ) -> tuple[OutputPart, list[Output]]:
        """A changed part built; when the new settings cannot be built (the builders log and
        skip what they can, so this is a last resort), the previous settings' part instead."""
        try:
            return part, part.build()
        except NotesightError as exc:
            if previous is None:
                log.error(
                    "%s output of the new config failed (%s); going on without it", part.name, exc
                )
                return part, []
            log.error(
                "%s output of the new config failed (%s); back to the previous one", part.name, exc
            )
        try:
            return previous, previous.build()
        except NotesightError as exc:
            log.error("%s output failed again (%s); going on without it", previous.name, exc)
            return previous, []


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
    build: OutputBuilder | None = None,
    notifier: Notifier | None = None,
    pyaudio_factory: Callable[[], object] | None = None,
) -> RunStats:
    """Run until the audio ends or `stop` is set (SIGTERM/SIGINT set it too).

    `build` makes the outputs instead of `output_parts` (again on each reload that changed
    anything; the default rebuilds only what changed); `pyaudio_factory` stands in for
    pyaudio.PyAudio (tests pass a fake microphone); `notifier` talks to systemd.
    """
    stop = stop or threading.Event()
    reload_requested = threading.Event()
    notifier = notifier or Notifier()
    status = DeviceStatus()
    if options.log_level_from_config:
        apply_log_level(settings)
    parts = output_parts if build is None else _as_parts(build)
    loop = _ServiceLoop(settings, options, status, notifier, reload_requested, parts)
    try:
        with _stop_on_signals(stop, reload_requested):
            with _open_source(settings, options, status, stop, pyaudio_factory) as source:
                outputs = loop.build_outputs()
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
