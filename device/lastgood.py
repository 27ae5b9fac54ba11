"""The daemon's copy of its last good config, so that a mistake in the config does not stop the
appliance at the next boot.

Whenever the daemon starts or reloads with a valid config file, it keeps a copy of that file's
text as `last-good.toml` in its state folder (`[mqtt].state_dir`; under systemd
$STATE_DIRECTORY, /var/lib/notesight). When the config is invalid at the start, `notesight run`
logs exactly what is wrong and starts with that copy, or with the built-in defaults when there
is none, and says which. The pianist keeps the LEDs and the OLED; the caretaker fixes the file
and reloads (`sudo systemctl reload notesight`).

The copy is written only when it changed (SD-card wear) and atomically (a temporary file in the
same folder, then a rename): a power cut leaves the old copy or the new one, never half of one.
A copy that cannot be written (full disk, no permission) is logged and the daemon goes on.

Only the daemon proper (a microphone run) does this: `notesight run --input FILE` is a one-off
analysis that still stops at a bad config and leaves the state folder alone.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import tomllib
from contextlib import suppress
from pathlib import Path

from .config import Settings, default_config_path, load_settings_text, parse_settings
from .errors import ConfigError, explain_os_error
from .outbox import default_state_dir

log = logging.getLogger(__name__)

LAST_GOOD_FILE = "last-good.toml"


def last_good_path(settings: Settings) -> Path:
    """Where the copy of a valid config is kept: in the state folder that config names."""
    return default_state_dir(settings.mqtt.state_dir) / LAST_GOOD_FILE


def save_last_good(text: str, path: Path) -> bool:
    """Keep `text` (a config that validated) as `path`; False (logged) when it cannot be."""
    data = text.encode("utf-8")
    with suppress(OSError):
        if path.read_bytes() == data:
            return True  # unchanged: nothing to write
    temporary: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{LAST_GOOD_FILE}.", suffix=".tmp", dir=path.parent
        )
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        temporary = None
        _sync_folder(path.parent)
    except OSError as exc:
        log.error(
            "could not save the config as the last good one: %s (or set [mqtt].state_dir); "
            "notesight runs on, but a mistake in the config at the next start falls back to "
            "an older copy or the built-in defaults",
            explain_os_error(exc, exc.filename or path, "last good config"),
        )
        return False
    finally:
        if temporary is not None:
            with suppress(OSError):
                os.unlink(temporary)
    log.info("config saved as the last good one: %s", path)
    return True


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (the folder's entry), as far as the system allows."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename is still atomic
    finally:
        os.close(handle)


def startup_settings(path: Path | None) -> Settings:
    """The settings the daemon starts with: the config file when it is valid (kept as the last
    good one), else the last good config, else the built-in defaults; never a ConfigError."""
    try:
        settings, text = load_settings_text(path)
    except ConfigError as exc:
        return _fall_back(exc, path)
    if text is not None:
        save_last_good(text, last_good_path(settings))
    return settings


def _fall_back(error: ConfigError, path: Path | None) -> Settings:
    log.error("config not used: %s", "; ".join(str(error).splitlines()))
    last_good = default_state_dir(_state_dir_hint(path)) / LAST_GOOD_FILE
    try:
        saved_at = last_good.stat().st_mtime
        text = last_good.read_bytes().decode("utf-8")
        settings = parse_settings(text, str(last_good))
    except FileNotFoundError:
        log.warning(
            "starting with the built-in defaults: there is no last good config (%s); fix the "
            "config, then: sudo systemctl reload notesight",
            last_good,
        )
        return Settings()
    except (OSError, UnicodeDecodeError, ConfigError) as exc:
        reason = (
            explain_os_error(exc, last_good, "last good config")
            if isinstance(exc, OSError)
            else "; ".join(str(exc).splitlines())
        )
        log.error("last good config not usable either: %s", reason)
        log.warning(
            "starting with the built-in defaults; fix the config, then: "
            "sudo systemctl reload notesight"
        )
        return Settings()
    saved = time.strftime("%Y-%m-%d %H:%M", time.localtime(saved_at))
    log.warning(
        "starting with the last good config %s (saved %s); fix the config, then: "
        "sudo systemctl reload notesight",
        last_good,
        saved,
    )
    return settings


def _state_dir_hint(path: Path | None) -> str:
    """[mqtt].state_dir of a config that did not validate, when it can still be read there
    ("" otherwise: the default state folder)."""
    try:
        source = path if path is not None else default_config_path()
        if source is None:
            return ""
        value = tomllib.loads(source.read_text(encoding="utf-8")).get("mqtt", {}).get("state_dir")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""
