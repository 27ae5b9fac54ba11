"""The daemon: one linear loop from audio blocks to outputs.

Blocks come in (microphone or file), the listener turns them into note events, a level event is
added every `level_interval_s`, and every output gets each event at once and a `tick` per block.
There are no threads here: outputs that talk to slow devices keep their own (see `outputs.py`).
Everything runs on stream time (seconds of audio consumed), so a file run with `--fast` produces
exactly what the live daemon would have shown, only sooner.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from notesight.dsp.events import Chord, Event, Level, NoteOff, NoteOn
from notesight.dsp.listener import NoteListener
from notesight.dsp.polynotes import PolyListener

from .errors import OutputError, explain_os_error
from .note_model import ListeningParams, make_listener
from .outputs import DeviceStatus, Output

if TYPE_CHECKING:
    from .classifier import AlertHook

log = logging.getLogger(__name__)

# OSErrors that explain_os_error turns into a fix (the rest keep their own text).
_EXPLAINED_ERRNOS = frozenset({errno.ENOENT, errno.EACCES, errno.EPERM, errno.EBUSY, errno.ENOSPC})


@dataclass
class RunStats:
    """What a run did, for the closing log line and the tests."""

    blocks: int = 0
    stream_s: float = 0.0
    notes: int = 0
    events: int = 0
    failed_outputs: list[str] = field(default_factory=list)
    no_audio_s: float = 0.0  # seconds the source had no audio (microphone gone or stalled)
    reloads: int = 0


@dataclass(frozen=True)
class NoAudio:
    """Yielded by a source instead of a block when no audio came for `seconds` of wall time
    (microphone unplugged or stalled). The daemon still ticks the outputs, so they can show it,
    and its stream clock advances by `seconds`, so fades and timers go on."""

    seconds: float


def _shifted(event: Event, offset_s: float) -> Event:
    """A listener's event moved onto the daemon's clock (a listener counts from its own start)."""
    if offset_s == 0.0:
        return event
    if isinstance(event, NoteOn):
        return dataclasses.replace(
            event, onset_s=event.onset_s + offset_s, emitted_s=event.emitted_s + offset_s
        )
    if isinstance(event, NoteOff):
        return dataclasses.replace(
            event, offset_s=event.offset_s + offset_s, emitted_s=event.emitted_s + offset_s
        )
    if isinstance(event, Chord):
        return dataclasses.replace(event, stream_s=event.stream_s + offset_s)
    return event


def _reason(exc: Exception, name: str) -> str:
    """An output's failure in the caretaker's words."""
    if isinstance(exc, OSError) and exc.errno in _EXPLAINED_ERRNOS:
        if exc.filename:
            return explain_os_error(exc, exc.filename, f"{name} device")
        if exc.errno == errno.ENOSPC:
            return "no space left on the disk: free some space, then restart notesight"
    return str(exc)


class Daemon:
    """Wires the listener to the outputs. `run(blocks)` returns when the blocks end or `stop`
    is set; the outputs are closed either way."""

    def __init__(
        self,
        sample_rate: int,
        outputs: Sequence[Output],
        *,
        params: ListeningParams | None = None,
        status: DeviceStatus | None = None,
        stop: threading.Event | None = None,
        level_interval_s: float = 0.05,
        on_block: Callable[[RunStats], None] | None = None,
        alerts: AlertHook | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        # The household-sound classifier (device/classifier.py): fed each block, its alerts
        # join the events, its key gate filters note-ons, and it routes alerts per output.
        self.alerts = alerts
        self.outputs: list[Output] = list(outputs)
        self.status = status or DeviceStatus()
        self.stop = stop or threading.Event()
        self.params = params
        # A listener counts time from its own start; after a gap in the audio or a reload a new
        # one starts at `_listener_start_s` of the daemon's clock, having had `_consumed` samples.
        self._listener: NoteListener | PolyListener | None = make_listener(sample_rate, params)
        self._listener_start_s = 0.0
        self._consumed = 0
        self._stream_s = 0.0
        self._level_interval_s = level_interval_s
        self._on_block = on_block
        self.stats = RunStats()

    def run(self, blocks: Iterable[np.ndarray | NoAudio]) -> RunStats:
        next_level_s = 0.0
        try:
            for block in blocks:
                if self.stop.is_set():
                    break
                if isinstance(block, NoAudio):
                    self._no_audio(block.seconds)
                else:
                    listener = self._listening()
                    events = [self._on_clock(e) for e in listener.feed(block)]
                    self._consumed += len(block)
                    stream_s = self._listener_start_s + self._consumed / self.sample_rate
                    self._stream_s = stream_s
                    if stream_s >= next_level_s:
                        events.append(Level(listener.level_dbfs, listener.floor_dbfs, stream_s))
                        next_level_s = stream_s + self._level_interval_s
                    if self.alerts is not None:
                        events = self.alerts.on_block(block, events, stream_s)
                    self._dispatch(events)
                    self._tick(stream_s)
                    self.stats.blocks += 1
                self.stats.stream_s = self._stream_s
                if self._on_block is not None:
                    self._on_block(self.stats)
            self._end_listener()
            if self.alerts is not None:
                self._dispatch(self.alerts.close())
        finally:
            if self.alerts is not None:
                self.alerts.close()  # joins the classifier thread if the loop ended by an error
            self._close_outputs()
        return self.stats

    def reload(
        self,
        params: ListeningParams | None,
        build_outputs: Callable[[], Sequence[Output]],
        keep: Sequence[Output] = (),
    ) -> None:
        """Apply a new config between two blocks; the audio source is not touched.

        The outputs in `keep` (their settings did not change) stay open as they are, so MQTT
        stays connected through a colour change. The other old outputs are closed first (a GPIO
        pin or an SPI device can have one owner only), then `build_outputs()` makes their
        replacements. New listener parameters end the sounding note (its note-off goes to the
        old outputs) and a new listener starts with the next block; unchanged parameters keep
        the listener, so a colour change does not cut a note short.
        """
        if params != self.params:
            self._end_listener()
            self.params = params
        kept_ids = {id(output) for output in keep}
        kept = [output for output in self.outputs if id(output) in kept_ids]
        self._close_outputs([output for output in self.outputs if id(output) not in kept_ids])
        self.outputs = kept
        self.outputs = kept + list(build_outputs())
        self.stats.reloads += 1

    # -- the listener on the daemon's clock ------------------------------------------------------
    def _listening(self) -> NoteListener | PolyListener:
        if self._listener is None:
            self._listener = make_listener(self.sample_rate, self.params)
            self._listener_start_s = self._stream_s
            self._consumed = 0
        return self._listener

    def _on_clock(self, event: Event) -> Event:
        return _shifted(event, self._listener_start_s)

    def _end_listener(self) -> None:
        """Flush the listener (its sounding note ends now) so the next audio starts afresh."""
        if self._listener is not None:
            self._dispatch([self._on_clock(e) for e in self._listener.flush()])
            self._listener = None

    def _no_audio(self, seconds: float) -> None:
        # Audio before and after a gap do not join up: a new listener starts when it returns.
        self._end_listener()
        self._stream_s += seconds
        self.stats.no_audio_s += seconds
        self._tick(self._stream_s)

    # -- fan-out, with failing outputs dropped -------------------------------------------------
    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            self.stats.events += 1
            if isinstance(event, NoteOn):
                self.stats.notes += 1
            for output in list(self.outputs):
                if self.alerts is None or self.alerts.wants(output.name, event):
                    self._call(output, output.handle, event)

    def _tick(self, stream_s: float) -> None:
        for output in list(self.outputs):
            self._call(output, output.tick, stream_s)

    def _call(self, output: Output, method: Callable[..., None], *args: object) -> None:
        try:
            method(*args)
        except (OutputError, OSError) as exc:
            # One clear line, then carry on without it: the pianist keeps the other outputs.
            log.error("%s output stopped: %s", output.name, _reason(exc, output.name))
            self._drop(output)
        except Exception:
            # A bug in one output must not take the listening (and the other outputs) down.
            log.exception("%s output stopped by an unexpected error (a bug)", output.name)
            self._drop(output)

    def _drop(self, output: Output) -> None:
        if output in self.outputs:
            self.outputs.remove(output)
            self.stats.failed_outputs.append(output.name)
            try:
                output.close()
            except Exception:  # already failed; its close may fail too, and that is expected
                log.debug("closing failed output %s", output.name, exc_info=True)

    def _close_outputs(self, outputs: Sequence[Output] | None = None) -> None:
        for output in self.outputs if outputs is None else outputs:
            try:
                output.close()
            except (OutputError, OSError) as exc:
                log.error("%s output did not close cleanly: %s", output.name, exc)
