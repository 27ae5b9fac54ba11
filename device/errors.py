"""One domain error hierarchy. Every message tells the caretaker what is wrong and what to do.

The CLI catches `NotesightError`, prints `notesight: <message>` and exits non-zero, so a
caretaker never sees a traceback for a problem they can fix.
"""

from __future__ import annotations

import errno
from pathlib import Path


class NotesightError(Exception):
    """Base of every error notesight reports to a person; `str(err)` is the whole message."""

    exit_code = 1


class ConfigError(NotesightError):
    """The config file is missing, unreadable or has invalid values."""

    exit_code = 2


class AudioError(NotesightError):
    """Audio could not be read: a bad file, a missing or busy microphone."""


class AudioFileError(AudioError):
    """An audio file is missing, unreadable, empty or not audio."""


class MicrophoneError(AudioError):
    """The microphone is missing, busy or does not support the asked format."""


class OutputError(NotesightError):
    """An output device (LEDs, OLED, motor, network) failed."""


class ModelError(NotesightError):
    """A model file is missing, corrupt or does not match what the config expects."""


# Hints for the device nodes a caretaker is most likely to meet; the generic hint covers the rest.
_DEVICE_HINTS = {
    "/dev/i2c": "enable I2C (sudo raspi-config nonint do_i2c 0) and add the user to group i2c",
    "/dev/spidev": "enable SPI (sudo raspi-config nonint do_spi 0) and add the user to group spi",
    "/dev/snd": "add the user to group audio",
    "/dev/gpiomem": "add the user to group gpio",
}


def _device_hint(path: str) -> str | None:
    for prefix, hint in _DEVICE_HINTS.items():
        if path.startswith(prefix):
            return hint
    return None


def explain_os_error(exc: OSError, path: str | Path, what: str) -> str:
    """Turn an OSError on `path` into one line that tells the caretaker what to do.

    `what` names the thing in the caretaker's words ("audio file", "LED strip (SPI)", ...).
    """
    path = str(path)
    hint = _device_hint(path)
    if exc.errno == errno.ENOENT:
        fix = hint or "check the path"
        return f"{what} {path} does not exist: {fix}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        fix = hint or "check the file's permissions"
        return f"no permission to open {what} {path}: {fix}"
    if exc.errno == errno.EBUSY:
        return f"{what} {path} is busy: another program is using it; stop that program"
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device holding {path}: free some space"
    if exc.errno == errno.EISDIR:
        return f"{what} {path} is a folder, not a file"
    reason = exc.strerror or exc.__class__.__name__
    return f"cannot open {what} {path}: {reason}"
