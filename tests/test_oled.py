"""The OLED: screens rendered on luma's dummy device compared pixel for pixel with the
reference PNGs in tests/reference/oled/, the display thread (redraw only on change, failures
reported to the daemon), the simulator's PNG per distinct screen, and the wiring errors.

Regenerate the references after a deliberate change of the layout (then look at them):
    .venv/bin/python tests/test_oled.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from luma.core.device import dummy
from PIL import Image

from notesight.device.config import OledSettings, parse_settings
from notesight.device.errors import ConfigError, OutputError
from notesight.device.oled import (
    OledDisplay,
    Screen,
    ScreenState,
    SimulatedOled,
    mqtt_text,
    open_oled,
    render_screen,
)
from notesight.device.outputs import DeviceStatus
from notesight.dsp.events import Alert, Chord, Level, NoteOn

REFERENCE = Path(__file__).resolve().parent / "reference" / "oled"

SCREENS = {
    "note_chord_queued": Screen(
        note="C#4", cents=12, chord="C#m7", loudness=20, mic_ok=True, mqtt="MQTT 3 queued"
    ),
    "flat_alert": Screen(note="A0", cents=-31, loudness=5, mqtt="MQTT ok", alert="smoke_alarm"),
    "idle_no_mic": Screen(mic_ok=False),
    "sharp_limit_loud": Screen(note="G#7", cents=50, chord="Ab", loudness=32, mqtt="MQTT off"),
}
SIZES = {"128x64": (128, 64), "128x32": (128, 32)}


def on_dummy(screen: Screen, size: tuple[int, int]) -> Image.Image:
    """The screen as luma's dummy device shows it (the device's own preprocessing included)."""
    device = dummy(width=size[0], height=size[1], mode="1")
    device.display(render_screen(screen, device.size))
    return device.image


@pytest.mark.parametrize("size_name", SIZES)
@pytest.mark.parametrize("screen_name", SCREENS)
def test_screen_matches_its_reference_png(screen_name: str, size_name: str) -> None:
    image = on_dummy(SCREENS[screen_name], SIZES[size_name])
    reference = Image.open(REFERENCE / f"{screen_name}_{size_name}.png")
    assert reference.size == image.size
    got = np.asarray(image.convert("1"), bool)
    want = np.asarray(reference.convert("1"), bool)
    assert got.any()
    different = np.argwhere(got != want)
    assert different.size == 0, f"{len(different)} pixels differ, first at {different[0]}"


def test_screens_differ_where_their_content_differs() -> None:
    a = on_dummy(Screen(note="C4", cents=0), (128, 64)).tobytes()
    assert on_dummy(Screen(note="C4", cents=20), (128, 64)).tobytes() != a  # needle moved
    assert on_dummy(Screen(note="C4", cents=0, loudness=10), (128, 64)).tobytes() != a
    assert on_dummy(Screen(note="C4", cents=0, chord="C"), (128, 64)).tobytes() != a
    assert on_dummy(Screen(note="C4", cents=0), (128, 64)).tobytes() == a


def test_state_follows_events_and_status() -> None:
    status = DeviceStatus(mqtt_enabled=True, mqtt_connected=False, mqtt_queued=7)
    state = ScreenState(status)
    state.handle(NoteOn(61, "C#4", 279.0, 12.4, 90, 1.0, 1.02))
    state.handle(Level(-20.0, -80.0, 1.05))
    state.handle(Chord("C#m", (61, 64, 68), 1.1))
    state.handle(Alert("doorbell", 0.9, 1.2))
    screen = state.screen()
    assert screen == Screen("C#4", 12, "C#m", 32, True, "MQTT off 7 queued", "doorbell")
    state.handle(Alert("doorbell", 0.9, 2.0, active=False))
    status.update(mic_ok=False, mqtt_connected=True, mqtt_queued=0)
    assert state.screen().alert == ""
    assert state.screen().mqtt == "MQTT ok"
    assert not state.screen().mic_ok


def test_mqtt_text() -> None:
    assert mqtt_text(DeviceStatus()) == ""
    assert mqtt_text(DeviceStatus(mqtt_enabled=True, mqtt_connected=True)) == "MQTT ok"
    queued = DeviceStatus(mqtt_enabled=True, mqtt_connected=True, mqtt_queued=3)
    assert mqtt_text(queued) == "MQTT 3 queued"


# --- the display thread ------------------------------------------------------------------------


class RecordingDummy(dummy):
    """luma's dummy device, keeping every frame it is sent."""

    def __init__(self, **kwargs) -> None:
        super().__init__(mode="1", **kwargs)
        self.frames: list[Image.Image] = []
        self.cleaned = False

    def display(self, image: Image.Image) -> None:
        super().display(image)
        self.frames.append(self.image)

    def cleanup(self) -> None:
        self.cleaned = True


def wait_checks(display: OledDisplay, count: int) -> None:
    """Until the thread has looked at the screen `count` more times."""
    with display.check_done:
        target = display.checks + count
        assert display.check_done.wait_for(lambda: display.checks >= target or display.failure, 30)


def test_thread_redraws_only_when_the_screen_changes() -> None:
    device = RecordingDummy()
    display = OledDisplay(OledSettings(fps=15), device, DeviceStatus())
    wait_checks(display, 2)
    assert len(device.frames) == 1  # the first screen, once
    display.handle(NoteOn(69, "A4", 440.0, 0.0, 80, 1.0, 1.02))
    wait_checks(display, 2)
    assert len(device.frames) == 2
    assert device.frames[-1].tobytes() == on_dummy(Screen(note="A4"), (128, 64)).tobytes()
    display.handle(NoteOn(69, "A4", 440.0, 0.0, 80, 2.0, 2.02))  # same screen
    wait_checks(display, 3)
    assert len(device.frames) == 2
    display.close()
    assert device.cleaned


def test_a_failing_display_is_reported_to_the_daemon() -> None:
    class Unplugged(RecordingDummy):
        def display(self, image: Image.Image) -> None:
            raise OSError(121, "Remote I/O error")

    display = OledDisplay(OledSettings(), Unplugged(), DeviceStatus())
    display._thread.join(30)
    with pytest.raises(OutputError, match=r"OLED stopped: .*Remote I/O error"):
        display.handle(Level(-20.0, -80.0, 1.0))
    display.close()


# --- the simulator -----------------------------------------------------------------------------


def test_simulator_keeps_one_png_per_distinct_screen(tmp_path: Path) -> None:
    sim = SimulatedOled(OledSettings(), DeviceStatus(), tmp_path / "oled")
    t = 0.0

    def run_to(stop: float) -> None:
        nonlocal t
        while t < stop:
            sim.tick(t)
            t += 256 / 44100

    run_to(0.5)
    sim.handle(NoteOn(60, "C4", 261.6, 0.0, 80, 0.5, 0.52))
    run_to(1.0)
    sim.handle(NoteOn(62, "D4", 293.7, 0.0, 80, 1.0, 1.02))
    run_to(1.5)
    sim.handle(NoteOn(60, "C4", 261.6, 0.0, 80, 1.5, 1.52))  # the first note's screen again
    run_to(2.0)
    sim.close()
    lines = [json.loads(x) for x in (tmp_path / "oled" / "screens.jsonl").read_text().splitlines()]
    assert [x["png"] for x in lines] == ["000.png", "001.png", "002.png", "001.png"]
    assert lines[1]["t"] == pytest.approx(0.52, abs=1 / 15 + 0.006)
    assert sorted(p.name for p in (tmp_path / "oled").glob("*.png")) == [
        "000.png",
        "001.png",
        "002.png",
    ]
    shown = Image.open(tmp_path / "oled" / "001.png")
    assert shown.tobytes() == on_dummy(Screen(note="C4"), (128, 64)).tobytes()


def test_simulator_redraws_at_most_fps_times_a_stream_second(tmp_path: Path) -> None:
    sim = SimulatedOled(OledSettings(fps=15), DeviceStatus(), tmp_path / "oled")
    block = 256 / 44100
    for i in range(round(2.0 / block)):  # a level rising 1 dB a block: the bar never rests
        sim.handle(Level(-80.0 + i % 60, -80.0, i * block))
        sim.tick(i * block)
    sim.close()
    assert 29 <= sim.changes <= 31  # 15 a second, not one per block


# --- wiring errors -----------------------------------------------------------------------------


def test_missing_i2c_bus_names_the_fix() -> None:
    with pytest.raises(OutputError) as info:
        open_oled(OledSettings(enabled=True, i2c_port=29))
    assert str(info.value) == (
        "OLED: display /dev/i2c-29 does not exist: enable I2C (sudo raspi-config nonint do_i2c "
        "0) and add the user to group i2c"
    )


class SilentBus:
    """An I2C bus with nothing at the address: the kernel answers EREMOTEIO, as smbus2 shows."""

    def __init__(self) -> None:
        self.attempts = 0

    def write_i2c_block_data(self, address, register, data) -> None:
        self.attempts += 1
        raise OSError(121, "Remote I/O error")

    def write_byte_data(self, address, register, value) -> None:
        self.write_i2c_block_data(address, register, [value])

    def i2c_rdwr(self, *messages) -> None:
        self.write_i2c_block_data(0, 0, [])

    def close(self) -> None:
        pass


def test_nothing_at_the_i2c_address_names_the_wiring() -> None:
    bus = SilentBus()
    with pytest.raises(OutputError) as info:
        open_oled(OledSettings(enabled=True, i2c_address=0x3D), bus=bus)
    assert bus.attempts >= 1
    assert str(info.value).startswith(
        "OLED: nothing answers at I2C address 0x3D on /dev/i2c-1: check the wiring (SDA to "
        "header pin 3"
    )
    assert "i2cdetect -y 1" in str(info.value)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[oled]\nsize = "128x128"',
         '[oled].size: must be one of "128x64", "128x32" (got "128x128")'),
        ('[oled]\ndriver = "ssd1309"',
         '[oled].driver: must be one of "ssd1306", "sh1106" (got "ssd1309")'),
        ("[oled]\ni2c_address = 0x80",
         "[oled].i2c_address: must be a whole number from 3 to 119 (got 128)"),
        ("[oled]\nfps = 30", "[oled].fps: must be a whole number from 1 to 15 (got 30)"),
        ("[oled]\nrotate = 1", "[oled].rotate: must be one of 0, 2 (got 1)"),
    ],
)  # fmt: skip
def test_oled_config_rules(toml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(toml, "c.toml")
    assert str(info.value) == f"c.toml: {expected}"


def regenerate() -> None:
    REFERENCE.mkdir(parents=True, exist_ok=True)
    for screen_name, screen in SCREENS.items():
        for size_name, size in SIZES.items():
            on_dummy(screen, size).save(REFERENCE / f"{screen_name}_{size_name}.png")
    print(f"wrote {len(SCREENS) * len(SIZES)} PNGs to {REFERENCE}")


if __name__ == "__main__":
    regenerate()
    sys.exit(0)
