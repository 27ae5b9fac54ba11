"""What the daemon drives: the `Output` interface, the shared device status, and the factory
that builds the outputs the config asks for.

Every output gets the same calls from the daemon's single loop, in stream order:
`handle(event)` for each event as soon as it leaves the pipeline (a note-on must reach the LEDs
at once, not at the next frame), `tick(stream_s)` once per audio block (fades, frame pacing,
metronome), and `close()` at the end. None of them may block the loop: an output whose device is
slow (OLED over I2C, MQTT over the network) hands work to its own thread, with a stop event,
joined in `close()`.

An output that fails (no /dev/spidev0.0, I2C address not answering, permission denied) raises
`OutputError` with a message naming the fix; the daemon logs it once and goes on without it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from notesight.dsp.events import Alert, Chord, Event, Level, NoteOff, NoteOn

from .errors import OutputError, explain_os_error


@runtime_checkable
class Output(Protocol):
    name: str

    def handle(self, event: Event) -> None: ...

    def tick(self, stream_s: float) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class OutputPart:
    """One output the config asks for (or a family of them), not yet opened.

    `key` is everything `build()` makes it from (its config section, ...). A config reload whose
    part has an equal key keeps the open output as it is, so a colour change does not take the
    MQTT connection down; a part whose key changed is closed and built again. `kept`, when set,
    is told about a reload that kept the outputs (to publish the new config's hash, ...).
    """

    name: str
    key: object
    build: Callable[[], list[Output]]
    kept: Callable[[list[Output]], None] | None = None


@dataclass
class DeviceStatus:
    """What the status line shows, written by the part that knows and read by the displays.

    One writer per field (the audio loop, the MQTT thread); readers take a `snapshot()`, so a
    display never sees a half-updated status.
    """

    mic_ok: bool = True
    mic_name: str = ""
    dropped_blocks: int = 0
    mqtt_enabled: bool = False
    mqtt_connected: bool = False
    mqtt_queued: int = 0
    alert: str = ""
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def update(self, **changes: object) -> None:
        with self._lock:
            for key, value in changes.items():
                if key.startswith("_") or not hasattr(self, key):
                    raise AttributeError(f"DeviceStatus has no field {key!r}")
                setattr(self, key, value)

    def snapshot(self) -> DeviceStatus:
        with self._lock:
            values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        return DeviceStatus(**values)


def open_simulator_log(path: Path, who: str) -> IO[str]:
    """The JSON-lines file a simulated output writes (`who`: "LED simulator", ...), or an
    OutputError saying why it cannot be written."""
    try:
        return path.open("w", encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{who}: " + explain_os_error(exc, path, "output file")) from None


def event_kind(event: Event) -> str:
    """The name of an event on the wire: note_on, note_off, level, chord, alert."""
    kinds: dict[type, str] = {
        NoteOn: "note_on",
        NoteOff: "note_off",
        Level: "level",
        Chord: "chord",
        Alert: "alert",
    }
    return kinds[type(event)]


def event_dict(event: Event) -> dict:
    """An event as a JSON-ready dict with its kind under "event"."""
    data = asdict(event)
    if isinstance(event, Chord):
        data["midis"] = list(event.midis)
    if isinstance(event, Alert):
        # "class" on the wire, as in MQTT and `classify --jsonl`; `Alert.label` in Python,
        # where `class` is a keyword.
        data = {"class": data.pop("label"), **data}
    return {"event": event_kind(event), **data}


class JsonlEvents:
    """Writes every event except levels as one JSON line (the `run` command's stdout log)."""

    name = "events"

    def __init__(self, stream: IO[str], *, levels: bool = False) -> None:
        self._stream = stream
        self._levels = levels
        self.written = 0

    def handle(self, event: Event) -> None:
        if isinstance(event, Level) and not self._levels:
            return
        self._stream.write(json.dumps(event_dict(event)) + "\n")
        self.written += 1

    def tick(self, stream_s: float) -> None:
        return None  # nothing time-driven: lines are written as events arrive

    def close(self) -> None:
        self._stream.flush()
