"""`notesight demo` as the daemon would run it: the listener's events go to a live terminal LED
strip (when stdout is a terminal) and to a printer that writes one line per finished note."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import IO

import numpy as np

from notesight.dsp.events import Event, NoteOn

from .config import LedSettings
from .daemon import Daemon
from .note_model import ListeningParams
from .transcribe import Note, whole_notes


class NotePrinter:
    """An output that pairs note-on and note-off into a `Note` and prints it when it ends.
    With the terminal strip on the same line, the strip's line is wiped first; the strip
    draws itself again with its next frame."""

    name = "printer"

    def __init__(self, print_note: Callable[[Note], None], clear_line: Callable[[], None]) -> None:
        self._print_note = print_note
        self._clear_line = clear_line
        self._sounding: dict[int, NoteOn] = {}
        self.notes: list[Note] = []

    def handle(self, event: Event) -> None:
        for done in whole_notes([event], self._sounding):
            self._clear_line()
            self._print_note(done)
            self.notes.append(done)

    def tick(self, stream_s: float) -> None:
        return None  # lines are printed as notes end

    def close(self) -> None:
        return None


def run_demo(
    blocks: Iterable[np.ndarray],
    sample_rate: int,
    params: ListeningParams,
    print_note: Callable[[Note], None],
    leds: LedSettings,
    terminal: IO[str] | None,
) -> list[Note]:
    """Listen to `blocks`; with a `terminal`, draw the LED strip in it as the notes sound."""
    from .led_backends import TerminalBackend
    from .leds import LedStrip

    outputs: list = []
    backend = TerminalBackend(terminal) if terminal is not None else None
    if backend is not None:
        outputs.append(LedStrip(leds, backend))
    printer = NotePrinter(print_note, backend.clear if backend else lambda: None)
    outputs.append(printer)
    Daemon(sample_rate, outputs, params=params).run(blocks)
    return printer.notes
