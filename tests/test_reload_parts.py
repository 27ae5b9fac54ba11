"""A reload rebuilds only the outputs whose settings changed (or that are no longer running)
and closes each old output before its replacement opens; unchanged ones stay open as they are."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import soundfile as sf
from service_fakes import RecordingOutput

from notesight.device import run as run_module
from notesight.device.config import load_settings
from notesight.device.outputs import OutputPart
from notesight.device.run import RunOptions, run

RATE = 48000


class LoggedOutput(RecordingOutput):
    """Records its opening and closing in a log shared by all outputs, to check the order."""

    def __init__(self, name: str, log: list[str], **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.log = log
        log.append(f"open {name}")

    def close(self) -> None:
        super().close()
        self.log.append(f"close {self.name}")


def test_only_changed_or_failed_outputs_are_rebuilt(tmp_path: Path, monkeypatch) -> None:
    wav = tmp_path / "quiet.wav"
    sf.write(wav, np.zeros(3 * RATE, dtype=np.float32), RATE)
    config = tmp_path / "config.toml"
    config.write_text('[leds]\ncolour = "#ff0000"\n')
    log: list[str] = []
    made: dict[str, list[LoggedOutput]] = {"leds": [], "motor": [], "oled": []}
    kept_calls: list[tuple[str, list]] = []

    def hup_at_50(ticks: int) -> None:
        if ticks == 50 and len(made["oled"]) == 1:
            config.write_text('[leds]\ncolour = "#00ff00"\n')
            os.kill(os.getpid(), signal.SIGHUP)

    def parts(settings, options, status) -> list[OutputPart]:
        def make(name: str, **kwargs):
            def build() -> list:
                made[name].append(LoggedOutput(name, log, status=status, **kwargs))
                return [made[name][-1]]

            return build

        return [
            OutputPart("leds", settings.leds, make("leds")),
            # The motor fails at its 10th tick (the daemon drops it); its settings never change.
            OutputPart("motor", settings.motor, make("motor", fail_at_tick=10)),
            OutputPart(
                "oled",
                settings.oled,
                make("oled", on_tick=hup_at_50),
                kept=lambda outputs: kept_calls.append(("oled", outputs)),
            ),
        ]

    monkeypatch.setattr(run_module, "output_parts", parts)
    options = RunOptions(input_file=wav, fast=True, config_path=config)
    stats = run(load_settings(config), options)

    assert stats.reloads == 1
    # The OLED's settings did not change: the same output, open from start to end.
    (oled,) = made["oled"]
    assert len(oled.ticks) == stats.blocks and oled.closed == 1
    assert kept_calls == [("oled", [oled])]
    # The LED colour changed: the old strip was closed before the new one opened.
    old_leds, new_leds = made["leds"]
    assert old_leds.settings is None and len(old_leds.ticks) == 50
    assert len(new_leds.ticks) == stats.blocks - 50
    # The failed motor had unchanged settings but was no longer running: tried again.
    assert len(made["motor"]) == 2
    assert stats.failed_outputs == ["motor", "motor"]  # the new one fails at its 10th tick too
    reload_at = log.index("close leds")
    assert log[reload_at : reload_at + 2] == ["close leds", "open leds"]
    assert log[:3] == ["open leds", "open motor", "open oled"]
    assert log.count("open oled") == 1
