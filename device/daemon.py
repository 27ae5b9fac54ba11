"""The daemon: one linear loop from audio blocks to outputs.

Blocks come in (microphone or file), the listener turns them into note events, a level event is
added every `level_interval_s`, and every output gets each event at once and a `tick` per block.
There are no threads here: outputs that talk to slow devices keep their own (see `outputs.py`).
Everything runs on stream time (seconds of audio consumed), so a file run with `--fast` produces
exactly what the live daemon would have shown, only sooner.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from notesight.dsp.events import Event, Level, NoteOn
from notesight.dsp.listener import ListenerParams, NoteListener

from .errors import OutputError
from .outputs import DeviceStatus, Output

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    """What a run did, for the closing log line and the tests."""

    blocks: int = 0
    stream_s: float = 0.0
    notes: int = 0
    events: int = 0
    failed_outputs: list[str] = field(default_factory=list)


class Daemon:
    """Wires the listener to the outputs. `run(blocks)` returns when the blocks end or `stop`
    is set; the outputs are closed either way."""

    def __init__(
        self,
        sample_rate: int,
        outputs: Sequence[Output],
        *,
        params: ListenerParams | None = None,
        status: DeviceStatus | None = None,
        stop: threading.Event | None = None,
        level_interval_s: float = 0.05,
        on_block: Callable[[RunStats], None] | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.outputs: list[Output] = list(outputs)
        self.status = status or DeviceStatus()
        self.stop = stop or threading.Event()
        self._listener = NoteListener(sample_rate, params)
        self._level_interval_s = level_interval_s
        self._on_block = on_block
        self.stats = RunStats()

    def run(self, blocks: Iterable[np.ndarray]) -> RunStats:
        consumed = 0
        next_level_s = 0.0
        try:
            for block in blocks:
                if self.stop.is_set():
                    break
                events: list[Event] = list(self._listener.feed(block))
                consumed += len(block)
                stream_s = consumed / self.sample_rate
                if stream_s >= next_level_s:
                    listener = self._listener
                    events.append(Level(listener.level_dbfs, listener.floor_dbfs, stream_s))
                    next_level_s = stream_s + self._level_interval_s
                self._dispatch(events)
                self._tick(stream_s)
                self.stats.blocks += 1
                self.stats.stream_s = stream_s
                if self._on_block is not None:
                    self._on_block(self.stats)
            self._dispatch(list(self._listener.flush()))
        finally:
            self._close_outputs()
        return self.stats

    # -- fan-out, with failing outputs dropped -------------------------------------------------
    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            self.stats.events += 1
            if isinstance(event, NoteOn):
                self.stats.notes += 1
            for output in list(self.outputs):
                self._call(output, output.handle, event)

    def _tick(self, stream_s: float) -> None:
        for output in list(self.outputs):
            self._call(output, output.tick, stream_s)

    def _call(self, output: Output, method: Callable[..., None], *args: object) -> None:
        try:
            method(*args)
        except (OutputError, OSError) as exc:
            # One clear line, then carry on without it: the pianist keeps the other outputs.
            log.error("%s output stopped: %s", output.name, exc)
            self.outputs.remove(output)
            self.stats.failed_outputs.append(output.name)
            try:
                output.close()
            except Exception:  # already failed; its close may fail too, and that is expected
                log.debug("closing failed output %s", output.name, exc_info=True)

    def _close_outputs(self) -> None:
        for output in self.outputs:
            try:
                output.close()
            except (OutputError, OSError) as exc:
                log.error("%s output did not close cleanly: %s", output.name, exc)
