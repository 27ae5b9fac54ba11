"""The OLED: a big note name with its octave and a cents needle, the chord, a loudness bar and
a status line (microphone, MQTT, alert), on an SSD1306/SH1106 through luma.oled.

`ScreenState` follows the events; `render_screen` draws a `Screen` into a PIL image the size
of the display. The hardware display (`OledDisplay`) redraws from its own thread at most `fps`
times a second and only when the screen changed, so a slow I2C bus never holds up the audio
loop. The simulator (`SimulatedOled`) draws on stream time in the loop and keeps one PNG per
distinct screen.

Text uses Pillow's built-in bitmap font, scaled up by whole pixels for the note name: no font
files to install, crisp on a 1-bit display, and the same pixels on every machine (the
reference images in tests/reference/oled/ depend on that).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from PIL import Image, ImageDraw, ImageFont

from notesight.dsp.events import Alert, Chord, Event, Level, NoteOn

from .config import OledSettings
from .errors import OutputError, explain_os_error
from .outputs import DeviceStatus

log = logging.getLogger(__name__)

LOUDNESS_RANGE_DB = 60.0  # the bar spans from the noise floor to 60 dB above it
LOUDNESS_STEPS = 32  # the bar moves in steps, so level jitter does not redraw the screen
CENTS_RANGE = 50.0


@dataclass(frozen=True)
class Screen:
    """Everything the display shows; equal screens are not redrawn."""

    note: str = ""  # "C#4"; "" before the first note
    cents: int = 0
    chord: str = ""
    loudness: int = 0  # 0..LOUDNESS_STEPS
    mic_ok: bool = True
    mqtt: str = ""  # "" (no MQTT), "MQTT ok", "MQTT 12 queued", "MQTT off"
    alert: str = ""


def mqtt_text(status: DeviceStatus) -> str:
    if not status.mqtt_enabled:
        return ""
    if status.mqtt_connected:
        return "MQTT ok" if status.mqtt_queued == 0 else f"MQTT {status.mqtt_queued} queued"
    return f"MQTT off {status.mqtt_queued} queued" if status.mqtt_queued else "MQTT off"


class ScreenState:
    """What the screen should show, updated from the daemon's events (loop thread) and read
    by whoever draws (the OLED thread); the Screen it hands out is immutable."""

    def __init__(self, status: DeviceStatus) -> None:
        self.status = status
        self._lock = threading.Lock()
        self._note = ""
        self._cents = 0
        self._chord = ""
        self._loudness = 0
        self._alert = ""

    def handle(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, NoteOn):
                self._note, self._cents = event.name, round(event.cents)
            elif isinstance(event, Level):
                above = (event.dbfs - event.floor_dbfs) / LOUDNESS_RANGE_DB
                self._loudness = round(min(max(above, 0.0), 1.0) * LOUDNESS_STEPS)
            elif isinstance(event, Chord):
                self._chord = event.name
            elif isinstance(event, Alert):
                if event.active:
                    self._alert = event.label
                elif event.label == self._alert:
                    self._alert = ""

    def screen(self) -> Screen:
        status = self.status.snapshot()
        with self._lock:
            return Screen(
                note=self._note,
                cents=self._cents,
                chord=self._chord,
                loudness=self._loudness,
                mic_ok=status.mic_ok,
                mqtt=mqtt_text(status),
                alert=self._alert or status.alert,
            )


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------

_CHAR_W, _CHAR_H = 6, 11  # Pillow's built-in bitmap font


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default_imagefont()


def _big_text(text: str, scale: int) -> Image.Image:
    """Bitmap-font text blown up by whole pixels (nearest neighbour keeps it crisp)."""
    small = Image.new("1", (max(_CHAR_W * len(text), 1), _CHAR_H))
    ImageDraw.Draw(small).text((0, 0), text, font=_font(), fill=1)
    return small.resize((small.width * scale, small.height * scale), Image.Resampling.NEAREST)


def _needle(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], cents: int) -> None:
    """A tuning scale from -50 to +50 cents with a needle; the centre tick is in tune."""
    left, top, right, bottom = box
    middle = (left + right) // 2
    half = (right - left) // 2
    base = bottom - 1
    draw.line((left, base, right, base), fill=1)
    for fraction in (-1.0, -0.5, 0.0, 0.5, 1.0):
        x = middle + round(fraction * half)
        tall = 3 if fraction == 0.0 else 1
        draw.line((x, base - tall, x, base), fill=1)
    x = middle + round(max(-1.0, min(1.0, cents / CENTS_RANGE)) * half)
    draw.polygon(((x - 2, top), (x + 2, top), (x, base - 1)), fill=1)


def _bar(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], steps: int) -> None:
    left, top, right, bottom = box
    draw.rectangle(box, outline=1, fill=0)
    inner = right - left - 2
    filled = round(inner * steps / LOUDNESS_STEPS)
    if filled > 0:
        draw.rectangle((left + 1, top + 1, left + filled, bottom - 1), fill=1)


def _status_text(screen: Screen) -> str:
    parts = ["mic ok" if screen.mic_ok else "NO MIC"]
    if screen.mqtt:
        parts.append(screen.mqtt)
    return "  ".join(parts)


def _status(draw: ImageDraw.ImageDraw, origin: tuple[int, int], width: int, screen: Screen) -> None:
    x, y = origin
    if screen.alert:
        # An alert replaces the status line, white on black inverted so it stands out.
        draw.rectangle((x, y, x + width - 1, y + _CHAR_H - 1), fill=1)
        text = ("! " + screen.alert.replace("_", " ").upper())[: width // _CHAR_W]
        draw.text((x + 1, y), text, font=_font(), fill=0)
    else:
        draw.text((x, y), _status_text(screen)[: width // _CHAR_W], font=_font(), fill=1)


def _cents_text(screen: Screen) -> str:
    return f"{screen.cents:+d}c" if screen.note else ""


def render_screen(screen: Screen, size: tuple[int, int]) -> Image.Image:
    """The screen as a 1-bit image for a 128x64 or 128x32 display."""
    width, height = size
    image = Image.new("1", size)
    draw = ImageDraw.Draw(image)
    font = _font()
    if height >= 64:
        note = _big_text(screen.note or "--", 3)  # 33 px tall
        image.paste(note, (0, 0))
        draw.text((62, 1), screen.chord[:11], font=font, fill=1)
        draw.text((62, 15), _cents_text(screen), font=font, fill=1)
        if screen.note:
            _needle(draw, (0, 35, width - 1, 44), screen.cents)
        _bar(draw, (0, 46, width - 1, 51), screen.loudness)
        _status(draw, (0, 53), width, screen)
    else:
        note = _big_text(screen.note or "--", 2)  # 22 px tall
        image.paste(note, (0, 0))
        if screen.note:
            _needle(draw, (0, 24, 61, 31), screen.cents)
        draw.text((66, 0), screen.chord[:10], font=font, fill=1)
        _bar(draw, (66, 13, width - 1, 18), screen.loudness)
        if screen.alert:
            _status(draw, (66, 21), width - 66, screen)
        else:
            line = "NO MIC" if not screen.mic_ok else (screen.mqtt or _cents_text(screen))
            draw.text((66, 21), line[:10], font=font, fill=1)
    return image


# ---------------------------------------------------------------------------------------------
# The hardware display
# ---------------------------------------------------------------------------------------------

_I2C_WIRING = (
    "check the wiring (SDA to header pin 3, SCL to pin 5, VCC to 3.3 V, GND) and "
    "[oled].i2c_address; `i2cdetect -y {port}` lists the addresses that answer"
)


def open_oled(settings: OledSettings, *, bus: Any = None) -> Any:
    """The luma.oled device the config describes, or OutputError naming the fix.

    `bus`: an smbus2-like object to use instead of opening /dev/i2c-N (luma's own parameter)."""
    try:
        from luma.core.error import DeviceNotFoundError, DevicePermissionError
        from luma.core.interface.serial import i2c, spi
        from luma.oled.device import sh1106, ssd1306
    except ImportError:
        raise OutputError(
            "OLED: luma.oled is missing: run ./install.sh again (or .venv/bin/pip install "
            "luma.oled)"
        ) from None
    driver = {"ssd1306": ssd1306, "sh1106": sh1106}[settings.driver]
    if settings.interface == "i2c":
        path = f"/dev/i2c-{settings.i2c_port}"
        where = f"I2C address 0x{settings.i2c_address:02X} on {path}"
    else:
        path = f"/dev/spidev{settings.spi_port}.{settings.spi_device}"
        where = path
    try:
        if settings.interface == "i2c":
            serial = i2c(bus=bus, port=settings.i2c_port, address=settings.i2c_address)
        else:
            serial = spi(
                port=settings.spi_port,
                device=settings.spi_device,
                gpio_DC=settings.dc_pin,
                gpio_RST=settings.reset_pin,
            )
        return driver(serial, width=settings.width, height=settings.height, rotate=settings.rotate)
    except DevicePermissionError:
        error = OSError(errno.EACCES, "Permission denied")
        raise OutputError("OLED: " + explain_os_error(error, path, "display")) from None
    except DeviceNotFoundError as exc:
        if "address" in str(exc):  # the bus is there, but nothing answers at the address
            raise OutputError(
                f"OLED: nothing answers at {where}: " + _I2C_WIRING.format(port=settings.i2c_port)
            ) from None
        error = OSError(errno.ENOENT, "No such file or directory")
        raise OutputError("OLED: " + explain_os_error(error, path, "display")) from None
    except (OSError, RuntimeError, ImportError) as exc:
        # SPI wiring needs a GPIO library for DC/RST; the bus itself may fail in other ways.
        raise OutputError(f"OLED: cannot start the display at {where}: {exc}") from None


class OledDisplay:
    """The OLED output (name "oled"): events update the state at once; a thread draws.

    The thread wakes at most `fps` times a second (sooner never: an I2C frame of a 128x64
    display is about 23 ms at 400 kHz) and sends a frame only when the screen changed. A
    failure in the thread (display unplugged) is raised by the next `handle`/`tick`, so the
    daemon logs it once and drops the display."""

    name = "oled"

    def __init__(self, settings: OledSettings, device: Any, status: DeviceStatus) -> None:
        self.device = device
        self.state = ScreenState(status)
        self._period_s = 1.0 / settings.fps
        self._stop = threading.Event()
        self.failure: str | None = None
        self.drawn = 0
        self.checks = 0
        self.check_done = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="notesight-oled", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        shown: Screen | None = None
        while not self._stop.is_set():
            screen = self.state.screen()
            try:
                if screen != shown:
                    self.device.display(render_screen(screen, self.device.size))
                    shown = screen
                    self.drawn += 1
            except Exception as exc:  # any display failure ends the thread; handle() reports it
                self.failure = f"OLED stopped: {exc}"
                log.debug("OLED thread failed", exc_info=True)
                return
            finally:
                with self.check_done:
                    self.checks += 1
                    self.check_done.notify_all()
            self._stop.wait(self._period_s)

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise OutputError(self.failure)

    def handle(self, event: Event) -> None:
        self._raise_failure()
        self.state.handle(event)

    def tick(self, stream_s: float) -> None:
        self._raise_failure()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        if self.failure is None:
            self.device.cleanup()  # clears and switches off the display


# ---------------------------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------------------------


class SimulatedOled:
    """The OLED in `--simulate DIR`: drawn on luma's dummy device on stream time, at most
    `fps` times a stream second and only on change. Each distinct screen is saved once as
    DIR/oled/NNN.png; DIR/oled/screens.jsonl has `{"t": ..., "png": "NNN.png"}` per change."""

    name = "oled"

    def __init__(self, settings: OledSettings, status: DeviceStatus, folder: Path) -> None:
        from luma.core.device import dummy

        self.device = dummy(width=settings.width, height=settings.height, mode="1")
        self.state = ScreenState(status)
        self.folder = folder
        self._period_s = 1.0 / settings.fps
        self._next_s = 0.0
        self._shown: Screen | None = None
        self._files: dict[str, str] = {}  # image digest -> file name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._log: IO[str] = (folder / "screens.jsonl").open("w", encoding="utf-8")
        except OSError as exc:
            message = explain_os_error(exc, folder, "output folder")
            raise OutputError(f"OLED simulator: {message}") from None
        self.changes = 0

    def handle(self, event: Event) -> None:
        self.state.handle(event)

    def tick(self, stream_s: float) -> None:
        if stream_s < self._next_s:
            return
        self._next_s += self._period_s
        if self._next_s <= stream_s:
            self._next_s = stream_s + self._period_s
        screen = self.state.screen()
        if screen == self._shown:
            return
        self._shown = screen
        self.device.display(render_screen(screen, self.device.size))
        image = self.device.image
        digest = hashlib.sha1(image.tobytes()).hexdigest()
        name = self._files.get(digest)
        if name is None:
            name = f"{len(self._files):03d}.png"
            image.save(self.folder / name)
            self._files[digest] = name
        self._log.write(json.dumps({"t": round(stream_s, 4), "png": name}) + "\n")
        self.changes += 1

    @property
    def distinct_screens(self) -> int:
        return len(self._files)

    def close(self) -> None:
        self._log.close()
