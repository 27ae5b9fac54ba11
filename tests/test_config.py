"""The config loader: defaults, search order, and one caretaker-readable error per rule."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from notesight.device import config
from notesight.device.config import (
    AudioSettings,
    ListenSettings,
    LogSettings,
    Settings,
    default_config_path,
    load_settings,
    parse_settings,
)
from notesight.device.errors import ConfigError, NotesightError

SRC = "/etc/notesight/config.toml"


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, SRC)
    message = str(info.value)
    assert "Traceback" not in message
    assert "pydantic" not in message.lower()
    return message


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No $NOTESIGHT_CONFIG; /etc and checkout configs moved to tmp_path (absent until written)."""
    monkeypatch.delenv(config.CONFIG_ENV_VAR, raising=False)
    monkeypatch.setattr(config, "ETC_CONFIG", tmp_path / "etc" / "config.toml")
    monkeypatch.setattr(config, "SHIPPED_CONFIG", tmp_path / "checkout" / "notesight.toml")
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults and the shipped file -----------------------------------------------------------


def test_builtin_defaults():
    s = Settings()
    assert s.audio == AudioSettings(device="", sample_rate=48000, block_size=512)
    assert s.listen == ListenSettings(
        a4_hz=440.0,
        lowest_note="A0",
        highest_note="C8",
        min_level_dbfs=-70.0,
        onset_sensitivity=0.5,
    )
    assert s.log == LogSettings(level="info")
    assert (s.listen.lowest_midi, s.listen.highest_midi) == (21, 108)


def test_shipped_config_is_exactly_the_defaults():
    path = config.SHIPPED_CONFIG
    assert path.is_file(), path
    assert load_settings(path) == Settings()


def test_shipped_config_names_every_key_with_a_comment():
    text = config.SHIPPED_CONFIG.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    expected = {
        name: set(field.annotation.model_fields) for name, field in Settings.model_fields.items()
    }
    assert {name: set(keys) for name, keys in data.items()} == expected
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^[a-z_0-9]+\s*=", line):
            assert lines[number - 1].startswith("#"), f"key without a comment: {line}"


def test_empty_file_and_partial_sections_use_defaults():
    assert parse_settings("", SRC) == Settings()
    s = parse_settings("[audio]\nsample_rate = 44100\n", SRC)
    assert s.audio.sample_rate == 44100
    assert s.audio.block_size == 512
    assert s.listen == ListenSettings()


def test_valid_values_are_accepted():
    s = parse_settings(
        """
        [audio]
        device = "USB"
        sample_rate = 44100
        block_size = 128
        [listen]
        a4_hz = 415
        lowest_note = "Bb2"
        highest_note = "c#7"
        min_level_dbfs = -100.0
        onset_sensitivity = 1.0
        [log]
        level = "debug"
        """,
        SRC,
    )
    assert s.audio.device == "USB"
    assert s.listen.a4_hz == 415.0
    assert isinstance(s.listen.a4_hz, float)
    # note names are stored canonically (sharps, upper case)
    assert (s.listen.lowest_note, s.listen.highest_note) == ("A#2", "C#7")
    assert (s.listen.lowest_midi, s.listen.highest_midi) == (46, 97)
    assert s.log.level == "debug"


def test_settings_are_frozen():
    s = Settings()
    with pytest.raises(ValueError):
        s.audio.sample_rate = 44100  # type: ignore[misc]


def test_config_error_is_a_notesight_error():
    assert issubclass(ConfigError, NotesightError)


# --- one error per rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[audio]\nsample_rate = 22050",
            f"{SRC}: [audio].sample_rate: must be one of 44100, 48000 (got 22050)",
        ),
        (
            "[audio]\nblock_size = 300",
            f"{SRC}: [audio].block_size: must be one of 128, 256, 512, 1024 (got 300)",
        ),
        (
            "[listen]\na4_hz = 400.0",
            f"{SRC}: [listen].a4_hz: must be a number from 415 to 466 (got 400.0)",
        ),
        (
            "[listen]\na4_hz = 467",
            f"{SRC}: [listen].a4_hz: must be a number from 415 to 466 (got 467)",
        ),
        (
            "[listen]\nmin_level_dbfs = 3.0",
            f"{SRC}: [listen].min_level_dbfs: must be a number from -100 to 0 (got 3.0)",
        ),
        (
            "[listen]\nmin_level_dbfs = -120",
            f"{SRC}: [listen].min_level_dbfs: must be a number from -100 to 0 (got -120)",
        ),
        (
            "[listen]\nonset_sensitivity = 1.5",
            f"{SRC}: [listen].onset_sensitivity: must be a number from 0 to 1 (got 1.5)",
        ),
        (
            "[listen]\nonset_sensitivity = -0.1",
            f"{SRC}: [listen].onset_sensitivity: must be a number from 0 to 1 (got -0.1)",
        ),
        (
            "[listen]\nonset_sensitivity = nan",
            f"{SRC}: [listen].onset_sensitivity: must be a number from 0 to 1 (got nan)",
        ),
        (
            '[listen]\npipeline = "both"',
            f'{SRC}: [listen].pipeline: must be one of "mono", "poly" (got "both")',
        ),
        (
            "[listen]\nmodel = 3",
            f"{SRC}: [listen].model: must be a string: the path of a .tflite note model, "
            '"" for the shipped one (got 3)',
        ),
        (
            "[listen]\nchord_debounce_s = 5.0",
            f"{SRC}: [listen].chord_debounce_s: must be a number from 0 to 2 (got 5.0)",
        ),
        (
            '[log]\nlevel = "verbose"',
            f'{SRC}: [log].level: must be one of "debug", "info", "warning", "error" '
            '(got "verbose")',
        ),
    ],
)
def test_out_of_range_or_not_a_choice(toml, expected):
    assert error_of(toml) == expected


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[audio]\nsample_rate = "48000"',
            f"{SRC}: [audio].sample_rate: must be one of 44100, 48000, written without quotes "
            '(got "48000")',
        ),
        (
            '[listen]\na4_hz = "440"',
            f"{SRC}: [listen].a4_hz: must be a number from 415 to 466, written without quotes "
            '(got "440")',
        ),
        (
            "[listen]\nonset_sensitivity = true",
            f"{SRC}: [listen].onset_sensitivity: must be a number from 0 to 1 (got true)",
        ),
        (
            "[audio]\ndevice = 2",
            f'{SRC}: [audio].device: must be a string: "" for the system default input, '
            'a device index like "2", or part of the device name (got 2)',
        ),
        (
            "[listen]\nlowest_note = 21",
            f'{SRC}: [listen].lowest_note: must be a note name from A0 to C8, like "C4", "F#3" '
            'or "Bb2" (got 21)',
        ),
        (
            "[log]\nlevel = 1",
            f'{SRC}: [log].level: must be one of "debug", "info", "warning", "error" (got 1)',
        ),
        (
            "[listen]\na4_hz = [440, 442]",
            f"{SRC}: [listen].a4_hz: must be a number from 415 to 466 (got [440, 442])",
        ),
    ],
)
def test_wrong_type(toml, expected):
    assert error_of(toml) == expected


@pytest.mark.parametrize(
    "name", ["H2", "C", "4", "C##4", "A 4", "", "middle C", "Cb-1", "C9", "G#0"]
)
def test_note_name_garbage_or_off_the_keyboard(name):
    message = error_of(f'[listen]\nlowest_note = "{name}"')
    assert message == (
        f'{SRC}: [listen].lowest_note: must be a note name from A0 to C8, like "C4", "F#3" '
        f'or "Bb2" (got "{name}")'
    )


@pytest.mark.parametrize(("low", "high"), [("C5", "C4"), ("C4", "C4"), ("C#4", "Db4")])
def test_lowest_note_must_be_below_highest(low, high):
    message = error_of(f'[listen]\nlowest_note = "{low}"\nhighest_note = "{high}"')
    canonical = {"C5": "C5", "C4": "C4", "C#4": "C#4"}[low]
    assert message == (
        f'{SRC}: [listen].highest_note: must be higher than lowest_note "{canonical}" '
        f'(got "{high}")'
    )


def test_unknown_key_lists_the_allowed_keys():
    assert error_of("[listen]\na4 = 442.0") == (
        f"{SRC}: [listen].a4: unknown key; allowed keys: a4_hz, lowest_note, highest_note, "
        "min_level_dbfs, onset_sensitivity, pipeline, model, chord_debounce_s"
    )
    assert error_of('[audio]\nrate = 1\n[log]\nfile = "x"') == (
        f"{SRC}: [audio].rate: unknown key; allowed keys: device, sample_rate, block_size\n"
        f"{SRC}: [log].file: unknown key; allowed keys: level"
    )


# Every section, in Settings order (sections are added by several issues).
ALL_SECTIONS = ", ".join(f"[{name}]" for name in Settings.model_fields)


def test_unknown_section_lists_the_allowed_sections():
    assert ALL_SECTIONS.startswith("[audio], [listen], [log]")
    assert error_of("[midi]\nport = 1") == (
        f"{SRC}: [midi]: unknown section; allowed sections: {ALL_SECTIONS}"
    )
    # a typo in a section name is caught too, even when the section is empty
    assert error_of("[Audio]") == (
        f"{SRC}: [Audio]: unknown section; allowed sections: {ALL_SECTIONS}"
    )


def test_key_outside_any_section():
    assert error_of("sample_rate = 48000\n[audio]\n") == (
        f"{SRC}: sample_rate: key outside any section; put it under one of {ALL_SECTIONS}"
    )


def test_section_that_is_not_a_table():
    assert error_of("audio = 5") == f"{SRC}: [audio]: must be a section, written [audio] (got 5)"


def test_several_problems_give_one_line_each():
    message = error_of(
        '[audio]\nsample_rate = 1\nblock_size = 2\n[listen]\nlowest_note = "X"\n[log]\nlevel = "x"'
    )
    lines = message.splitlines()
    assert len(lines) == 4
    assert all(line.startswith(f"{SRC}: [") for line in lines)
    assert [line.split(":")[1].strip() for line in lines] == [
        "[audio].sample_rate",
        "[audio].block_size",
        "[listen].lowest_note",
        "[log].level",
    ]


@pytest.mark.parametrize(
    ("toml", "position"),
    [
        ("[audio]\nsample_rate 48000\n", "line 2, column 13"),
        ("[audio\n", "line 1, column 7"),
        ('[log]\nlevel = "info\n', "line 2, column 14"),
        ("[audio]\nblock_size = 512\nblock_size = 256\n", "line 3"),
    ],
)
def test_bad_toml_names_line_and_column(toml, position):
    message = error_of(toml)
    assert message.startswith(f"{SRC}: {position}")
    assert re.fullmatch(rf"{re.escape(SRC)}: line \d+, column \d+: invalid TOML: \S.*", message)


def test_bad_toml_in_a_file_names_the_file(tmp_path):
    path = write(tmp_path / "bad.toml", "[audio]\nsample_rate = \n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: line 2, column \d+: invalid"):
        load_settings(path)


def test_invalid_value_in_a_file_names_the_file(tmp_path):
    path = write(tmp_path / "c.toml", "[audio]\nsample_rate = 22050\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value) == (
        f"{path}: [audio].sample_rate: must be one of 44100, 48000 (got 22050)"
    )


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value) == f"config file {path} does not exist: check the path"


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path)
    assert str(info.value) == f"config file {tmp_path} is a folder, not a file"


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[audio]\ndevice = "Mikrofon \xfc"\n')
    with pytest.raises(ConfigError, match=r"not UTF-8"):
        load_settings(path)


# --- search order --------------------------------------------------------------------------------


def test_no_file_anywhere_gives_builtin_defaults(isolated):
    assert default_config_path() is None
    assert load_settings() == Settings()


def test_checkout_config_is_the_last_resort(isolated):
    shipped = write(config.SHIPPED_CONFIG, '[log]\nlevel = "warning"\n')
    assert default_config_path() == shipped
    assert load_settings().log.level == "warning"


def test_etc_config_wins_over_checkout(isolated):
    write(config.SHIPPED_CONFIG, '[log]\nlevel = "warning"\n')
    etc = write(config.ETC_CONFIG, '[log]\nlevel = "error"\n')
    assert default_config_path() == etc
    assert load_settings().log.level == "error"


def test_env_var_wins_over_everything(isolated, monkeypatch):
    write(config.SHIPPED_CONFIG, '[log]\nlevel = "warning"\n')
    write(config.ETC_CONFIG, '[log]\nlevel = "error"\n')
    mine = write(isolated / "mine.toml", '[log]\nlevel = "debug"\n')
    monkeypatch.setenv(config.CONFIG_ENV_VAR, str(mine))
    assert default_config_path() == mine
    assert load_settings().log.level == "debug"


def test_empty_env_var_is_ignored(isolated, monkeypatch):
    etc = write(config.ETC_CONFIG, '[log]\nlevel = "error"\n')
    monkeypatch.setenv(config.CONFIG_ENV_VAR, "")
    assert default_config_path() == etc


def test_env_var_naming_a_missing_file_is_an_error(isolated, monkeypatch):
    write(config.ETC_CONFIG, '[log]\nlevel = "error"\n')
    missing = isolated / "missing.toml"
    monkeypatch.setenv(config.CONFIG_ENV_VAR, str(missing))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == (
        f"config file {missing} does not exist: check the path (named by $NOTESIGHT_CONFIG)"
    )


def test_explicit_path_ignores_the_search_order(isolated, monkeypatch):
    write(config.ETC_CONFIG, '[log]\nlevel = "error"\n')
    monkeypatch.setenv(config.CONFIG_ENV_VAR, str(isolated / "missing.toml"))
    mine = write(isolated / "mine.toml", "[audio]\nblock_size = 256\n")
    s = load_settings(mine)
    assert s.audio.block_size == 256
    assert s.log.level == "info"


def test_error_in_searched_file_names_that_file(isolated):
    etc = write(config.ETC_CONFIG, "[audio]\nsample_rate = 22050\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(f"{etc}: [audio].sample_rate: ")
