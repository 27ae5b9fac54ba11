"""Builds what the pianist sees and feels: the LED strip, the OLED and the motor, from the
config, or their simulators for `notesight run --simulate DIR`.

A hardware output that cannot start (no /dev/spidev0.0, nothing at the I2C address, no GPIO)
is logged once with the fix and left out; the others go on. A simulation folder that cannot be
written is an error: the run was asked for precisely to write it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .errors import NotesightError, OutputError, explain_os_error

if TYPE_CHECKING:
    from .config import LedSettings, Settings
    from .leds import LedBackend
    from .outputs import DeviceStatus, Output
    from .run import RunOptions

log = logging.getLogger(__name__)


def build_feedback_outputs(
    settings: Settings,
    options: RunOptions,
    status: DeviceStatus,
    terminal: IO[str] | None = None,
) -> list[Output]:
    """The LED, OLED and motor outputs for this run. `terminal`: where a "terminal" LED strip
    is drawn (default: stdout when it is a terminal and not carrying --jsonl events)."""
    if options.simulate_dir is not None:
        return simulated_outputs(settings, status, options.simulate_dir)
    if terminal is None and options.events_out is None:
        terminal = sys.stdout
    builders: list[Callable[[], Output | None]] = [
        lambda: _led_strip(settings, status, terminal),
        lambda: _oled(settings, status),
        lambda: _motor(settings),
    ]
    outputs = []
    for build in builders:
        try:
            output = build()
        except OutputError as exc:
            log.error("%s", exc)  # one line naming the fix; the daemon goes on without it
            continue
        if output is not None:
            outputs.append(output)
    return outputs


def simulated_outputs(settings: Settings, status: DeviceStatus, folder: Path) -> list[Output]:
    """DIR/leds.jsonl, DIR/oled/ and DIR/motor.jsonl (see README: Simulator)."""
    from .led_backends import SimulatorBackend
    from .leds import LedStrip
    from .motor import JsonlMotorSink, Motor
    from .oled import SimulatedOled

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NotesightError(explain_os_error(exc, folder, "simulation folder")) from None
    try:
        return [
            LedStrip(
                settings.leds,
                SimulatorBackend(folder / "leds.jsonl"),
                status,
                alert_timeout_s=settings.alerts.timeout_s,
            ),
            SimulatedOled(settings.oled, status, folder / "oled"),
            Motor(settings.motor, JsonlMotorSink(folder / "motor.jsonl")),
        ]
    except OutputError as exc:
        raise NotesightError(str(exc)) from None


def led_backend(settings: LedSettings, terminal: IO[str] | None) -> LedBackend | None:
    """The configured LED backend, opened; None for backend = "none" or no terminal."""
    from . import led_backends

    if settings.backend == "none":
        return None
    if settings.backend == "terminal":
        if terminal is None or not terminal.isatty():
            # The default backend, so not an error: a service has no terminal to draw in.
            log.warning(
                'LED strip: backend = "terminal" but there is no terminal to draw it in; set '
                '[leds].backend to "spi", "ws281x" or "ddp" for a real strip, or "none"'
            )
            return None
        return led_backends.TerminalBackend(terminal)
    if settings.backend == "spi":
        return led_backends.SpiWs2812Backend(settings)
    if settings.backend == "ws281x":
        return led_backends.Ws281xBackend(settings)
    return led_backends.DdpBackend(settings)


def _led_strip(settings: Settings, status: DeviceStatus, terminal: IO[str] | None) -> Output | None:
    from .leds import LedStrip

    backend = led_backend(settings.leds, terminal)
    if backend is None:
        return None
    return LedStrip(settings.leds, backend, status, alert_timeout_s=settings.alerts.timeout_s)


def _oled(settings: Settings, status: DeviceStatus) -> Output | None:
    if not settings.oled.enabled:
        return None
    from .oled import OledDisplay, open_oled

    return OledDisplay(settings.oled, open_oled(settings.oled), status)


def _motor(settings: Settings) -> Output | None:
    if not settings.motor.enabled:
        return None
    from .motor import GpioMotorSink, Motor

    return Motor(settings.motor, GpioMotorSink(settings.motor))
