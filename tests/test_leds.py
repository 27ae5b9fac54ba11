"""The LED strip: key -> LED mapping, colours, the light following the sound, frame pacing,
and the backends: WS2812 SPI encoding checked against the datasheet bit timing, DDP over a real
UDP socket, the simulator's JSON lines, the terminal line, and the missing-hardware errors."""

from __future__ import annotations

import json
import socket
import threading
from io import StringIO
from pathlib import Path

import numpy as np
import pytest

from notesight.device.config import LedSettings, parse_settings
from notesight.device.errors import ConfigError, OutputError
from notesight.device.feedback import simulated_outputs
from notesight.device.led_backends import (
    DDP_MAX_DATA,
    SK6812_SPI,
    WS2812_SPI,
    DdpBackend,
    SimulatorBackend,
    SpiTiming,
    SpiWs2812Backend,
    TerminalBackend,
    Ws2812SpiEncoder,
    ddp_packets,
    lit_leds,
    open_spidev,
    reorder,
)
from notesight.device.leds import (
    NO_MIC_SPACING,
    FrameRenderer,
    KeyMap,
    LedStrip,
    key_colour,
    key_position,
)
from notesight.device.outputs import DeviceStatus
from notesight.dsp.alerts import ALERT_CLASSES
from notesight.dsp.events import Alert, Chord, Level, NoteOff, NoteOn

BLOCK_S = 256 / 44100  # the daemon's tick at 44.1 kHz


def leds(**changes) -> LedSettings:
    """[leds] with changes, gamma 1 and full brightness unless asked, for readable numbers."""
    values = {"gamma": 1.0, "brightness": 1.0, **changes}
    return LedSettings(**values)


def note_on(midi: int, t: float, velocity: int = 100, cents: float = 0.0) -> NoteOn:
    return NoteOn(midi, "", 440.0, cents, velocity, t - 0.02, t)


class Recorder:
    """A backend that keeps every frame it is handed, with its stream time."""

    name = "recorder"

    def __init__(self, keepalive_s: float | None = None) -> None:
        self.keepalive_s = keepalive_s
        self.frames: list[tuple[float, np.ndarray]] = []
        self.closed = False

    def show(self, frame: np.ndarray, t: float) -> None:
        self.frames.append((t, frame.copy()))

    def close(self) -> None:
        self.closed = True


def ticks(strip: LedStrip, start: float, stop: float) -> None:
    t = start
    while t < stop:
        strip.tick(t)
        t += BLOCK_S


# --- mapping ---------------------------------------------------------------------------------


def test_key_positions_follow_the_white_keys() -> None:
    assert key_position(21) == 0.0  # A0
    assert key_position(22) == 0.5  # A#0 between A0 and B0
    assert key_position(23) == 1.0  # B0
    assert key_position(24) == 2.0  # C1
    assert key_position(60) == 23.0  # C4
    assert key_position(108) == 51.0  # C8


def test_default_map_covers_the_strip_once_in_order() -> None:
    keymap = KeyMap.from_settings(LedSettings())
    assert keymap.leds(21)[0] == 0
    assert keymap.leds(108)[-1] == 175
    covered = [i for midi in range(21, 109) for i in keymap.leds(midi)]
    assert covered == list(range(176))  # every LED belongs to exactly one key, in key order
    assert all(len(keymap.leds(m)) >= 1 for m in range(21, 109))
    # middle C sits 23/51 of the way along
    assert keymap.centres[60] == pytest.approx(175 * 23 / 51)


def test_reversed_strip_runs_from_the_treble_end() -> None:
    keymap = KeyMap.from_settings(LedSettings(a0_led=175, c8_led=0))
    assert 175 in keymap.leds(21)
    assert 0 in keymap.leds(108)
    assert keymap.centres[60] == pytest.approx(175 - 175 * 23 / 51)


def test_leds_per_metre_places_keys_by_their_width() -> None:
    keymap = KeyMap.from_settings(LedSettings(a0_led=2, leds_per_metre=144.0, led_count=200))
    assert keymap.centres[108] == pytest.approx(2 + 51 * 23.5 / 1000 * 144)
    down = KeyMap.from_settings(
        LedSettings(a0_led=190, leds_per_metre=144.0, direction="down", led_count=200)
    )
    assert down.centres[108] == pytest.approx(190 - 51 * 23.5 / 1000 * 144)


def test_offsets_bend_the_map_between_anchors() -> None:
    plain = KeyMap.from_settings(LedSettings())
    bent = KeyMap.from_settings(LedSettings(offsets={"C4": 4}))
    assert bent.centres[60] == pytest.approx(plain.centres[60] + 4)
    assert bent.centres[21] == pytest.approx(plain.centres[21])
    assert bent.centres[108] == pytest.approx(plain.centres[108])
    # halfway (in key positions) between A0 and C4 the shift is half
    f2 = 41  # F2
    share = key_position(f2) / key_position(60)
    assert bent.centres[f2] == pytest.approx(plain.centres[f2] + 4 * share)
    step = KeyMap.from_settings(LedSettings(offsets={"B3": 0, "C4": 3}))
    assert step.centres[59] == pytest.approx(plain.centres[59])
    assert step.centres[60] == pytest.approx(plain.centres[60] + 3)


def test_fewer_leds_than_keys_still_gives_every_key_a_led() -> None:
    keymap = KeyMap.from_settings(LedSettings(led_count=60, a0_led=0, c8_led=59))
    assert all(len(keymap.leds(m)) >= 1 for m in range(21, 109))
    assert not keymap.unplaced()


def test_keys_off_the_strip_are_reported() -> None:
    keymap = KeyMap.from_settings(LedSettings(led_count=50, c8_led=49, leds_per_metre=144.0))
    unplaced = keymap.unplaced()
    assert 108 in unplaced and 21 not in unplaced


# --- colours ---------------------------------------------------------------------------------


def test_colour_schemes() -> None:
    single = (0.1, 0.2, 0.3)
    assert key_colour("pitch_class", 60, 80, single) == pytest.approx((1.0, 0.0, 0.0))  # C red
    assert key_colour("pitch_class", 72, 10, single) == key_colour("pitch_class", 60, 99, single)
    assert key_colour("pitch_class", 61, 80, single) != key_colour("pitch_class", 60, 80, single)
    assert key_colour("octave", 60, 80, single) == key_colour("octave", 71, 80, single)
    assert key_colour("octave", 60, 80, single) != key_colour("octave", 72, 80, single)
    assert key_colour("velocity", 60, 127, single) == pytest.approx((1.0, 0.0, 0.0))
    assert key_colour("velocity", 60, 0, single) == pytest.approx((0.0, 0.0, 1.0))
    assert key_colour("single", 60, 80, single) == single


def test_brightness_gamma_and_single_colour_reach_the_frame() -> None:
    strip = LedStrip(
        leds(colour_scheme="single", colour="#ff8000", brightness=0.5, gamma=2.0), Recorder()
    )
    strip.handle(note_on(60, 1.0))
    frame = strip.backend.frames[-1][1]
    expected = (round(255 * 0.5**2), round(255 * (0.5 * 128 / 255) ** 2), 0)
    for i in strip.renderer.keymap.leds(60):
        assert tuple(frame[i]) == expected
    assert len(lit_leds(frame)) == len(strip.renderer.keymap.leds(60))


def test_tuning_tint_reddens_sharp_and_blues_flat_notes() -> None:
    settings = leds(colour_scheme="single", colour="#00ff00", tuning_tint=True, in_tune_cents=5)
    frames = {}
    for cents in (-30.0, 0.0, 3.0, 30.0):
        strip = LedStrip(settings, Recorder())
        strip.handle(note_on(60, 1.0, cents=cents))
        frames[cents] = strip.backend.frames[-1][1][strip.renderer.keymap.leds(60)[0]]
    assert tuple(frames[0.0]) == tuple(frames[3.0]) == (0, 255, 0)
    assert frames[30.0][0] > 0 and frames[30.0][2] == 0
    assert frames[-30.0][2] > 0 and frames[-30.0][0] == 0


# --- the light over time -------------------------------------------------------------------


def test_note_on_is_shown_at_once_not_at_the_next_tick() -> None:
    strip = LedStrip(leds(), Recorder())
    strip.tick(0.0)
    strip.tick(0.0 + BLOCK_S)
    shown = len(strip.backend.frames)
    strip.handle(note_on(64, 0.0 + BLOCK_S))  # between two ticks, well before the next frame
    assert len(strip.backend.frames) == shown + 1
    t, frame = strip.backend.frames[-1]
    assert t == pytest.approx(BLOCK_S)
    lit = {i for i, *_ in lit_leds(frame)}
    assert lit == set(strip.renderer.keymap.leds(64))


def level_of(frame: np.ndarray, strip: LedStrip, midi: int) -> int:
    return int(frame[strip.renderer.keymap.leds(midi)[0]].max())


def test_the_light_follows_the_sound_level_and_a_held_note_stays_lit() -> None:
    strip = LedStrip(leds(fade_db=40.0), Recorder())
    strip.handle(note_on(60, 1.0))
    strip.handle(Level(-10.0, -80.0, 1.01))  # the note's loudest
    strip.tick(1.02)
    assert level_of(strip.backend.frames[-1][1], strip, 60) == 255
    strip.handle(Level(-30.0, -80.0, 2.0))  # 20 dB down: half of the 40 dB fade
    strip.tick(2.0)
    assert level_of(strip.backend.frames[-1][1], strip, 60) == round(255 * 0.5)
    # held (pedal): three more seconds at that level, still lit, and no new frames needed
    count = len(strip.backend.frames)
    ticks(strip, 2.0 + BLOCK_S, 5.0)
    assert len(strip.backend.frames) == count
    assert level_of(strip.renderer.render(5.0), strip, 60) == round(255 * 0.5)
    strip.handle(Level(-55.0, -80.0, 5.0))  # 45 dB down: dark
    strip.tick(5.1)
    assert level_of(strip.backend.frames[-1][1], strip, 60) == 0


def test_note_off_fades_out_over_release_s_at_the_frame_rate() -> None:
    strip = LedStrip(leds(release_s=0.5, fps=60), Recorder())
    strip.handle(note_on(60, 1.0))
    strip.handle(NoteOff(60, "C4", 1.5, 1.5))
    before = len(strip.backend.frames)
    ticks(strip, 1.5, 3.0)
    fading = strip.backend.frames[before:]
    times = [t for t, _ in fading]
    values = [level_of(f, strip, 60) for _, f in fading]
    assert values[-1] == 0 and values == sorted(values, reverse=True)
    assert times[-1] == pytest.approx(2.0, abs=2 * BLOCK_S)  # dark when the release ends
    # about 60 frames a second while it fades: 0.5 s -> 30 frames, even with 5.8 ms ticks
    assert 29 <= len(fading) <= 31
    ticks(strip, 3.0, 4.0)
    assert len(strip.backend.frames) == before + len(fading)  # dark and unchanged: no frames


def test_a_new_note_releases_nothing_else_but_its_own_key() -> None:
    strip = LedStrip(leds(release_s=0.2), Recorder())
    strip.handle(note_on(60, 1.0))
    strip.handle(NoteOff(60, "C4", 1.3, 1.3))
    strip.handle(note_on(64, 1.3))
    frame = strip.backend.frames[-1][1]
    assert level_of(frame, strip, 60) == 255 and level_of(frame, strip, 64) == 255
    ticks(strip, 1.3, 1.6)
    frame = strip.backend.frames[-1][1]
    assert level_of(frame, strip, 60) == 0 and level_of(frame, strip, 64) == 255


def test_chord_tones_share_the_root_colour() -> None:
    strip = LedStrip(leds(), Recorder())
    strip.handle(Chord("Cmaj", (60, 64, 67), 1.0))
    frame = strip.backend.frames[-1][1]
    keymap = strip.renderer.keymap
    colours = {tuple(frame[keymap.leds(m)[0]]) for m in (60, 64, 67)}
    assert colours == {(255, 0, 0)}  # all the colour of C
    strip.handle(Chord("", (), 1.5))
    ticks(strip, 1.5, 2.0)
    assert not lit_leds(strip.backend.frames[-1][1])

    own = LedStrip(leds(chord_shared_colour=False), Recorder())
    own.handle(Chord("Cmaj", (60, 64, 67), 1.0))
    frame = own.backend.frames[-1][1]
    assert len({tuple(frame[keymap.leds(m)[0]]) for m in (60, 64, 67)}) == 3


def test_renderer_forgets_released_notes() -> None:
    renderer = FrameRenderer(leds(release_s=0.1))
    renderer.note_on(note_on(60, 1.0))
    renderer.note_off(NoteOff(60, "C4", 1.2, 1.2))
    renderer.render(1.25)
    assert not renderer.idle
    renderer.render(1.31)
    assert renderer.idle


# --- patterns over the keys: no microphone, alerts ------------------------------------------

DOTS = set(range(0, 176, NO_MIC_SPACING))  # 0, 12, ..., 168 on the default 176-LED strip
GREEN = (0, 255, 0)  # the doorbell's colour at full brightness, gamma 1


def key_frame(strip: LedStrip, midis: tuple[int, ...]) -> dict[int, tuple[int, int, int]]:
    """The LEDs these keys light at full level, as {led: rgb}, with pitch-class colours."""
    keymap = strip.renderer.keymap
    lit = {}
    for midi in midis:
        colour = key_colour("pitch_class", midi, 100, (1.0, 0.5, 0.0))
        for led in keymap.leds(midi):
            lit[led] = tuple(round(c * 255) for c in colour)
    return lit


def as_dict(frame: np.ndarray) -> dict[int, tuple[int, int, int]]:
    return {i: (r, g, b) for i, r, g, b in lit_leds(frame)}


def since(strip: LedStrip, t: float) -> list[tuple[float, np.ndarray]]:
    return [(ft, f) for ft, f in strip.backend.frames if ft >= t]


def test_no_mic_breathes_dim_amber_dots_instead_of_the_keys_and_returns_to_them() -> None:
    status = DeviceStatus()
    strip = LedStrip(leds(), Recorder(), status)
    strip.handle(note_on(60, 1.0))
    held = as_dict(strip.backend.frames[-1][1])
    assert held == key_frame(strip, (60,))

    status.update(mic_ok=False)  # as supervise.py does when the USB microphone goes
    ticks(strip, 1.01, 9.01)  # the daemon's clock runs on without audio: two breaths
    lost = since(strip, 1.01)
    reds = []
    for _, frame in lost:
        lit = as_dict(frame)
        assert set(lit) == DOTS  # only the dots: the held key is not shown
        (colour,) = set(lit.values())  # every dot the same
        red, green, blue = colour
        assert blue == 0 and green in (int(red * 0.75), int(red * 0.75) + 1)  # amber
        assert red <= 25  # at most 10 % of full drive
        reds.append(red)
    # starts dim (20 % of the 10 % peak), peaks 2 s later, back down at 4 s, and so on
    assert reds[0] == int(255 * 0.1 * 0.2)
    assert max(reds) == 25 and min(reds) == reds[0]

    def red_at(t: float) -> int:  # what the strip shows at t: the last frame sent by then
        return [red for (ft, _), red in zip(lost, reds, strict=True) if ft <= t][-1]

    assert [red_at(1.01 + s) for s in (1.0, 2.0, 3.0, 4.0, 6.0, 8.0)] == [15, 25, 15, 5, 25, 5]
    # a calm pattern: far fewer frames than 60 a second (only the changed ones are sent)
    assert len(lost) < 8 * 60 / 2

    status.update(mic_ok=True)
    before = len(strip.backend.frames)
    strip.tick(9.01 + BLOCK_S)  # the next frame on the 60 fps schedule
    ticks(strip, 9.01 + 2 * BLOCK_S, 9.05)
    back = strip.backend.frames[before:]
    assert len(back) == 1 and back[0][0] <= 9.01 + 1 / 60 + BLOCK_S
    assert as_dict(back[0][1]) == held  # the held key again, nothing else


def test_no_mic_dots_are_never_brighter_than_a_key_could_be() -> None:
    status = DeviceStatus(mic_ok=False)
    strip = LedStrip(leds(brightness=0.2, gamma=2.2), Recorder(), status)
    ticks(strip, 0.0, 4.0)
    reds = [as_dict(f)[0][0] for _, f in strip.backend.frames]
    assert max(reds) == int(255 * 0.2**2.2)  # 7: the brightest a key lights at this setting


def test_an_alert_flashes_the_whole_strip_over_the_keys_until_it_stops() -> None:
    strip = LedStrip(leds(), Recorder())
    strip.handle(note_on(60, 1.0))
    strip.handle(Alert("doorbell", 0.9, 1.1))
    t, frame = strip.backend.frames[-1]
    assert t == 1.1 and as_dict(frame) == {i: GREEN for i in range(176)}  # at once

    ticks(strip, 1.1, 1.2)
    shown = len(strip.backend.frames)
    strip.handle(note_on(64, 1.2))  # notes during the alert do not break into it
    ticks(strip, 1.2, 1.4)
    strip.handle(note_on(67, 1.4))
    ticks(strip, 1.4, 3.1)
    flashes = strip.backend.frames[shown - 1 :]
    # whole strip on, whole strip dark, every 0.25 s (2 Hz), nothing in between
    pictures = [as_dict(f) for _, f in flashes]
    assert pictures == [{i: GREEN for i in range(176)}, {}] * 4
    times = [t for t, _ in flashes]
    assert times == pytest.approx([1.1 + 0.25 * k for k in range(8)], abs=1 / 60 + BLOCK_S)

    strip.handle(Alert("doorbell", 0.4, 3.2, active=False))
    t, frame = strip.backend.frames[-1]
    assert t == 3.2
    assert as_dict(frame) == key_frame(strip, (60, 64, 67))  # the keys as played meanwhile


def test_an_alert_that_is_never_stopped_times_out() -> None:
    strip = LedStrip(leds(), Recorder(), alert_timeout_s=5.0)
    strip.handle(note_on(60, 0.5))
    strip.handle(Alert("smoke_alarm", 0.9, 1.0))
    ticks(strip, 1.0, 8.0)
    frames = strip.backend.frames
    red_strip = {i: (255, 0, 0) for i in range(176)}
    alert_times = [t for t, f in frames if as_dict(f) in (red_strip, {})]
    assert alert_times[0] == 1.0 and max(alert_times) < 6.0
    t, frame = frames[-1]
    assert t == pytest.approx(6.0, abs=1 / 60 + BLOCK_S)  # the first frame after 5 s
    assert as_dict(frame) == key_frame(strip, (60,))
    count = len(frames)
    strip.handle(Alert("smoke_alarm", 0.3, 8.0, active=False))  # late: changes nothing
    assert len(frames) == count


def test_each_alert_class_has_its_own_colour_at_the_strip_brightness() -> None:
    colours = {}
    for label in ALERT_CLASSES:
        strip = LedStrip(LedSettings(), Recorder())  # brightness 0.5, gamma 2.2
        strip.handle(Alert(label, 0.9, 1.0))
        (colour,) = set(as_dict(strip.backend.frames[-1][1]).values())
        colours[label] = colour
    assert len(set(colours.values())) == len(ALERT_CLASSES)
    half = round(0.5**2.2 * 255)  # 56
    assert colours["smoke_alarm"] == (half, 0, 0)
    assert colours["doorbell"] == (0, half, 0)
    assert colours["siren"] == (0, 0, half)


def test_the_newest_alert_shows_and_an_older_one_returns_when_it_ends() -> None:
    strip = LedStrip(leds(), Recorder())
    strip.handle(Alert("smoke_alarm", 0.9, 1.0))
    strip.handle(Alert("doorbell", 0.9, 1.5))
    assert set(as_dict(strip.backend.frames[-1][1]).values()) == {GREEN}
    strip.handle(Alert("doorbell", 0.9, 2.0, active=False))
    t, frame = strip.backend.frames[-1]
    assert t == 2.0 and set(as_dict(frame).values()) == {(255, 0, 0)}  # on its own flash phase


def test_an_alert_outranks_the_no_mic_pattern() -> None:
    status = DeviceStatus(mic_ok=False)
    strip = LedStrip(leds(), Recorder(), status)
    strip.tick(1.0)
    assert set(as_dict(strip.backend.frames[-1][1])) == DOTS
    strip.handle(Alert("knock", 0.9, 1.1))
    assert as_dict(strip.backend.frames[-1][1]) == {i: (255, 255, 0) for i in range(176)}
    strip.handle(Alert("knock", 0.9, 1.2, active=False))
    assert set(as_dict(strip.backend.frames[-1][1])) == DOTS


def test_the_simulated_strip_gets_the_status_and_the_alert_timeout(tmp_path: Path) -> None:
    settings = parse_settings(
        "[leds]\nbrightness = 1.0\ngamma = 1.0\n[alerts]\ntimeout_s = 2.0", SRC
    )
    status = DeviceStatus()
    outputs = simulated_outputs(settings, status, tmp_path)
    strip = next(o for o in outputs if o.name == "leds")
    try:
        status.update(mic_ok=False)
        ticks(strip, 0.0, 0.5)
        status.update(mic_ok=True)
        strip.handle(Alert("doorbell", 0.9, 1.0))
        ticks(strip, 1.0, 3.5)
    finally:
        for output in outputs:
            output.close()
    lines = [json.loads(x) for x in (tmp_path / "leds.jsonl").read_text().splitlines()]
    assert [led[0] for led in lines[0]["lit"]] == sorted(DOTS)
    doorbell = [x for x in lines if x["lit"] and x["lit"][0][1:] == list(GREEN)]
    assert doorbell[0]["t"] == 1.0 and len(doorbell[0]["lit"]) == 176
    assert max(x["t"] for x in doorbell) < 3.0  # up 2 s ([alerts].timeout_s), not 30
    assert lines[-1]["lit"] == []


# --- WS2812 over SPI: the bit timing -------------------------------------------------------

# Datasheet windows in ns: (T0H, T1H, T0L, T1L) as (min, max), and the minimum reset.
WS2812_WINDOWS = {"T0H": (250, 550), "T1H": (650, 950), "T0L": (700, 1000), "T1L": (300, 600)}
WS2812_RESET_NS = 280_000  # WS2812B-V5; older WS2812 need only 50 us
SK6812_WINDOWS = {"T0H": (150, 450), "T1H": (450, 750), "T0L": (750, 1050), "T1L": (450, 750)}
SK6812_RESET_NS = 80_000


def decode_line(spi: np.ndarray, slot_ns: float, windows: dict) -> tuple[list[int], float]:
    """Read the SPI bit stream as the LED would: each high pulse and the low after it is one
    bit, 0 or 1 by the high time; every time must lie in its datasheet window. Returns the
    bits and the final low time (the reset)."""
    bits = np.unpackbits(spi)
    edges = np.flatnonzero(np.diff(bits)) + 1
    runs = np.split(bits, edges)
    assert runs[0][0] == 1, "the frame must start with a high pulse"
    decoded = []
    for i in range(0, len(runs) - 1, 2):
        high_ns = len(runs[i]) * slot_ns
        low_ns = len(runs[i + 1]) * slot_ns
        last = i + 2 >= len(runs)
        if windows["T0H"][0] <= high_ns <= windows["T0H"][1]:
            bit, low_window = 0, windows["T0L"]
        elif windows["T1H"][0] <= high_ns <= windows["T1H"][1]:
            bit, low_window = 1, windows["T1L"]
        else:
            raise AssertionError(f"high time {high_ns:.0f} ns fits neither T0H nor T1H")
        if not last:
            assert low_window[0] <= low_ns <= low_window[1], f"low {low_ns:.0f} ns"
        decoded.append(bit)
    final_low_ns = len(runs[-1]) * slot_ns
    return decoded, final_low_ns


@pytest.mark.parametrize(
    ("timing", "windows", "reset_ns"),
    [(WS2812_SPI, WS2812_WINDOWS, WS2812_RESET_NS), (SK6812_SPI, SK6812_WINDOWS, SK6812_RESET_NS)],
)
@pytest.mark.parametrize("clock_error", [0.98, 1.0, 1.02])
def test_spi_encoding_meets_the_datasheet_timing(timing, windows, reset_ns, clock_error) -> None:
    rng = np.random.default_rng(1)
    data = np.concatenate(([0x00, 0xFF, 0xA5, 0x5A], rng.integers(0, 256, 300))).astype(np.uint8)
    spi = Ws2812SpiEncoder(timing).encode(data)
    # the Pi's SPI clock is the core clock over a divisor: a little off the asked rate
    slot_ns = timing.slot_ns / clock_error
    bits, final_low_ns = decode_line(spi, slot_ns, windows)
    assert np.packbits(np.array(bits, np.uint8)).tolist() == data.tolist()
    assert final_low_ns >= reset_ns


def test_spi_frame_size_for_176_leds() -> None:
    spi = Ws2812SpiEncoder(WS2812_SPI).encode(np.zeros(176 * 3, np.uint8))
    assert len(spi) == 176 * 3 * 3 + 90  # 3 SPI bytes per colour byte, 300 us of reset
    assert spi[-90:].tolist() == [0] * 90


def test_a_timing_outside_the_datasheet_is_caught_by_the_check() -> None:
    # The check itself must fail on a bad encoding: 4 slots at 2.4 MHz make T0L 1250 ns.
    bad = SpiTiming(hz=2_400_000, slots=4, zero_high=1, one_high=2)
    spi = Ws2812SpiEncoder(bad).encode(np.array([0x00, 0x0F], np.uint8))
    with pytest.raises(AssertionError):
        decode_line(spi, bad.slot_ns, WS2812_WINDOWS)


def test_colour_order_and_rgbw() -> None:
    frame = np.array([[10, 20, 30], [200, 100, 50]], np.uint8)
    assert reorder(frame, "GRB").tolist() == [[20, 10, 30], [100, 200, 50]]
    assert reorder(frame, "BGR").tolist() == [[30, 20, 10], [50, 100, 200]]
    assert reorder(frame, "GRBW").tolist() == [[10, 0, 20, 10], [50, 150, 0, 50]]


class RecordingSpi:
    """Stands in for spidev.SpiDev on a machine without SPI; records what is written."""

    def __init__(self) -> None:
        self.max_speed_hz = 0
        self.mode = 0
        self.writes: list[bytes] = []
        self.closed = False
        self.wrote = threading.Event()

    def writebytes2(self, data) -> None:
        self.writes.append(bytes(np.asarray(data, np.uint8)))
        self.wrote.set()

    def close(self) -> None:
        self.closed = True


def test_spi_backend_writes_grb_frames_from_its_thread_and_darkens_on_close() -> None:
    device = RecordingSpi()
    backend = SpiWs2812Backend(LedSettings(led_count=4, c8_led=3), device=device)
    frame = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 2, 3]], np.uint8)
    backend.show(frame, 0.0)
    assert device.wrote.wait(10)
    backend.close()
    spi = np.frombuffer(device.writes[0], np.uint8)
    bits, _ = decode_line(spi, WS2812_SPI.slot_ns, WS2812_WINDOWS)
    sent = np.packbits(np.array(bits, np.uint8)).tolist()
    assert sent == [0, 255, 0, 255, 0, 0, 0, 0, 255, 2, 1, 3]  # G, R, B per LED
    last = np.frombuffer(device.writes[-1], np.uint8)
    assert np.packbits(np.array(decode_line(last, WS2812_SPI.slot_ns, WS2812_WINDOWS)[0],
                                np.uint8)).tolist() == [0] * 12  # fmt: skip
    assert device.closed


def test_spi_write_failure_stops_the_output_with_its_reason() -> None:
    class Failing(RecordingSpi):
        def writebytes2(self, data) -> None:
            self.wrote.set()
            raise OSError(5, "Input/output error")

    device = Failing()
    backend = SpiWs2812Backend(LedSettings(led_count=4, c8_led=3), device=device)
    backend.show(np.zeros((4, 3), np.uint8), 0.0)
    assert device.wrote.wait(10)
    backend._writer._thread.join(10)
    with pytest.raises(OutputError, match=r"LED strip write failed: .*Input/output error"):
        backend.show(np.zeros((4, 3), np.uint8), 0.1)
    backend.close()


def test_missing_spi_device_names_the_fix() -> None:
    with pytest.raises(OutputError) as info:
        open_spidev("/dev/spidev9.7", 2_400_000)
    message = str(info.value)
    assert "/dev/spidev9.7 does not exist" in message
    assert "sudo raspi-config nonint do_spi 0" in message
    assert "group spi" in message


# --- DDP over UDP ------------------------------------------------------------------------------


@pytest.fixture
def udp_receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


def receive_frame(sock: socket.socket) -> list[bytes]:
    packets = []
    while True:
        packet, _ = sock.recvfrom(65536)
        packets.append(packet)
        if packet[0] & 0x01:  # PUSH: the frame is complete
            return packets


def test_ddp_packets_reach_a_real_udp_socket(udp_receiver: socket.socket) -> None:
    port = udp_receiver.getsockname()[1]
    settings = LedSettings(backend="ddp", ddp_host="127.0.0.1", ddp_port=port, led_count=600)
    backend = DdpBackend(settings)
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (600, 3)).astype(np.uint8)
    backend.show(frame, 0.0)
    packets = receive_frame(udp_receiver)
    assert len(packets) == 2  # 1800 bytes: 1440 + 360
    headers = [p[:10] for p in packets]
    assert [h[0] for h in headers] == [0x40, 0x41]  # version 1; PUSH on the last
    assert headers[0][1] == headers[1][1] == 1  # sequence 1..15
    assert {h[2] for h in headers} == {0x0B}  # RGB, 8 bits per channel
    assert {h[3] for h in headers} == {0x01}  # the display
    assert [int.from_bytes(h[4:8], "big") for h in headers] == [0, DDP_MAX_DATA]
    assert [int.from_bytes(h[8:10], "big") for h in headers] == [1440, 360]
    assert b"".join(p[10:] for p in packets) == frame.tobytes()
    backend.show(frame, 0.1)
    assert receive_frame(udp_receiver)[0][1] == 2  # the next frame, the next sequence
    backend.close()
    dark = receive_frame(udp_receiver)
    assert b"".join(p[10:] for p in dark) == bytes(1800)


def test_ddp_keepalive_resends_an_unchanged_frame(udp_receiver: socket.socket) -> None:
    port = udp_receiver.getsockname()[1]
    settings = LedSettings(backend="ddp", ddp_host="127.0.0.1", ddp_port=port, release_s=0.0)
    strip = LedStrip(settings, DdpBackend(settings))
    ticks(strip, 0.0, 3.05)  # dark all along: the first frame, then one per second
    assert strip.frames == 4
    strip.close()


def test_ddp_sequence_wraps_within_1_to_15() -> None:
    assert [p[1] for p in ddp_packets(b"\x00" * 3, 15)] == [15]
    assert len(ddp_packets(b"", 1)) == 1  # an empty strip still pushes


def test_ddp_unknown_host_names_the_setting() -> None:
    settings = LedSettings(backend="ddp", ddp_host="no-such-wled.invalid")
    with pytest.raises(OutputError, match=r"cannot find the WLED device .*\[leds\]\.ddp_host"):
        DdpBackend(settings)


# --- simulator and terminal ------------------------------------------------------------------


def test_simulator_writes_one_line_per_frame_with_only_lit_leds(tmp_path: Path) -> None:
    backend = SimulatorBackend(tmp_path / "leds.jsonl")
    strip = LedStrip(leds(release_s=0.1), backend)
    strip.tick(0.0)
    strip.handle(note_on(60, 0.5))
    strip.handle(NoteOff(60, "C4", 0.6, 0.6))
    ticks(strip, 0.6, 1.0)
    strip.close()
    lines = [json.loads(x) for x in (tmp_path / "leds.jsonl").read_text().splitlines()]
    assert lines[0] == {"t": 0.0, "lit": []}
    assert lines[1]["t"] == 0.5
    keymap = strip.renderer.keymap
    assert [led[0] for led in lines[1]["lit"]] == list(keymap.leds(60))
    assert all(led[1:] == [255, 0, 0] for led in lines[1]["lit"])
    assert lines[-1]["lit"] == []
    assert len(lines) == backend.frames
    assert [x["t"] for x in lines] == sorted(x["t"] for x in lines)


def test_simulator_into_a_missing_folder_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        SimulatorBackend(tmp_path / "nope" / "leds.jsonl")


def test_terminal_line_draws_lit_leds_in_truecolour() -> None:
    stream = StringIO()
    backend = TerminalBackend(stream, columns=88)
    frame = np.zeros((176, 3), np.uint8)
    frame[10] = (255, 0, 0)
    backend.show(frame, 0.0)
    text = stream.getvalue()
    assert text.startswith("\r") and text.endswith("\x1b[0m\x1b[K")
    assert text.count("\u2588") == 1 and "\x1b[38;2;255;0;0m" in text
    assert text.count("\u2581") == 87


def test_terminal_backend_needs_a_terminal() -> None:
    with pytest.raises(OutputError, match=r"no terminal .*\[leds\]\.backend"):
        TerminalBackend.check(StringIO())


# --- [leds] config rules ----------------------------------------------------------------------

SRC = "notesight.toml"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[leds]\nled_count = 100\nc8_led = 100",
            "[leds].c8_led: must be an LED index from 0 to 99 (led_count is 100) (got 100)",
        ),
        (
            "[leds]\nled_count = 0",
            "[leds].led_count: must be a whole number from 1 to 2000 (got 0)",
        ),
        (
            "[leds]\noffsets = { H4 = 1 }",
            '[leds].offsets: must be a table of note names and LED shifts, like { C4 = 1, "F#6" '
            '= -2 }: note names from A0 to C8, shifts whole numbers from -100 to 100; "H4" is '
            "not a piano key (got a table)",
        ),
        (
            "[leds]\noffsets = { C4 = 500 }",
            '[leds].offsets: must be a table of note names and LED shifts, like { C4 = 1, "F#6" '
            "= -2 }: note names from A0 to C8, shifts whole numbers from -100 to 100; C4 = 500 "
            "is out of range (got a table)",
        ),
        (
            '[leds]\ncolour = "orange"',
            '[leds].colour: must be a colour written "#rrggbb", like "#ff8000" (got "orange")',
        ),
        (
            '[leds]\nspi_device = "/dev/i2c-1"',
            '[leds].spi_device: must be an SPI device like "/dev/spidev0.0" (got "/dev/i2c-1")',
        ),
        (
            '[leds]\nbackend = "ddp"',
            '[leds].ddp_host: must name the WLED device, like "192.168.1.50", when backend = '
            '"ddp" (got "")',
        ),
        (
            '[leds]\nbackend = "neopixel"',
            '[leds].backend: must be one of "terminal", "spi", "ws281x", "ddp", "none" '
            '(got "neopixel")',
        ),
        (
            "[leds]\nbrightness = 1.5",
            "[leds].brightness: must be a number from 0 to 1 (got 1.5)",
        ),
        (
            "[leds]\nfps = 5",
            "[leds].fps: must be a whole number from 10 to 240 (got 5)",
        ),
        (
            '[leds]\ncolour_order = "RGBX"',
            '[leds].colour_order: must be one of "GRB", "RGB", "BRG", "RBG", "GBR", "BGR", '
            '"GRBW", "RGBW" (got "RGBX")',
        ),
    ],
)
def test_leds_config_rules(toml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(toml, SRC)
    assert str(info.value) == f"{SRC}: {expected}"


def test_ddp_host_given_with_ddp_is_accepted() -> None:
    settings = parse_settings('[leds]\nbackend = "ddp"\nddp_host = "wled.local"', SRC)
    assert settings.leds.ddp_host == "wled.local"


def test_offset_names_are_canonical() -> None:
    settings = parse_settings('[leds]\noffsets = { "Bb3" = 2, c5 = -1 }', SRC)
    assert settings.leds.offsets == {"A#3": 2, "C5": -1}
