"""LED strip backends: where `LedStrip` frames go. All share one small interface
(`name`, `keepalive_s`, `show(frame, t)`, `close()`; see `leds.LedBackend`):

- `SpiWs2812Backend`: WS2812/SK6812 on the SPI MOSI pin through spidev; Pi 3/4/5, no root.
- `Ws281xBackend`: rpi_ws281x (PWM/DMA; needs root), for older setups; imported only when used.
- `DdpBackend`: a WLED device on the network, DDP over UDP (port 4048).
- `SimulatorBackend`: one JSON line per frame (`notesight run --simulate DIR`).
- `TerminalBackend`: the strip drawn as one line of coloured blocks in a terminal.

Frames are uint8 arrays of shape (led_count, 3), RGB, already at their final brightness.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import shutil
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import numpy as np

from .config import LedSettings
from .errors import OutputError, explain_os_error
from .outputs import open_simulator_log

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Colour order (shared by the hardware backends)
# ---------------------------------------------------------------------------------------------


def reorder(frame: np.ndarray, colour_order: str) -> np.ndarray:
    """RGB frame -> the bytes per LED in the strip's order; for RGBW strips the white channel
    takes the grey part of each colour (min of R, G, B), which the colour LEDs then leave out."""
    rgb = frame.astype(np.int16)
    channels = {"R": rgb[:, 0], "G": rgb[:, 1], "B": rgb[:, 2]}
    if "W" in colour_order:
        white = rgb.min(axis=1)
        channels = {k: v - white for k, v in channels.items()}
        channels["W"] = white
    return np.stack([channels[c] for c in colour_order], axis=1).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# WS2812 over SPI
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpiTiming:
    """How one WS2812 data bit becomes SPI bits: at `hz`, each data bit is `slots` SPI bits, of
    which the first `zero_high` (for a 0) or `one_high` (for a 1) are high. `reset_us` of low
    line after the frame latches it."""

    hz: int
    slots: int
    zero_high: int
    one_high: int
    reset_us: float = 300.0

    @property
    def slot_ns(self) -> float:
        return 1e9 / self.hz


# WS2812/WS2812B datasheet: T0H 0.40 us, T1H 0.80 us, T0L 0.85 us, T1L 0.45 us, each +-150 ns;
# reset above 50 us (above 280 us for the newer WS2812B-V5 parts, hence 300 us).
# 3 SPI bits at 2.4 MHz (416.7 ns each): 0 = 100 (T0H 417, T0L 833 ns), 1 = 110 (T1H 833,
# T1L 417 ns): every time inside its window, as in rpi_ws281x's own SPI mode. The Pi makes
# 2.4 MHz by dividing the core clock (250 MHz / 104 = 2.404 MHz): 0.2 % off, far inside.
# On a Pi 3 the core clock follows the CPU unless fixed: add core_freq=250 to config.txt
# (Pi 4: core_freq_min=500), or the SPI clock and so the bit timing drift when the CPU idles.
WS2812_SPI = SpiTiming(hz=2_400_000, slots=3, zero_high=1, one_high=2)
# SK6812 datasheet: T0H 0.3 us, T1H 0.6 us, T0L 0.9 us, T1L 0.6 us, each +-150 ns; reset above
# 80 us. WS2812's 833 ns T1H is outside SK6812's 450-750 ns, so SK6812 gets its own: 4 SPI bits
# at 3.2 MHz (312.5 ns): 0 = 1000 (T0H 313, T0L 938 ns), 1 = 1100 (T1H 625, T1L 625 ns).
SK6812_SPI = SpiTiming(hz=3_200_000, slots=4, zero_high=1, one_high=2)
SPI_TIMINGS = {"ws2812": WS2812_SPI, "sk6812": SK6812_SPI}


def _symbol_table(timing: SpiTiming) -> np.ndarray:
    """For each byte value, the SPI bytes that send it (MSB first): shape (256, slots)."""
    zero = [1] * timing.zero_high + [0] * (timing.slots - timing.zero_high)
    one = [1] * timing.one_high + [0] * (timing.slots - timing.one_high)
    table = np.zeros((256, timing.slots), np.uint8)
    for value in range(256):
        bits: list[int] = []
        for i in range(7, -1, -1):
            bits += one if value >> i & 1 else zero
        table[value] = np.packbits(np.array(bits, np.uint8))  # 8 * slots bits = slots bytes
    return table


class Ws2812SpiEncoder:
    """Frame bytes (in the strip's colour order) -> the SPI byte stream that draws them."""

    def __init__(self, timing: SpiTiming = WS2812_SPI) -> None:
        self.timing = timing
        self._table = _symbol_table(timing)
        self._reset = np.zeros(math.ceil(timing.reset_us * 1e-6 * timing.hz / 8), np.uint8)

    def encode(self, data: np.ndarray) -> np.ndarray:
        symbols = self._table[data.reshape(-1)].reshape(-1)
        return np.concatenate((symbols, self._reset))


class SpiDevice(Protocol):
    """What SpiWs2812Backend needs of spidev.SpiDev."""

    max_speed_hz: int
    mode: int

    def writebytes2(self, data: object) -> None: ...

    def close(self) -> None: ...


_SPIDEV_RE = re.compile(r"^/dev/spidev(\d+)\.(\d+)$")
_SPI_FIX = "enable SPI (sudo raspi-config nonint do_spi 0) and add the user to group spi"


def open_spidev(path: str, hz: int) -> SpiDevice:
    """Open /dev/spidevB.C through spidev, or raise OutputError naming the fix."""
    match = _SPIDEV_RE.match(path)
    if match is None:
        raise OutputError(f'LED strip: {path!r} is not an SPI device like "/dev/spidev0.0"')
    try:
        import spidev
    except ImportError:
        raise OutputError(
            "LED strip: the spidev module is missing: run ./install.sh again "
            "(or .venv/bin/pip install spidev)"
        ) from None
    device = spidev.SpiDev()
    try:
        device.open(int(match[1]), int(match[2]))
        device.max_speed_hz = hz
        device.mode = 0
    except OSError as exc:
        raise OutputError("LED strip: " + explain_os_error(exc, path, "SPI device")) from None
    return device


def _spidev_bufsiz(sysfs: Path = Path("/sys/module/spidev/parameters/bufsiz")) -> int | None:
    try:
        return int(sysfs.read_text().strip())
    except (OSError, ValueError):
        return None


class _FrameWriter:
    """A thread that writes the newest frame to a slow device, so `show` never waits for it.

    Only the latest frame matters: one that arrives while the device is busy replaces the
    one waiting. A write error stops the thread and is raised by the next `show`, so the
    daemon drops the output with that message."""

    def __init__(self, name: str, write) -> None:
        self._write = write
        self._pending: np.ndarray | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.failure: str | None = None
        self.written = 0
        self._thread = threading.Thread(target=self._run, name=f"notesight-{name}", daemon=True)
        self._thread.start()

    def submit(self, frame: np.ndarray) -> None:
        if self.failure is not None:
            raise OutputError(self.failure)
        with self._lock:
            self._pending = frame
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                frame, self._pending = self._pending, None
            if frame is None:
                continue
            try:
                self._write(frame)
                self.written += 1
            except Exception as exc:  # any device failure ends the thread; show() reports it
                self.failure = f"LED strip write failed: {exc}"
                log.debug("LED writer failed", exc_info=True)
                return

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()


class SpiWs2812Backend:
    """WS2812/SK6812 on SPI MOSI (GPIO10, header pin 19), through spidev: no root needed.

    A 176-LED frame is 1584 SPI bytes plus the reset, about 5.6 ms on the wire, so writing
    happens in a thread. Wire a level shifter (e.g. 74AHCT125) from 3.3 V to the strip's 5 V
    data input if the strip does not take 3.3 V data reliably."""

    name = "spi"
    keepalive_s: float | None = None

    def __init__(self, settings: LedSettings, device: SpiDevice | None = None) -> None:
        self.led_count = settings.led_count
        self.colour_order = settings.colour_order
        self.encoder = Ws2812SpiEncoder(SPI_TIMINGS[settings.chip])
        self.device = device or open_spidev(settings.spi_device, self.encoder.timing.hz)
        dark = np.zeros(settings.led_count * len(self.colour_order), np.uint8)
        frame_bytes = len(self.encoder.encode(dark))
        bufsiz = _spidev_bufsiz()
        if bufsiz is not None and frame_bytes > bufsiz:
            # spidev splits longer writes; the gap between the parts can latch the strip early.
            log.warning(
                "LED strip: a frame is %d SPI bytes but spidev sends at most %d at once: add "
                "spidev.bufsiz=65536 to /boot/firmware/cmdline.txt and reboot",
                frame_bytes,
                bufsiz,
            )
        self._writer = _FrameWriter("leds-spi", self._write)

    def _write(self, frame: np.ndarray) -> None:
        self.device.writebytes2(self.encoder.encode(reorder(frame, self.colour_order)))

    def show(self, frame: np.ndarray, t: float) -> None:
        self._writer.submit(frame)

    def close(self) -> None:
        self._writer.stop()
        try:
            if self._writer.failure is None:  # leave the strip dark, not frozen on a note
                self._write(np.zeros((self.led_count, 3), np.uint8))
        finally:
            self.device.close()


# ---------------------------------------------------------------------------------------------
# rpi_ws281x (PWM/DMA)
# ---------------------------------------------------------------------------------------------


class Ws281xBackend:
    """A WS2812 strip through rpi_ws281x (PWM or PCM with DMA). Needs root and a Pi up to the
    4 (no Pi 5 support in rpi_ws281x); prefer backend = "spi"."""

    name = "ws281x"
    keepalive_s: float | None = None

    def __init__(self, settings: LedSettings) -> None:
        try:
            import rpi_ws281x
        except ImportError:
            raise OutputError(
                "LED strip: rpi_ws281x is not installed: .venv/bin/pip install 'notesight[pi]', "
                'or use backend = "spi" in [leds] (no root needed)'
            ) from None
        self.led_count = settings.led_count
        self.colour_order = settings.colour_order
        channel = 1 if settings.ws281x_pin in (13, 19) else 0
        strip_type = getattr(rpi_ws281x, f"WS2811_STRIP_{settings.colour_order}", None)
        if strip_type is None:
            strip_type = getattr(rpi_ws281x, f"SK6812_STRIP_{settings.colour_order}")
        self.strip = rpi_ws281x.PixelStrip(
            settings.led_count,
            settings.ws281x_pin,
            800_000,
            settings.ws281x_dma,
            False,
            255,
            channel,
            strip_type,
        )
        try:
            self.strip.begin()
        except RuntimeError as exc:
            raise OutputError(
                f"LED strip: rpi_ws281x could not start ({exc}): it needs root (run the daemon "
                'as root) and a Pi 1-4; or use backend = "spi" in [leds]'
            ) from None
        self._writer = _FrameWriter("leds-ws281x", self._write)

    def _write(self, frame: np.ndarray) -> None:
        # rpi_ws281x takes 0xWWRRGGBB and applies the strip's colour order itself.
        rgb = frame.astype(np.uint32)
        white = rgb.min(axis=1) if "W" in self.colour_order else np.zeros(len(rgb), np.uint32)
        rgb = rgb - white[:, None]
        packed = white << 24 | rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2]
        for i, value in enumerate(packed.tolist()):
            self.strip.setPixelColor(i, value)
        self.strip.show()

    def show(self, frame: np.ndarray, t: float) -> None:
        self._writer.submit(frame)

    def close(self) -> None:
        self._writer.stop()
        if self._writer.failure is None:
            self._write(np.zeros((self.led_count, 3), np.uint8))


# ---------------------------------------------------------------------------------------------
# WLED over DDP
# ---------------------------------------------------------------------------------------------

DDP_PORT = 4048
DDP_HEADER_LEN = 10
DDP_FLAGS_VER1 = 0x40  # bits 7-6: protocol version 1
DDP_FLAGS_PUSH = 0x01  # on the last packet of a frame: show it now
DDP_TYPE_RGB24 = 0x0B  # 00 001 011: RGB, 8 bits per channel
DDP_ID_DISPLAY = 0x01  # the default output device
DDP_MAX_DATA = 1440  # bytes of pixel data per packet (480 RGB LEDs), as WLED sends


def ddp_packets(rgb: bytes, sequence: int) -> list[bytes]:
    """A frame's RGB bytes as DDP packets (http://www.3waylabs.com/ddp/): a 10-byte header
    (flags, sequence 1-15, data type, destination, byte offset u32 BE, length u16 BE) per
    packet of at most 1440 bytes; PUSH on the last one."""
    packets = []
    offsets = range(0, max(len(rgb), 1), DDP_MAX_DATA)
    for offset in offsets:
        chunk = rgb[offset : offset + DDP_MAX_DATA]
        flags = DDP_FLAGS_VER1 | (DDP_FLAGS_PUSH if offset == offsets[-1] else 0)
        header = bytes((flags, sequence & 0x0F, DDP_TYPE_RGB24, DDP_ID_DISPLAY))
        header += offset.to_bytes(4, "big") + len(chunk).to_bytes(2, "big")
        packets.append(header + chunk)
    return packets


class DdpBackend:
    """A WLED (or any DDP) device on the network. WLED expects RGB and applies its own colour
    order. Sending never stops the output: while the network is away a warning is logged once
    and the frames are dropped (old light is of no use later); it resumes when it returns."""

    name = "ddp"
    keepalive_s: float | None = 1.0  # WLED returns to its own effects after 2.5 s without data

    def __init__(self, settings: LedSettings) -> None:
        self.host, self.port = settings.ddp_host, settings.ddp_port
        self.led_count = settings.led_count
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise OutputError(
                f"LED strip: cannot find the WLED device {self.host!r} ({exc.strerror}): check "
                "[leds].ddp_host and that the Pi is on the same network"
            ) from None
        family, _, _, _, self.address = infos[0]
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)  # a full send buffer drops a frame, never stalls the loop
        self._sequence = 0
        self._failing = False
        self.sent_frames = 0

    def show(self, frame: np.ndarray, t: float) -> None:
        self._sequence = self._sequence % 15 + 1  # 1..15; 0 would mean "not used"
        try:
            for packet in ddp_packets(frame.tobytes(), self._sequence):
                self.sock.sendto(packet, self.address)
        except OSError as exc:
            if not self._failing:
                log.warning(
                    "LED strip: cannot reach WLED at %s:%d (%s); retrying with every frame",
                    self.host,
                    self.port,
                    exc.strerror or exc,
                )
            self._failing = True
            return
        if self._failing:
            log.warning("LED strip: WLED at %s:%d reachable again", self.host, self.port)
        self._failing = False
        self.sent_frames += 1

    def close(self) -> None:
        try:
            for packet in ddp_packets(bytes(3 * self.led_count), self._sequence % 15 + 1):
                self.sock.sendto(packet, self.address)
        except OSError:
            pass  # leaving WLED dark is a courtesy; it times out to its own effects anyway
        self.sock.close()


# ---------------------------------------------------------------------------------------------
# Simulator and terminal
# ---------------------------------------------------------------------------------------------


def lit_leds(frame: np.ndarray) -> list[list[int]]:
    """[[index, r, g, b], ...] for the LEDs that are not dark."""
    lit = np.flatnonzero(frame.any(axis=1))
    return [[int(i), *(int(c) for c in frame[i])] for i in lit]


class SimulatorBackend:
    """Writes each frame as one JSON line, `{"t": 1.234, "lit": [[i, r, g, b], ...]}`, with t
    in stream (audio) seconds and only the LEDs that are not dark."""

    name = "simulator"
    keepalive_s: float | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open_simulator_log(path, "LED simulator")
        self.frames = 0

    def show(self, frame: np.ndarray, t: float) -> None:
        self._file.write(json.dumps({"t": round(t, 4), "lit": lit_leds(frame)}) + "\n")
        self.frames += 1

    def close(self) -> None:
        self._file.close()


class TerminalBackend:
    """The strip as one line of coloured blocks (ANSI truecolour) redrawn in place; when the
    strip has more LEDs than the terminal has columns, neighbouring LEDs share a cell (the
    brightest shows). Dark LEDs are a dim line, so the strip's extent stays visible."""

    name = "terminal"
    keepalive_s: float | None = None

    def __init__(self, stream: IO[str], columns: int | None = None) -> None:
        self.stream = stream
        self.columns = columns or max(shutil.get_terminal_size((80, 24)).columns - 1, 10)
        self.drawn = 0

    @staticmethod
    def check(stream: IO[str]) -> None:
        if not stream.isatty():
            raise OutputError(
                "LED strip: no terminal to draw the strip in; set [leds].backend to "
                '"spi", "ws281x" or "ddp" for a real strip, or "none"'
            )

    def line(self, frame: np.ndarray) -> str:
        cells = min(self.columns, len(frame))
        edges = np.linspace(0, len(frame), cells + 1).astype(int)
        parts = []
        current = None
        for start, stop in itertools.pairwise(edges):
            group = frame[start : max(stop, start + 1)]
            rgb = tuple(int(c) for c in group[group.sum(axis=1).argmax()])
            lit = any(rgb)
            colour = rgb if lit else (60, 60, 60)
            if colour != current:  # a colour code only where the colour changes
                parts.append("\x1b[38;2;{};{};{}m".format(*colour))
                current = colour
            parts.append("\u2588" if lit else "\u2581")
        return "\r" + "".join(parts) + "\x1b[0m\x1b[K"

    def show(self, frame: np.ndarray, t: float) -> None:
        self.stream.write(self.line(frame))
        self.stream.flush()
        self.drawn += 1

    def clear(self) -> None:
        """Wipe the strip's line, e.g. before printing a line of text under it."""
        if self.drawn:
            self.stream.write("\r\x1b[K")

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
