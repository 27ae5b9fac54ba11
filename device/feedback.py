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
from .outputs import OutputPart

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
    parts = feedback_parts(settings, options, status, terminal)
    return [output for part in parts for output in part.build()]


def feedback_parts(
    settings: Settings,
    options: RunOptions,
    status: DeviceStatus,
    terminal: IO[str] | None = None,
) -> list[OutputPart]:
    """The LED, OLED and motor outputs, one part each, so that a reload rebuilds only the one
    whose settings changed (see OutputPart)."""
    if options.simulate_dir is not None:
        return simulated_parts(settings, status, options.simulate_dir)
    if terminal is None and options.events_out is None:
        terminal = sys.stdout
    return [
        OutputPart(
            "leds",
            (settings.leds, settings.alerts.timeout_s),
            _logged(lambda: _led_strip(settings, status, terminal)),
        ),
        OutputPart("oled", settings.oled, _logged(lambda: _oled(settings, status))),
        OutputPart("motor", settings.motor, _logged(lambda: _motor(settings))),
    ]


def _logged(build: Callable[[], Output | None]) -> Callable[[], list[Output]]:
    """A hardware output that cannot start is logged (one line naming the fix) and left out."""

    def build_or_log() -> list[Output]:
        try:
            output = build()
        except OutputError as exc:
            log.error("%s", exc)  # the daemon goes on without it
            return []
        return [] if output is None else [output]

    return build_or_log


def simulated_outputs(settings: Settings, status: DeviceStatus, folder: Path) -> list[Output]:
    """DIR/leds.jsonl, DIR/oled/ and DIR/motor.jsonl (see README: Simulator)."""
    return [output for part in simulated_parts(settings, status, folder) for output in part.build()]


def simulated_parts(settings: Settings, status: DeviceStatus, folder: Path) -> list[OutputPart]:
    from .led_backends import SimulatorBackend
    from .leds import LedStrip
    from .motor import JsonlMotorSink, Motor
    from .oled import SimulatedOled

    def simulated(make: Callable[[], Output]) -> Callable[[], list[Output]]:
        def build() -> list[Output]:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise NotesightError(explain_os_error(exc, folder, "simulation folder")) from None
            try:
                return [make()]
            except OutputError as exc:
                raise NotesightError(str(exc)) from None

        return build

    return [
        OutputPart(
            "leds",
            (settings.leds, settings.alerts.timeout_s),
            simulated(
                lambda: LedStrip(
                    settings.leds,
                    SimulatorBackend(folder / "leds.jsonl"),
                    status,
                    alert_timeout_s=settings.alerts.timeout_s,
                )
            ),
        ),
        OutputPart(
            "oled",
            settings.oled,
            simulated(lambda: SimulatedOled(settings.oled, status, folder / "oled")),
        ),
        OutputPart(
            "motor",
            settings.motor,
            simulated(lambda: Motor(settings.motor, JsonlMotorSink(folder / "motor.jsonl"))),
        ),
    ]


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
