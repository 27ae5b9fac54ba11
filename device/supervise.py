"""The microphone, kept alive through faults: unplugged, missing at boot, stalled, overrun.

`SupervisedMicrophone` is what `notesight run` listens to. It yields the microphone's blocks
while audio flows and `NoAudio(seconds)` while it does not, so the daemon's loop never stops:
the outputs keep ticking (and can show "no mic" from `DeviceStatus.mic_ok`), the systemd
watchdog keeps being fed, a SIGTERM or SIGHUP is still seen at once.

When no audio has come for `stall_s` (a USB microphone pulled out stops calling back; PortAudio
does not say why), the microphone is closed and reopened every `retry_s`. Each attempt starts
PortAudio afresh (MicrophoneSource creates its own PyAudio), which is what makes a microphone
plugged back in visible: PortAudio only lists devices when it starts. A microphone missing at
boot is the same fault, not a failed start. Reasons are logged once per change, not once per
attempt, so a long absence does not fill the journal (or the SD card).

Stale audio: MicrophoneSource drops the oldest blocks when the loop falls behind (a live display
wants the newest sound); the counts are copied into `DeviceStatus.dropped_blocks` and logged at
most once per `drop_log_interval_s`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from .audio import MicrophoneSource
from .daemon import NoAudio
from .errors import MicrophoneError
from .outputs import DeviceStatus

log = logging.getLogger(__name__)

# Opens the microphone, delivering blocks at the given rate (None: the device's own rate).
OpenMicrophone = Callable[[int | None], MicrophoneSource]


class SupervisedMicrophone:
    """Microphone blocks, or `NoAudio` while there are none; reopens a lost microphone.

    `open_microphone(target_rate)` opens (not starts) a MicrophoneSource. With
    `wait_for_first` False a microphone missing at the start raises its MicrophoneError (a
    person at a terminal wants the error); True waits for it (a service at boot). The first
    microphone sets `sample_rate`; later ones are resampled to it when they run at another
    rate, so the daemon's listener never has to change rate. With no microphone at the first
    attempt, `fallback_rate` (the configured rate) is used.
    """

    def __init__(
        self,
        open_microphone: OpenMicrophone,
        status: DeviceStatus,
        stop: threading.Event,
        *,
        fallback_rate: int,
        wait_for_first: bool = True,
        read_timeout_s: float = 0.25,
        idle_tick_s: float = 0.1,
        stall_s: float = 2.0,
        retry_s: float = 1.0,
        drop_log_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        self._open = open_microphone
        self._status = status
        self._stop = stop
        self._read_timeout_s = read_timeout_s
        self._idle_tick_s = idle_tick_s
        self.stall_s = stall_s
        self.retry_s = retry_s
        self._drop_log_interval_s = drop_log_interval_s
        self._clock = clock
        self._wait = wait or stop.wait  # returns early when stop is set
        self._mic: MicrophoneSource | None = None
        self._last_problem = ""
        self._next_attempt = clock()
        self._last_audio = clock()
        # Drop counts of microphones already closed, plus what was last logged.
        self._dropped_before = 0
        self._overruns_before = 0
        self._logged_dropped = 0
        self._logged_overruns = 0
        self._next_drop_log = 0.0
        self._status_dropped = 0
        self.attempts = 0  # open attempts, including the first
        self.reconnects = 0  # microphones opened after one was lost or missing
        # Not waiting: the error is raised, and logging it as well would say it twice.
        problem = self._try_open(target_rate=None, quiet=not wait_for_first)
        if problem is not None and not wait_for_first:
            raise problem
        self.sample_rate = self._mic.sample_rate if self._mic is not None else fallback_rate

    # -- counters ------------------------------------------------------------------------------
    @property
    def dropped_blocks(self) -> int:
        current = self._mic.dropped_blocks if self._mic is not None else 0
        return self._dropped_before + current

    @property
    def overruns(self) -> int:
        current = self._mic.overruns if self._mic is not None else 0
        return self._overruns_before + current

    @property
    def connected(self) -> bool:
        return self._mic is not None

    # -- the stream ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[np.ndarray | NoAudio]:
        while not self._stop.is_set():
            if self._mic is None:
                yield self._idle()
                continue
            started = self._clock()
            block = self._mic.read(self._read_timeout_s)
            self._account_drops()
            if block is not None:
                self._last_audio = self._clock()
                yield block
                continue
            now = self._clock()
            if now - self._last_audio >= self.stall_s:
                self._lose(f"it sent no audio for {now - self._last_audio:.1f} s")
            yield NoAudio(max(0.0, now - started))

    def _idle(self) -> NoAudio:
        """No microphone: try to open one when due, otherwise wait one tick."""
        started = self._clock()
        if started >= self._next_attempt:
            self._next_attempt = started + self.retry_s
            self._try_open(target_rate=self.sample_rate)
            if self._mic is not None:
                self.reconnects += 1
                return NoAudio(max(0.0, self._clock() - started))
        self._wait(max(0.0, min(self._idle_tick_s, self._next_attempt - self._clock())))
        return NoAudio(max(0.0, self._clock() - started))

    def _try_open(self, target_rate: int | None, quiet: bool = False) -> MicrophoneError | None:
        """Open and start a microphone; the problem when there is none."""
        self.attempts += 1
        mic: MicrophoneSource | None = None
        try:
            mic = self._open(target_rate)
            mic.start()
        except (MicrophoneError, OSError) as exc:
            if mic is not None:
                mic.close()
            self._status.update(mic_ok=False)
            problem = str(exc)
            if problem != self._last_problem and not quiet:  # once per reason, not per second
                log.warning("no microphone: %s (trying again every %g s)", problem, self.retry_s)
                self._last_problem = problem
            return exc if isinstance(exc, MicrophoneError) else MicrophoneError(problem)
        self._mic = mic
        self._last_problem = ""
        self._last_audio = self._clock()
        self._status.update(mic_ok=True, mic_name=mic.device.name)
        resampled = ""
        if target_rate is not None and mic.sample_rate != target_rate:
            resampled = f", resampled from {mic.sample_rate} to {target_rate} Hz"
        log.info(
            "listening to microphone '%s' (device %d, %d Hz%s)",
            mic.device.name,
            mic.device.index,
            mic.sample_rate,
            resampled,
        )
        return None

    def _lose(self, reason: str) -> None:
        mic = self._mic
        if mic is None:
            return
        log.warning(
            "microphone '%s' lost: %s; check its USB cable (trying again every %g s)",
            mic.device.name,
            reason,
            self.retry_s,
        )
        self._dropped_before += mic.dropped_blocks
        self._overruns_before += mic.overruns
        self._mic = None
        self._status.update(mic_ok=False)
        # A microphone pulled out may fail to close; it is gone either way.
        with contextlib.suppress(MicrophoneError, OSError):
            mic.close()
        self._next_attempt = self._clock() + self.retry_s

    def _account_drops(self) -> None:
        dropped, overruns = self.dropped_blocks, self.overruns
        if dropped == self._logged_dropped and overruns == self._logged_overruns:
            return
        if dropped != self._status_dropped:
            self._status.update(dropped_blocks=dropped)
            self._status_dropped = dropped
        now = self._clock()
        if now < self._next_drop_log:
            return
        log.warning(
            "audio fell behind: %d stale blocks dropped, %d overruns reported by the sound card "
            "since the last report (%d and %d in all); the Pi may be too busy",
            dropped - self._logged_dropped,
            overruns - self._logged_overruns,
            dropped,
            overruns,
        )
        self._logged_dropped, self._logged_overruns = dropped, overruns
        self._next_drop_log = now + self._drop_log_interval_s

    def close(self) -> None:
        mic, self._mic = self._mic, None
        if mic is not None:
            self._dropped_before += mic.dropped_blocks
            self._overruns_before += mic.overruns
            mic.close()

    def __enter__(self) -> SupervisedMicrophone:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
