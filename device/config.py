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
from notesight.dsp.alerts import ALERT_CLASSES, DEFAULT_THRESHOLDS
from notesight.dsp.music import NOTE_NAMES, PIANO_HIGHEST_MIDI, PIANO_LOWEST_MIDI, midi_to_name

__all__ = [
    "CONFIG_ENV_VAR",
    "ETC_CONFIG",
    "SHIPPED_CONFIG",
    "AlertSettings",
    "AudioSettings",
    "LedSettings",
    "ListenSettings",
    "LogSettings",
    "MotorSettings",
    "MqttSettings",
    "OledSettings",
    "Settings",
    "config_search_paths",
    "default_config_path",
    "load_settings",
    "load_settings_text",
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
    pipeline: Literal["mono", "poly"] = "mono"
    model: str = Field(
        "",
        json_schema_extra={
            "rule": 'must be a string: the path of a .tflite note model, "" for the shipped one'
        },
    )
    chord_debounce_s: float = Field(0.06, ge=0.0, le=2.0)

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


_MQTT_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MQTT_NAME_RULE = '1 to 64 letters, digits, "-" or "_" (it is part of the MQTT topics)'
_TOPIC_PREFIX_RULE = (
    'must be a non-empty MQTT topic like "notesight" or "home/piano", without "+", "#" and '
    'without a leading or trailing "/"'
)


class MqttSettings(_Section):
    """[mqtt]: publishing what the piano heard to an MQTT broker (see device/mqtt.py)."""

    enabled: bool = False
    host: str = Field(
        "localhost", json_schema_extra={"rule": "must be a broker host name or IP address"}
    )
    port: int = Field(1883, ge=1, le=65535)
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    client_id: str = Field(
        "", json_schema_extra={"rule": 'must be a string: "" for "notesight-<device_id>"'}
    )
    device_id: str = Field(
        "",
        json_schema_extra={"rule": f'must be "" (from the host name) or {_MQTT_NAME_RULE}'},
    )
    topic_prefix: str = Field("notesight", json_schema_extra={"rule": _TOPIC_PREFIX_RULE})
    username: str = Field("", json_schema_extra={"rule": 'must be a string: "" for no login'})
    password_file: str = Field(
        "",
        json_schema_extra={
            "rule": 'must be a string: the path of a file holding the password, "" for none'
        },
    )
    tls: bool = False
    tls_ca_file: str = Field(
        "",
        json_schema_extra={
            "rule": 'must be a string: a CA certificate file (PEM), "" for the system CAs'
        },
    )
    tls_cert_file: str = Field(
        "",
        json_schema_extra={
            "rule": 'must be a string: a client certificate file (PEM), "" for none'
        },
    )
    tls_key_file: str = Field(
        "",
        json_schema_extra={"rule": 'must be a string: the client key file (PEM), "" for none'},
        validate_default=True,  # so a certificate without a key is caught
    )
    keepalive_s: int = Field(60, ge=5, le=3600)
    level_interval_s: float = Field(1.0, ge=0.1, le=3600.0)
    health_interval_s: float = Field(60.0, ge=1.0, le=86400.0)
    session_gap_s: float = Field(20.0, ge=1.0, le=3600.0)
    homeassistant: bool = True
    discovery_prefix: str = Field("homeassistant", json_schema_extra={"rule": _TOPIC_PREFIX_RULE})
    outbox_max_rows: int = Field(100_000, ge=100, le=10_000_000)
    outbox_max_age_s: float = Field(604_800.0, ge=60.0, le=31_536_000.0)
    max_in_flight: int = Field(100, ge=1, le=1000)
    drain_timeout_s: float = Field(10.0, ge=0.0, le=600.0)
    state_dir: str = Field(
        "",
        json_schema_extra={
            "rule": 'must be a string: a folder for the outbox, "" for $STATE_DIRECTORY, '
            "/var/lib/notesight or ~/.local/state/notesight"
        },
    )

    @field_validator("host")
    @classmethod
    def _host_not_empty(cls, value: str) -> str:
        if not value.strip() or any(c.isspace() for c in value):
            raise ValueError("empty or blank host")
        return value

    @field_validator("device_id")
    @classmethod
    def _device_id_topic_safe(cls, value: str) -> str:
        if value and not _MQTT_NAME_RE.match(value):
            raise ValueError("not topic-safe")
        return value

    @field_validator("topic_prefix", "discovery_prefix")
    @classmethod
    def _topic_prefix_valid(cls, value: str) -> str:
        parts = value.split("/")
        if not value or any(not part or "+" in part or "#" in part for part in parts):
            raise ValueError("not a topic prefix")
        return value

    @field_validator("tls_ca_file", "tls_cert_file", "tls_key_file")
    @classmethod
    def _tls_files_need_tls(cls, value: str, info: ValidationInfo) -> str:
        if value and info.data.get("tls") is False:
            raise _problem(f"needs tls = true (or remove {info.field_name})")
        return value

    @field_validator("tls_key_file")
    @classmethod
    def _cert_and_key_together(cls, value: str, info: ValidationInfo) -> str:
        cert = info.data.get("tls_cert_file")
        if cert is not None and bool(cert) != bool(value):
            raise _problem('tls_cert_file and tls_key_file must be set together (or both "")')
        return value


# LED strip, OLED and motor ([leds], [oled], [motor]); see device/leds.py, oled.py, motor.py.
_COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
_SPI_DEVICE_RE = re.compile(r"^/dev/spidev\d+\.\d+$")
_OFFSETS_RULE = (
    'must be a table of note names and LED shifts, like { C4 = 1, "F#6" = -2 }: '
    "note names from A0 to C8, shifts whole numbers from -100 to 100"
)
_PATTERN_RULE = (
    "must be a table of alert names and patterns, like { doorbell = [200, 150, 200] }: "
    "each pattern a list of 1 to 15 milliseconds (10 to 5000), on, off, on, ..."
)


class LedSettings(_Section):
    """[leds]: the LED strip along the keys."""

    backend: Literal["terminal", "spi", "ws281x", "ddp", "none"] = "terminal"
    led_count: int = Field(176, ge=1, le=2000)
    # validate_default: a shorter led_count with the default c8_led is reported, not lit off the end
    a0_led: int = Field(0, ge=0, le=1999, validate_default=True)
    c8_led: int = Field(175, ge=0, le=1999, validate_default=True)
    leds_per_metre: float = Field(0.0, ge=0.0, le=500.0)
    direction: Literal["up", "down"] = "up"
    offsets: dict[str, int] = Field(default_factory=dict, json_schema_extra={"rule": _OFFSETS_RULE})
    colour_scheme: Literal["pitch_class", "octave", "velocity", "single"] = "pitch_class"
    colour: str = Field(
        "#ff8000", json_schema_extra={"rule": 'must be a colour written "#rrggbb", like "#ff8000"'}
    )
    brightness: float = Field(0.5, ge=0.0, le=1.0)
    gamma: float = Field(2.2, ge=1.0, le=3.0)
    tuning_tint: bool = False
    in_tune_cents: float = Field(5.0, ge=0.0, le=50.0)
    chord_shared_colour: bool = True
    fade_db: float = Field(40.0, ge=10.0, le=90.0)
    release_s: float = Field(0.25, ge=0.0, le=5.0)
    fps: int = Field(60, ge=10, le=240)
    chip: Literal["ws2812", "sk6812"] = "ws2812"
    colour_order: Literal["GRB", "RGB", "BRG", "RBG", "GBR", "BGR", "GRBW", "RGBW"] = "GRB"
    spi_device: str = Field(
        "/dev/spidev0.0",
        json_schema_extra={"rule": 'must be an SPI device like "/dev/spidev0.0"'},
    )
    ws281x_pin: Literal[10, 12, 13, 18, 19, 21] = 18
    ws281x_dma: int = Field(10, ge=1, le=14)
    ddp_host: str = Field(
        "",
        validate_default=True,  # backend = "ddp" without a host is an error even when left out
        json_schema_extra={"rule": 'must be a host name or IP address, like "192.168.1.50"'},
    )
    ddp_port: int = Field(4048, ge=1, le=65535)

    @field_validator("a0_led", "c8_led")
    @classmethod
    def _on_the_strip(cls, value: int, info: ValidationInfo) -> int:
        count = info.data.get("led_count")  # absent when led_count itself was invalid
        if count is not None and value >= count:
            raise _problem(f"must be an LED index from 0 to {count - 1} (led_count is {count})")
        return value

    @field_validator("offsets")
    @classmethod
    def _offsets_at_keys(cls, value: dict[str, int]) -> dict[str, int]:
        canonical: dict[str, int] = {}
        for name, shift in value.items():
            try:
                midi = _note_name_to_midi(name)
            except ValueError:
                raise _problem(f'{_OFFSETS_RULE}; "{name}" is not a piano key') from None
            if not -100 <= shift <= 100:
                raise _problem(f"{_OFFSETS_RULE}; {name} = {shift} is out of range")
            canonical[midi_to_name(midi)] = shift
        return canonical

    @field_validator("colour")
    @classmethod
    def _hex_colour(cls, value: str) -> str:
        if not _COLOUR_RE.match(value):
            raise ValueError("not #rrggbb")
        return value.lower()

    @field_validator("spi_device")
    @classmethod
    def _spi_path(cls, value: str) -> str:
        if not _SPI_DEVICE_RE.match(value):
            raise ValueError("not an SPI device path")
        return value

    @field_validator("ddp_host")
    @classmethod
    def _host_for_ddp(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("backend") == "ddp" and not value.strip():
            raise _problem('must name the WLED device, like "192.168.1.50", when backend = "ddp"')
        return value.strip()


class OledSettings(_Section):
    """[oled]: the small display (SSD1306/SH1106 through luma.oled)."""

    enabled: bool = False
    driver: Literal["ssd1306", "sh1106"] = "ssd1306"
    size: Literal["128x64", "128x32"] = "128x64"
    interface: Literal["i2c", "spi"] = "i2c"
    i2c_port: int = Field(1, ge=0, le=30)
    i2c_address: int = Field(0x3C, ge=0x03, le=0x77)
    spi_port: int = Field(0, ge=0, le=6)
    spi_device: int = Field(0, ge=0, le=3)
    dc_pin: int = Field(24, ge=0, le=27)
    reset_pin: int = Field(25, ge=0, le=27)
    rotate: Literal[0, 2] = 0
    fps: int = Field(15, ge=1, le=15)

    @property
    def width(self) -> int:
        return int(self.size.split("x")[0])

    @property
    def height(self) -> int:
        return int(self.size.split("x")[1])


def _default_alert_patterns() -> dict[str, list[int]]:
    return {
        "default": [500, 250, 500],
        "doorbell": [150, 100, 150, 100, 600],
        "smoke_alarm": [700, 150, 700, 150, 700],
        "knock": [80, 120, 80, 120, 80],
    }


class MotorSettings(_Section):
    """[motor]: the vibration motor (gpiozero PWMOutputDevice)."""

    enabled: bool = False
    pin: int = Field(12, ge=0, le=27)
    pwm_hz: int = Field(200, ge=10, le=10000)
    tap: bool = True
    tap_ms: int = Field(40, ge=10, le=500)
    tap_min: float = Field(0.3, ge=0.0, le=1.0)
    metronome: Literal["off", "fixed", "follow"] = "off"
    bpm: float = Field(90.0, ge=20.0, le=300.0)
    beats_per_bar: int = Field(4, ge=1, le=12)
    beat_ms: int = Field(30, ge=10, le=500)
    beat_strength: float = Field(0.6, ge=0.0, le=1.0)
    alert_patterns: dict[str, list[int]] = Field(
        default_factory=_default_alert_patterns, json_schema_extra={"rule": _PATTERN_RULE}
    )
    alert_repeats: int = Field(3, ge=1, le=20)
    alert_gap_ms: int = Field(1000, ge=100, le=10000)

    @field_validator("alert_patterns")
    @classmethod
    def _patterns(cls, value: dict[str, list[int]]) -> dict[str, list[int]]:
        for name, pattern in value.items():
            if not 1 <= len(pattern) <= 15 or not all(10 <= ms <= 5000 for ms in pattern):
                raise _problem(f"{_PATTERN_RULE}; fix the pattern for {name}")
        return value


# Household-sound alerts ([alerts]); see device/classifier.py and dsp/alerts.py.
_ALERT_NAMES = ", ".join(ALERT_CLASSES)
_THRESHOLDS_RULE = (
    "must be a table of alert names and thresholds, like { doorbell = 0.6 }: names from "
    f"{_ALERT_NAMES}; thresholds from 0.05 to 1.0"
)
_ROUTE_RULE = (
    f'must be a list of alert names, like ["smoke_alarm", "doorbell"], from {_ALERT_NAMES}'
)


def _default_alert_thresholds() -> dict[str, float]:
    return dict(DEFAULT_THRESHOLDS)


def _every_alert() -> list[str]:
    return list(ALERT_CLASSES)


class AlertSettings(_Section):
    """[alerts]: household sounds heard through the music (device/classifier.py)."""

    enabled: bool = True
    model: str = Field(
        "",
        json_schema_extra={
            "rule": 'must be a string: the path of a .tflite model, "" for the shipped one'
        },
    )
    thresholds: dict[str, float] = Field(
        default_factory=_default_alert_thresholds, json_schema_extra={"rule": _THRESHOLDS_RULE}
    )
    # seconds between classified 1 s windows; n, m count windows, so they follow it
    hop_s: float = Field(0.25, ge=0.1, le=1.0)
    n: int = Field(3, ge=1, le=10)
    # validate_default: an n above the default m is reported against m
    m: int = Field(4, ge=1, le=10, validate_default=True)
    peak: float = Field(0.9, ge=0.0, le=1.0)
    cooldown_s: float = Field(10.0, ge=0.0, le=3600.0)
    timeout_s: float = Field(30.0, ge=1.0, le=3600.0)
    leds: list[str] = Field(default_factory=_every_alert, json_schema_extra={"rule": _ROUTE_RULE})
    motor: list[str] = Field(default_factory=_every_alert, json_schema_extra={"rule": _ROUTE_RULE})
    oled: list[str] = Field(default_factory=_every_alert, json_schema_extra={"rule": _ROUTE_RULE})
    mqtt: list[str] = Field(default_factory=_every_alert, json_schema_extra={"rule": _ROUTE_RULE})
    gate_keys: bool = True
    gate_threshold: float = Field(0.6, ge=0.05, le=1.0)

    @field_validator("thresholds")
    @classmethod
    def _known_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        for name, threshold in value.items():
            if name not in ALERT_CLASSES:
                raise _problem(f'{_THRESHOLDS_RULE}; "{name}" is not an alert name')
            if not 0.05 <= threshold <= 1.0:
                raise _problem(f"{_THRESHOLDS_RULE}; {name} = {threshold} is out of range")
        # Classes left out keep their default, so a table naming one class changes only that.
        return {**DEFAULT_THRESHOLDS, **value}

    @field_validator("m")
    @classmethod
    def _n_of_m(cls, value: int, info: ValidationInfo) -> int:
        n = info.data.get("n")  # absent when n itself was invalid
        if n is not None and n > value:
            raise _problem(f"must be at least n ({n}): an alert needs n of the last m windows")
        return value

    @field_validator("leds", "motor", "oled", "mqtt")
    @classmethod
    def _known_routes(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in ALERT_CLASSES]
        if unknown:
            raise _problem(f'{_ROUTE_RULE}; "{unknown[0]}" is not an alert name')
        return value


class Settings(_Section):
    """The whole config file; one field per [section]."""

    audio: AudioSettings = Field(default_factory=AudioSettings)
    listen: ListenSettings = Field(default_factory=ListenSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    leds: LedSettings = Field(default_factory=LedSettings)
    oled: OledSettings = Field(default_factory=OledSettings)
    motor: MotorSettings = Field(default_factory=MotorSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)


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
    return load_settings_text(path)[0]


def load_settings_text(path: Path | None = None) -> tuple[Settings, str | None]:
    """`load_settings`, also returning the text that was validated (None: the built-in
    defaults), which the daemon keeps as its last good config (device/lastgood.py)."""
    note = ""
    if path is None:
        path = default_config_path()
        if path is None:
            return Settings(), None
        if os.environ.get(CONFIG_ENV_VAR, ""):
            note = f" (named by ${CONFIG_ENV_VAR})"
    path = Path(path)
    text = _read(path, note)
    return parse_settings(text, str(path)), text
