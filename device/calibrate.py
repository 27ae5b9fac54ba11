"""`notesight calibrate-leds`: light A0, C4 and C8 on the strip, let the caretaker move each
light onto its key, and write the result to the config file, keeping every comment.

Keys: 1, 2, 3 (or Tab) choose A0, C4 or C8; left/right arrows (or a/d, -/+) move the chosen
light by one LED, A/D by ten; s saves, q quits without saving. A0 and C8 become a0_led and
c8_led; C4 becomes a shift in `offsets` (the map is bent there), which replaces any offsets
the file had. `--a0 N --c4 N --c8 N` writes the same without the interactive part.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from .config import ETC_CONFIG, SHIPPED_CONFIG, LedSettings, parse_settings
from .errors import NotesightError, explain_os_error
from .leds import KeyMap, straight_centre

ANCHORS = (("A0", 21, (255, 0, 0)), ("C4", 60, (0, 255, 0)), ("C8", 108, (0, 0, 255)))
_MOVES = {"left": -1, "a": -1, "-": -1, "right": 1, "d": 1, "+": 1, "A": -10, "D": 10}


@dataclass
class Calibration:
    """Where the three anchor lights are, and which one the keys move."""

    led_count: int
    positions: list[int]  # LED index of A0, C4, C8
    selected: int = 0
    saved: bool = field(default=False)

    @classmethod
    def from_settings(cls, settings: LedSettings) -> Calibration:
        centres = KeyMap.from_settings(settings).centres
        positions = [min(max(round(centres[m]), 0), settings.led_count - 1) for _, m, _ in ANCHORS]
        return cls(settings.led_count, positions)

    def key(self, key: str) -> bool:
        """Apply one key press; False when calibration is over (saved or quit)."""
        if key in ("1", "2", "3"):
            self.selected = int(key) - 1
        elif key == "\t":
            self.selected = (self.selected + 1) % len(ANCHORS)
        elif key in _MOVES:
            moved = self.positions[self.selected] + _MOVES[key]
            self.positions[self.selected] = min(max(moved, 0), self.led_count - 1)
        elif key == "s":
            self.saved = True
            return False
        elif key in ("q", "\x1b", "\x03"):
            return False
        return True

    def frame(self) -> np.ndarray:
        """The three lights; the chosen one bright, the others dimmer."""
        frame = np.zeros((self.led_count, 3), np.uint8)
        for i, (_, _, colour) in enumerate(ANCHORS):
            scale = 1.0 if i == self.selected else 0.25
            frame[self.positions[i]] = np.maximum(
                frame[self.positions[i]], (np.array(colour) * scale).astype(np.uint8)
            )
        return frame

    def status(self) -> str:
        parts = []
        for i, (name, _, _) in enumerate(ANCHORS):
            text = f"{name} LED {self.positions[i]}"
            parts.append(f"[{text}]" if i == self.selected else f" {text} ")
        return "  ".join(parts)

    def result(self) -> dict[str, object]:
        """The [leds] keys to write."""
        a0, c4, c8 = self.positions
        if a0 == c8:
            raise NotesightError("A0 and C8 cannot be on the same LED: move one of them")
        shift = round(c4 - straight_centre(60, a0, c8, 0.0, "up"))
        return {
            "a0_led": a0,
            "c8_led": c8,
            "leds_per_metre": 0.0,
            "offsets": {"C4": shift} if shift else {},
        }


def run_calibration(calibration: Calibration, keys: Iterable[str], backend, out: IO[str]) -> bool:
    """Show the lights, apply keys until saved or quit; True if saved."""
    terminal_strip = getattr(backend, "name", "") == "terminal"

    def show() -> None:
        out.write("\r\x1b[K" + calibration.status())
        if terminal_strip:  # the strip is drawn on the line below the status
            out.write("\n")
            out.flush()
            backend.show(calibration.frame(), 0.0)
            out.write("\x1b[1A")
        else:
            backend.show(calibration.frame(), 0.0)
        out.flush()

    show()
    for key in keys:
        if not calibration.key(key):
            break
        show()
    out.write("\n\n" if terminal_strip else "\n")
    return calibration.saved


def read_keys(stream: IO[str]) -> Iterator[str]:
    """Key presses from a terminal, one at a time (arrow keys as "left"/"right")."""
    import termios
    import tty

    fd = stream.fileno()
    before = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        while True:
            char = os.read(fd, 1).decode(errors="ignore")
            if char == "\x1b":
                rest = os.read(fd, 2).decode(errors="ignore")
                yield {"[D": "left", "[C": "right"}.get(rest, "\x1b")
            elif char:
                yield char
            else:
                return
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, before)


# ---------------------------------------------------------------------------------------------
# Writing the config
# ---------------------------------------------------------------------------------------------


def calibration_target(config: Path | None, default: Path | None) -> Path:
    """Which file to write: the one asked for, else the one in use; never the documented
    defaults in the checkout (its copy in /etc/notesight is written instead)."""
    if config is not None:
        return config
    if default is None or default.resolve() == SHIPPED_CONFIG.resolve():
        return ETC_CONFIG
    return default


def updated_config_text(text: str, values: dict[str, object]) -> str:
    """The TOML text with the [leds] keys set to `values`; comments and layout kept (tomlkit
    edits the parsed document in place; only the changed values are rewritten)."""
    import tomlkit

    document = tomlkit.parse(text)
    if "leds" not in document:
        document.add(tomlkit.nl())
        document.add("leds", tomlkit.table())
    leds = document["leds"]
    for key, value in values.items():
        if isinstance(value, dict):
            table = tomlkit.inline_table()
            table.update(value)
            value = table
        leds[key] = value  # type: ignore[index]
    return tomlkit.dumps(document)


def write_calibration(path: Path, values: dict[str, object]) -> None:
    """Write the calibration into `path` (a copy of the shipped config when it is new),
    validated first and replaced atomically, so a failure leaves the old file whole."""
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else SHIPPED_CONFIG.read_text()
    except OSError as exc:
        raise NotesightError(explain_os_error(exc, path, "config file")) from None
    new_text = updated_config_text(text, values)
    parse_settings(new_text, str(path))  # a ConfigError here is a bug, not the caretaker's
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=".calibrate-", delete=False
        ) as tmp:
            tmp.write(new_text)
        os.chmod(tmp.name, mode)
        os.replace(tmp.name, path)
    except OSError as exc:
        hint = " (run it with sudo to write under /etc)" if str(path).startswith("/etc") else ""
        raise NotesightError(explain_os_error(exc, path, "config file") + hint) from None


def calibrate_leds(
    settings: LedSettings,
    target: Path,
    anchors: tuple[int | None, int | None, int | None],
    out: IO[str] | None = None,
) -> int:
    """The command: with all three anchors given, write them; otherwise calibrate live."""
    out = out or sys.stdout
    calibration = Calibration.from_settings(settings)
    if all(a is not None for a in anchors):
        for i, value in enumerate(anchors):
            if not 0 <= value < settings.led_count:  # type: ignore[operator]
                name = ANCHORS[i][0]
                raise NotesightError(
                    f"--{name.lower()} {value}: must be an LED index from 0 to "
                    f"{settings.led_count - 1} ([leds].led_count is {settings.led_count})"
                )
        calibration.positions = [int(a) for a in anchors]  # type: ignore[arg-type]
    elif any(a is not None for a in anchors):
        raise NotesightError("give all three of --a0, --c4 and --c8, or none to calibrate live")
    else:
        if not sys.stdin.isatty():
            raise NotesightError(
                "calibrate-leds is interactive: run it in a terminal, or give --a0, --c4 and --c8"
            )
        if not _live(calibration, settings, out):
            out.write("not saved\n")
            return 1
    values = calibration.result()
    write_calibration(target, values)
    out.write(
        f"wrote a0_led = {values['a0_led']}, c8_led = {values['c8_led']}, "
        f"offsets = {values['offsets']} to [leds] in {target}\n"
    )
    return 0


def _live(calibration: Calibration, settings: LedSettings, out: IO[str]) -> bool:
    from .feedback import led_backend

    backend = led_backend(settings, out)
    if backend is None:
        raise NotesightError(
            'calibrate-leds needs the LED strip: set [leds].backend (to "spi", "ws281x", '
            '"ddp", or "terminal" in a terminal)'
        )
    out.write(
        "Move each light onto its key: 1/2/3 choose A0 (red), C4 (green), C8 (blue); "
        "left/right move by one LED, A/D by ten; s saves, q quits.\n"
    )
    try:
        return run_calibration(calibration, read_keys(sys.stdin), backend, out)
    finally:
        backend.close()
