"""Audio in: files and the USB microphone, always delivered as float32 mono at the detector's rate.

Files are decoded with soundfile (libsndfile: WAV, FLAC, OGG, MP3) and resampled with soxr.
Both are streamed in chunks, so an hour-long recording never sits in memory at its source rate.

The microphone is a PyAudio stream in callback mode. The callback runs on PortAudio's real-time
thread, so it only appends the raw bytes to a bounded deque: no numpy, no locks, no allocation
beyond what PyAudio already did. When the consumer falls behind, the deque drops the oldest
block, because for a live note display stale audio is worth less than low latency. Drops are
counted so the daemon can report them.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import numpy as np
import soundfile as sf
import soxr

from notesight.device.errors import AudioFileError, MicrophoneError, explain_os_error

_log = logging.getLogger(__name__)

_FORMATS = "WAV, FLAC, OGG or MP3"
_WHAT_FILE = "audio file"
# Frames decoded per soundfile read. Small enough that memory stays bounded whatever the file
# length, and that a damaged file loses little: when libsndfile fails inside a read, the whole
# read's frames are lost, so a truncated file keeps everything up to ~0.2 s before the damage.
_READ_CHUNK_FRAMES = 8192
_RESAMPLE_QUALITY = "HQ"

# PortAudio constants (portaudio.h ABI values). Spelled out here so this module imports
# without PortAudio installed: file-only commands must work on machines without a sound stack.
_PA_FLOAT32 = 0x00000001
_PA_INPUT_OVERFLOW = 0x00000002
_PA_CONTINUE = 0
# Open errors meaning "this format is not supported": worth retrying with another rate or
# channel count. Every other open error means the device itself is unusable (busy, gone).
_PA_FORMAT_REFUSED = frozenset({-9997, -9998, -9994})  # invalid rate, channel count, format

_NO_MICROPHONE = "no microphone found: plug in the USB microphone; `notesight devices` lists inputs"

PyAudioFactory = Callable[[], Any]


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _require_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


class _MonoResampler:
    """Streaming resampler for mono float32 audio; a pass-through when the rates already match."""

    def __init__(self, in_rate: int, out_rate: int, quality: str = _RESAMPLE_QUALITY) -> None:
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
        )

    def process(self, mono: np.ndarray) -> np.ndarray:
        if self._stream is None:
            return mono
        return self._stream.resample_chunk(mono)

    def flush(self) -> np.ndarray:
        """Return the samples soxr still holds back for its filter's look-ahead."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _not_audio_message(name: str, exc: Exception) -> str:
    # str(LibsndfileError) is often just "Error opening 'x': " with the useful part missing;
    # libsndfile's own explanation lives in `error_string`.
    reason = getattr(exc, "error_string", "") or str(exc)
    reason = " ".join(reason.split()).rstrip(".") or "unknown format"
    return f"{name} is not a readable audio file ({_FORMATS}): {reason}"


def _no_audio_message(name: str) -> str:
    return f"{_WHAT_FILE} {name} contains no audio"


def _open_sound_file(name: str) -> sf.SoundFile:
    """Open `name` with soundfile, turning every failure into one AudioFileError line."""
    # Probe with a plain open() first: libsndfile reports a missing file, a folder and a
    # permission problem all as "format not recognised", while the OSError says which it is.
    try:
        with open(name, "rb") as probe:
            info = os.fstat(probe.fileno())
    except OSError as exc:
        raise AudioFileError(explain_os_error(exc, name, _WHAT_FILE)) from exc
    if stat.S_ISREG(info.st_mode) and info.st_size == 0:
        raise AudioFileError(f"{_WHAT_FILE} {name} is empty (0 bytes)")
    try:
        sound = sf.SoundFile(name)
    except RuntimeError as exc:  # LibsndfileError and SoundFileRuntimeError derive from it
        raise AudioFileError(_not_audio_message(name, exc)) from exc
    if sound.frames == 0:
        sound.close()
        raise AudioFileError(_no_audio_message(name))
    return sound


def _read_chunks(sound: sf.SoundFile, name: str) -> Iterator[np.ndarray]:
    """Yield (frames, channels) float32 chunks until the end of the file.

    A decode error after some audio was read means a truncated or damaged file: keep what was
    read (a cut-off recording is still worth transcribing) and stop there.
    """
    frames_read = 0
    # libsndfile 1.2's MP3 decoder returns a few hundred corrupted samples after some read
    # boundaries (heard as false strikes); only a single whole-file read decodes cleanly.
    chunk_frames = -1 if sound.format == "MP3" else _READ_CHUNK_FRAMES
    while True:
        try:
            chunk = sound.read(chunk_frames, dtype="float32", always_2d=True)
        except RuntimeError as exc:
            if frames_read == 0:
                raise AudioFileError(_not_audio_message(name, exc)) from exc
            seconds = frames_read / sound.samplerate
            _log.warning(
                "%s %s is damaged after %.1f s; using the audio before that",
                _WHAT_FILE,
                name,
                seconds,
            )
            return
        if len(chunk) == 0:
            return
        frames_read += len(chunk)
        yield chunk


def _to_mono(chunk: np.ndarray) -> np.ndarray:
    """Mix a (frames, channels) chunk down to mono: the mean of the channels."""
    # NaN or inf would spread through the resampler's filter and poison every later sample.
    clean = np.nan_to_num(chunk, nan=0.0, posinf=0.0, neginf=0.0)
    if clean.shape[1] == 1:
        return np.ascontiguousarray(clean[:, 0])
    return clean.mean(axis=1, dtype=np.float32)


def _resampled_mono(sound: sf.SoundFile, name: str, target_rate: int) -> Iterator[np.ndarray]:
    """Yield mono float32 chunks of the whole file at target_rate (chunk lengths vary)."""
    resampler = _MonoResampler(sound.samplerate, target_rate)
    for chunk in _read_chunks(sound, name):
        out = resampler.process(_to_mono(chunk))
        if out.size:
            yield out
    tail = resampler.flush()
    if tail.size:
        yield tail


def audio_file_rate(path: str | os.PathLike[str]) -> int:
    """The sample rate of an audio file (AudioFileError when it is not a readable one)."""
    with _open_sound_file(os.fspath(path)) as sound:
        return int(sound.samplerate)


def read_audio_file(path: str | os.PathLike[str], target_rate: int) -> np.ndarray:
    """Read a whole audio file as float32 mono at target_rate.

    Any channel count is mixed down (mean of the channels); any sample rate is resampled with
    soxr. NaN/inf samples become 0. Raises AudioFileError with a one-line message naming the file.
    """
    _require_positive("target_rate", target_rate)
    name = os.fspath(path)
    with _open_sound_file(name) as sound:
        parts = list(_resampled_mono(sound, name, target_rate))
    if not parts:
        raise AudioFileError(_no_audio_message(name))
    return np.concatenate(parts).astype(np.float32, copy=False)


class FileSource:
    """Stream an audio file as float32 mono blocks of block_size samples at target_rate.

    A single-pass iterator, like a microphone: every block has exactly block_size samples except
    the last, which holds what is left. With realtime=True each block is held back until the
    moment a microphone would have delivered it, so the daemon can be tested against a file.
    Open errors raise AudioFileError at construction.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        target_rate: int | None,
        block_size: int,
        realtime: bool = False,
    ) -> None:
        """target_rate None keeps the file's own rate (no resampling)."""
        if target_rate is not None:
            _require_positive("target_rate", target_rate)
        _require_positive("block_size", block_size)
        self._name = os.fspath(path)
        self._sound = _open_sound_file(self._name)
        self.sample_rate = target_rate or self._sound.samplerate
        self.block_size = block_size
        self.realtime = realtime
        self.source_rate: int = self._sound.samplerate
        self.channels: int = self._sound.channels
        # A non-seekable stream reports a meaningless frame count.
        self.duration_s: float | None = (
            self._sound.frames / self.source_rate if self._sound.seekable() else None
        )
        self._samples_out = 0
        self._started_at: float | None = None
        self._blocks: Generator[np.ndarray, None, None] | None = None
        self._closed = False

    @property
    def position_s(self) -> float:
        """Seconds of audio delivered so far (the end of the last block)."""
        return self._samples_out / self.sample_rate

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> np.ndarray:
        if self._closed:
            raise StopIteration
        if self._blocks is None:
            self._blocks = self._generate_blocks()
        return next(self._blocks)

    def _generate_blocks(self) -> Generator[np.ndarray, None, None]:
        size = self.block_size
        pending = np.zeros(0, dtype=np.float32)
        for chunk in _resampled_mono(self._sound, self._name, self.sample_rate):
            pending = np.concatenate((pending, chunk))
            full = len(pending) // size
            for i in range(full):
                yield self._deliver(pending[i * size : (i + 1) * size])
            pending = pending[full * size :]
        if pending.size:
            yield self._deliver(pending)
        if self._samples_out == 0:
            raise AudioFileError(_no_audio_message(self._name))

    def _deliver(self, block: np.ndarray) -> np.ndarray:
        if self.realtime:
            self._wait_until_due(len(block))
        self._samples_out += len(block)
        return block

    def _wait_until_due(self, length: int) -> None:
        # A microphone hands over a block once its last sample has been recorded, so block k
        # is due at start + (samples up to and including block k) / rate. Pacing against the
        # start time (not the previous block) keeps sleep jitter from accumulating.
        now = time.monotonic()
        if self._started_at is None:
            self._started_at = now
        due = self._started_at + (self._samples_out + length) / self.sample_rate
        if due > now:
            time.sleep(due - now)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._blocks is not None:
            self._blocks.close()
        self._sound.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Microphone
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputDevice:
    """One audio input as PortAudio sees it (what `notesight devices` prints)."""

    index: int
    name: str
    max_input_channels: int
    default_sample_rate: float
    is_default: bool


def _default_pyaudio() -> Any:
    # Imported here, not at module top, so that reading files never needs PortAudio.
    import pyaudio

    return pyaudio.PyAudio()


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration of the block.

    When PortAudio initialises it probes every ALSA and JACK backend, and those C libraries
    write dozens of "ALSA lib pcm.c: Unknown PCM ..." / "jack server is not running" lines
    straight to fd 2. They are harmless but bury notesight's own messages in the journal.
    C code bypasses sys.stderr, so only redirecting the descriptor itself silences it.
    """
    if sys.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()  # don't let our own pending text vanish into /dev/null
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all (fully detached daemon): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _create_pyaudio(factory: PyAudioFactory | None) -> Any:
    with _stderr_silenced():
        try:
            return (factory or _default_pyaudio)()
        except OSError as exc:
            raise MicrophoneError(f"cannot start the audio system (PortAudio): {exc}") from exc


def _default_input_index(pa: Any) -> int | None:
    try:
        return int(pa.get_default_input_device_info()["index"])
    except (OSError, KeyError, ValueError):  # PyAudio raises OSError when there is no default
        return None


def _device_name(raw: Any) -> str:
    # PyAudio hands back bytes when the name is not valid in the locale's encoding.
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _input_devices(pa: Any) -> list[InputDevice]:
    default_index = _default_input_index(pa)
    devices = []
    for index in range(pa.get_device_count()):
        try:
            info = pa.get_device_info_by_index(index)
        except OSError:  # a USB device unplugged while we enumerate
            continue
        channels = int(info.get("maxInputChannels", 0))
        if channels > 0:
            devices.append(
                InputDevice(
                    index=index,
                    name=_device_name(info.get("name", f"device {index}")),
                    max_input_channels=channels,
                    default_sample_rate=float(info.get("defaultSampleRate", 0.0)),
                    is_default=index == default_index,
                )
            )
    return devices


def list_input_devices(pyaudio_factory: PyAudioFactory | None = None) -> list[InputDevice]:
    """Every audio input PortAudio can see, for `notesight devices`.

    pyaudio_factory defaults to pyaudio.PyAudio; tests pass a fake.
    """
    pa = _create_pyaudio(pyaudio_factory)
    try:
        return _input_devices(pa)
    finally:
        pa.terminate()


def _describe_inputs(devices: list[InputDevice]) -> str:
    return "; ".join(f"{d.index} '{d.name}'" for d in devices)


def _select_device(devices: list[InputDevice], wanted: int | str | None) -> InputDevice:
    """Pick the input the caretaker asked for: default, an index, or part of its name."""
    if not devices:
        raise MicrophoneError(_NO_MICROPHONE)
    if wanted is None or (isinstance(wanted, str) and not wanted.strip()):
        # No default input (odd ALSA setups) but some inputs: the first one is the best guess.
        return next((d for d in devices if d.is_default), devices[0])
    if isinstance(wanted, int) or wanted.strip().isdigit():
        index = int(wanted)
        for d in devices:
            if d.index == index:
                return d
        raise MicrophoneError(
            f"there is no input device with index {index}: the inputs are "
            f"{_describe_inputs(devices)}; `notesight devices` lists them"
        )
    needle = wanted.strip().casefold()
    for d in devices:
        if needle in d.name.casefold():
            return d
    raise MicrophoneError(
        f"no microphone with '{wanted.strip()}' in its name: the inputs are "
        f"{_describe_inputs(devices)}; `notesight devices` lists them"
    )


def _pa_error_code(exc: Exception) -> int | None:
    # PyAudio raises OSError(code, text) with PortAudio's negative paErrorCode.
    code = exc.args[0] if exc.args else None
    return code if isinstance(code, int) else None


def _unavailable_message(device: InputDevice, exc: Exception) -> str:
    reason = exc.args[1] if len(exc.args) > 1 else str(exc)
    return (
        f"microphone '{device.name}' (device {device.index}) is unavailable ({reason}): another "
        "program may be using it or it was unplugged; stop that program or replug the microphone"
    )


def _unique(values: list[int]) -> list[int]:
    return list(dict.fromkeys(v for v in values if v > 0))


def _open_input_stream(
    pa: Any,
    device: InputDevice,
    sample_rate: int,
    block_size: int,
    callback: Callable[..., tuple[None, int]],
) -> tuple[Any, int, int]:
    """Open a stopped callback stream; returns (stream, rate, channels) of what the device took.

    Cheap USB microphones support a single rate, so the asked rate falls back to the other
    common one, then to whatever the device calls its default.
    """
    other = 44100 if sample_rate == 48000 else 48000
    rates = _unique([sample_rate, other, round(device.default_sample_rate)])
    # Stereo is plenty to mix down; some devices claim channels they then refuse: mono fallback.
    channel_options = _unique([min(2, device.max_input_channels), 1])
    for rate in rates:
        for channels in channel_options:
            try:
                stream = pa.open(
                    format=_PA_FLOAT32,
                    channels=channels,
                    rate=rate,
                    input=True,
                    input_device_index=device.index,
                    frames_per_buffer=block_size,
                    start=False,
                    stream_callback=callback,
                )
            except ValueError:
                continue  # PyAudio's own parameter check refused the format
            except OSError as exc:
                if _pa_error_code(exc) in _PA_FORMAT_REFUSED:
                    continue
                raise MicrophoneError(_unavailable_message(device, exc)) from exc
            return stream, rate, channels
    tried = ", ".join(str(r) for r in rates)
    raise MicrophoneError(
        f"microphone '{device.name}' (device {device.index}) supports none of the sample rates "
        f"tried ({tried} Hz): choose another microphone"
    )


class MicrophoneSource:
    """Live float32 mono blocks from a microphone, resampled to target_rate.

    device: None or "" for the default input; an int or a string of digits for an index;
    anything else is matched case-insensitively against input device names (first match wins).
    sample_rate is the hardware rate to open (falls back to the other of 44.1/48 kHz, then the
    device's default). block_size is frames per PortAudio callback at the hardware rate.

    target_rate None (the default) delivers each callback's block as is, at the hardware rate:
    the lowest latency, and the right choice for the live path. With another target_rate the
    blocks go through a soxr stream of resample_quality; soxr filters in internal chunks, so
    blocks then come in bursts (nothing for a few callbacks, then several callbacks' worth)
    and at "HQ" it holds back 20-40 ms of audio. "QQ" holds back nothing but barely filters.

    At most max_latency_s of audio is queued; older blocks are dropped and counted in
    dropped_blocks. PortAudio's own input overflows are counted in overruns.

    Errors (no microphone, unknown name or index, busy device, unsupported rate) raise
    MicrophoneError at construction. The stream starts with start() or `with`.
    """

    def __init__(
        self,
        device: int | str | None = None,
        sample_rate: int = 48000,
        block_size: int = 256,
        target_rate: int | None = None,
        *,
        max_latency_s: float = 0.5,
        stall_timeout_s: float = 2.0,
        resample_quality: str = _RESAMPLE_QUALITY,
        pyaudio_factory: PyAudioFactory | None = None,
    ) -> None:
        _require_positive("sample_rate", sample_rate)
        _require_positive("block_size", block_size)
        if target_rate is not None:
            _require_positive("target_rate", target_rate)
        self.block_size = block_size
        self.stall_timeout_s = stall_timeout_s
        self._pa = _create_pyaudio(pyaudio_factory)
        try:
            self.device = _select_device(_input_devices(self._pa), device)
            # Opened stopped: the callback cannot fire before start(), so the queue below
            # exists by the time it does.
            self._stream, self.sample_rate, self.channels = _open_input_stream(
                self._pa, self.device, sample_rate, block_size, self._on_audio
            )
        except BaseException:
            self._pa.terminate()
            raise
        self.target_rate = target_rate or self.sample_rate
        maxlen = max(2, math.ceil(max_latency_s * self.sample_rate / block_size))
        self._queue: collections.deque[bytes] = collections.deque(maxlen=maxlen)
        self._ready = threading.Event()
        self._resampler = _MonoResampler(self.sample_rate, self.target_rate, resample_quality)
        self._dropped_blocks = 0
        self._overruns = 0
        self._running = False
        self._closed = False

    @property
    def dropped_blocks(self) -> int:
        """Blocks thrown away because the consumer was more than max_latency_s behind."""
        return self._dropped_blocks

    @property
    def overruns(self) -> int:
        """Callbacks where PortAudio reported that audio was lost before it reached us."""
        return self._overruns

    def _on_audio(
        self, in_data: bytes | None, frame_count: int, time_info: Any, status_flags: int
    ) -> tuple[None, int]:
        # PortAudio's real-time thread: never block, never do real work here.
        if status_flags & _PA_INPUT_OVERFLOW:
            self._overruns += 1
        if in_data:
            if len(self._queue) == self._queue.maxlen:
                self._dropped_blocks += 1  # the append below evicts the oldest (stale) block
            self._queue.append(in_data)
            self._ready.set()
        return None, _PA_CONTINUE

    def start(self) -> None:
        if self._closed:
            raise RuntimeError("MicrophoneSource is closed")
        if self._running:
            return
        try:
            self._stream.start_stream()
        except OSError as exc:
            raise MicrophoneError(_unavailable_message(self.device, exc)) from exc
        self._running = True

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        # A microphone unplugged mid-stream makes stopping fail; it is stopped either way.
        with contextlib.suppress(OSError):
            self._stream.stop_stream()
        self._ready.set()  # wake a reader waiting in read()

    def close(self) -> None:
        if self._closed:
            return
        self.stop()
        self._closed = True
        try:
            with contextlib.suppress(OSError):
                self._stream.close()
        finally:
            self._pa.terminate()
        self._ready.set()

    def read(self, timeout: float) -> np.ndarray | None:
        """The next mono float32 block at target_rate, or None after `timeout` seconds.

        Returns None at once when the stream is not running and nothing is queued.
        """
        deadline = time.monotonic() + timeout
        while True:
            raw = self._next_raw(deadline)
            if raw is None:
                return None
            block = self._resampler.process(self._to_mono(raw))
            if block.size:
                return block
            # soxr is still filling one of its internal chunks: wait for more audio.

    def _next_raw(self, deadline: float) -> bytes | None:
        while True:
            with contextlib.suppress(IndexError):
                return self._queue.popleft()
            if not self._running:
                return None
            # Clear, then look again: the callback appends before it sets the event, so a
            # block that arrived between popleft() and clear() is still seen here.
            self._ready.clear()
            if self._queue:
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._ready.wait(remaining):
                return None

    def _to_mono(self, raw: bytes) -> np.ndarray:
        samples = np.frombuffer(raw, dtype=np.float32)
        if self.channels == 1:
            return samples.copy()  # frombuffer views the bytes read-only; callers may write
        return samples.reshape(-1, self.channels).mean(axis=1, dtype=np.float32)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Start the stream and yield blocks until stop()/close().

        Raises MicrophoneError when no audio arrives for stall_timeout_s (microphone unplugged).
        """
        self.start()
        while self._running:
            block = self.read(self.stall_timeout_s)
            if block is not None:
                yield block
            elif self._running:
                raise MicrophoneError(
                    f"microphone '{self.device.name}' sent no audio for {self.stall_timeout_s:g} s:"
                    " check its USB cable"
                )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
