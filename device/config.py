"""The notesight config file: TOML in, validated frozen settings out.

`config/notesight.toml` in the checkout documents every key and holds exactly the built-in
defaults. Every problem with a config file is raised as `ConfigError` with one line per problem,
written for the caretaker::

    /etc/notesight/config.toml: [audio].sample_rate: must be one of 44100, 48000 (got 22050)

Adding a section is a one-class change: write a `_Section` subclass with its keys (type, default,
bounds or `Literal` choices; `Field(json_schema_extra={"rule": ...})` for a hand-written rule)
and add it as a field of `Settings`. The error messages are derived from the field definitions.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from notesight.device.errors import ConfigError, explain_os_error
from notesight.dsp.music import NOTE_NAMES, PIANO_HIGHEST_MIDI, PIANO_LOWEST_MIDI, midi_to_name

__all__ = [
    "CONFIG_ENV_VAR",
    "ETC_CONFIG",
    "SHIPPED_CONFIG",
    "AudioSettings",
    "ListenSettings",
    "LogSettings",
    "Settings",
    "config_search_paths",
    "default_config_path",
    "load_settings",
    "parse_settings",
]

CONFIG_ENV_VAR = "NOTESIGHT_CONFIG"
ETC_CONFIG = Path("/etc/notesight/config.toml")
# The documented default config in the checkout (device/ -> repository root -> config/).
SHIPPED_CONFIG = Path(__file__).resolve().parent.parent / "config" / "notesight.toml"

# ---------------------------------------------------------------------------------------------
# Note names
# ---------------------------------------------------------------------------------------------

_NOTE_RE = re.compile(r"^([A-Ga-g])([#b]?)(-?\d{1,2})$")
_ACCIDENTAL = {"": 0, "#": 1, "b": -1}
_NOTE_RULE = (
    f"must be a note name from {midi_to_name(PIANO_LOWEST_MIDI)} to "
    f'{midi_to_name(PIANO_HIGHEST_MIDI)}, like "C4", "F#3" or "Bb2"'
)


def _note_name_to_midi(name: str) -> int:
    """'A4' -> 69, 'C#4'/'Db4' -> 61, 'c4' -> 60; ValueError for anything else or off the piano."""
    match = _NOTE_RE.match(name.strip())
    if match is None:
        raise ValueError(f"not a note name: {name!r}")
    letter, accidental, octave = match.groups()
    midi = (int(octave) + 1) * 12 + NOTE_NAMES.index(letter.upper()) + _ACCIDENTAL[accidental]
    if not PIANO_LOWEST_MIDI <= midi <= PIANO_HIGHEST_MIDI:
        raise ValueError(f"not a piano key: {name!r}")
    return midi


def _problem(text: str) -> PydanticCustomError:
    """A validation error whose text is used verbatim instead of the field's rule."""
    return PydanticCustomError("notesight", "{problem}", {"problem": text})


# ---------------------------------------------------------------------------------------------
# The settings
# ---------------------------------------------------------------------------------------------


class _Section(BaseModel):
    # strict: TOML values are typed, so "48000" (a string) is an error, not silently a number.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class AudioSettings(_Section):
    """[audio]: where the sound comes from."""

    device: str = Field(
        "",
        json_schema_extra={
            "rule": 'must be a string: "" for the system default input, a device index '
            'like "2", or part of the device name'
        },
    )
    sample_rate: Literal[44100, 48000] = 48000
    block_size: Literal[128, 256, 512, 1024] = 512


class ListenSettings(_Section):
    """[listen]: how notes are heard."""

    a4_hz: float = Field(440.0, ge=415.0, le=466.0)
    lowest_note: str = Field("A0", json_schema_extra={"rule": _NOTE_RULE})
    highest_note: str = Field("C8", json_schema_extra={"rule": _NOTE_RULE})
    min_level_dbfs: float = Field(-70.0, ge=-100.0, le=0.0)
    onset_sensitivity: float = Field(0.5, ge=0.0, le=1.0)

    @field_validator("lowest_note", "highest_note")
    @classmethod
    def _canonical_note_name(cls, value: str) -> str:
        # ValueError -> the field's rule; the stored name is canonical (sharps, "Bb2" -> "A#2").
        return midi_to_name(_note_name_to_midi(value))

    @field_validator("highest_note")
    @classmethod
    def _above_lowest(cls, value: str, info: ValidationInfo) -> str:
        lowest = info.data.get("lowest_note")  # absent when lowest_note itself was invalid
        if lowest is not None and _note_name_to_midi(value) <= _note_name_to_midi(lowest):
            raise _problem(f'must be higher than lowest_note "{lowest}"')
        return value

    @property
    def lowest_midi(self) -> int:
        return _note_name_to_midi(self.lowest_note)

    @property
    def highest_midi(self) -> int:
        return _note_name_to_midi(self.highest_note)


class LogSettings(_Section):
    """[log]: what the daemon writes to its log."""

    level: Literal["debug", "info", "warning", "error"] = "info"


class Settings(_Section):
    """The whole config file; one field per [section]."""

    audio: AudioSettings = Field(default_factory=AudioSettings)
    listen: ListenSettings = Field(default_factory=ListenSettings)
    log: LogSettings = Field(default_factory=LogSettings)


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------

_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def _toml(value: Any, limit: int = 60) -> str:
    """A value the way it would be written in TOML, shortened for a message."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, float):
        text = repr(value)  # 440.0, -inf, nan: the TOML spelling too
    elif isinstance(value, dict):
        text = "a table"
    elif isinstance(value, list):
        text = "[" + ", ".join(_toml(item, limit) for item in value) + "]"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _field_rule(section: type[BaseModel], key: str) -> str:
    """What a key accepts, derived from its field definition."""
    field = section.model_fields[key]
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "rule" in extra:
        return str(extra["rule"])
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return "must be one of " + ", ".join(_toml(choice) for choice in get_args(annotation))
    kind = _TYPE_WORDS.get(annotation, f"a {getattr(annotation, '__name__', annotation)}")
    low = high = None
    for meta in field.metadata:  # annotated_types.Ge / Le from Field(ge=..., le=...)
        low = getattr(meta, "ge", low)
        high = getattr(meta, "le", high)
    if low is not None and high is not None:
        return f"must be {kind} from {_bound(low)} to {_bound(high)}"
    if low is not None:
        return f"must be {kind} of at least {_bound(low)}"
    if high is not None:
        return f"must be {kind} of at most {_bound(high)}"
    return f"must be {kind}"


def _is_numeric(section: type[BaseModel], key: str) -> bool:
    annotation = section.model_fields[key].annotation
    if get_origin(annotation) is Literal:
        return all(isinstance(choice, int | float) for choice in get_args(annotation))
    return annotation in (int, float)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _sections() -> dict[str, type[BaseModel]]:
    return {name: field.annotation for name, field in Settings.model_fields.items()}


def _allowed_sections() -> str:
    return ", ".join(f"[{name}]" for name in _sections())


def _error_line(source: str, error: ErrorDetails) -> str:
    """One pydantic error entry -> `FILE: [section].key: problem (got X)`."""
    loc = error["loc"]
    sections = _sections()
    value = error.get("input")
    if len(loc) == 1:
        name = str(loc[0])
        if error["type"] == "extra_forbidden":
            if isinstance(value, dict):
                return (
                    f"{source}: [{name}]: unknown section; allowed sections: {_allowed_sections()}"
                )
            return (
                f"{source}: {name}: key outside any section; "
                f"put it under one of {_allowed_sections()}"
            )
        return f"{source}: [{name}]: must be a section, written [{name}] (got {_toml(value)})"
    name, key = str(loc[0]), str(loc[1])
    section = sections[name]
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(section.model_fields)
        return f"{source}: [{name}].{key}: unknown key; allowed keys: {allowed}"
    if error["type"] == "notesight":
        problem = error["ctx"]["problem"]
    else:
        problem = _field_rule(section, key)
        if isinstance(value, str) and _is_numeric(section, key) and _looks_numeric(value):
            problem += ", written without quotes"
    return f"{source}: [{name}].{key}: {problem} (got {_toml(value)})"


# ---------------------------------------------------------------------------------------------
# Parsing and loading
# ---------------------------------------------------------------------------------------------

_TOML_POSITION = re.compile(r"^(?P<msg>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)$")
_TOML_AT_END = re.compile(r"^(?P<msg>.*?)\s*\(at end of document\)$")


def _toml_error(source: str, text: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    message = str(exc)
    match = _TOML_POSITION.match(message)
    if match:
        line, column, problem = match["line"], match["col"], match["msg"]
    elif match := _TOML_AT_END.match(message):
        lines = text.split("\n")
        line, column, problem = str(len(lines)), str(len(lines[-1]) + 1), match["msg"]
    else:
        return ConfigError(f"{source}: invalid TOML: {message}")
    return ConfigError(f"{source}: line {line}, column {column}: invalid TOML: {problem}")


def parse_settings(text: str, source: str) -> Settings:
    """Parse TOML `text`; `source` names it (a path) in every error message."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(source, text, exc) from None
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        lines = [_error_line(source, error) for error in exc.errors()]
        raise ConfigError("\n".join(lines)) from None


def config_search_paths() -> list[Path]:
    """The files `load_settings(None)` looks for, in order."""
    env = os.environ.get(CONFIG_ENV_VAR, "")
    return [*([Path(env)] if env else []), ETC_CONFIG, SHIPPED_CONFIG]


def default_config_path() -> Path | None:
    """The config file `load_settings(None)` reads, or None when it uses the built-in defaults.

    Order: $NOTESIGHT_CONFIG (when set, it is used even if the file is missing, which is then
    an error), /etc/notesight/config.toml, config/notesight.toml in the checkout.
    """
    env = os.environ.get(CONFIG_ENV_VAR, "")
    if env:
        return Path(env)
    for path in config_search_paths():
        if path.exists():
            return path
    return None


def _read(path: Path, note: str = "") -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(explain_os_error(exc, path, "config file") + note) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8"
        ) from None


def load_settings(path: Path | None = None) -> Settings:
    """Read and validate a config file; None -> the search order of `default_config_path()`.

    With no file anywhere in the search order, the built-in defaults are returned.
    """
    note = ""
    if path is None:
        path = default_config_path()
        if path is None:
            return Settings()
        if os.environ.get(CONFIG_ENV_VAR, ""):
            note = f" (named by ${CONFIG_ENV_VAR})"
    path = Path(path)
    return parse_settings(_read(path, note), str(path))
