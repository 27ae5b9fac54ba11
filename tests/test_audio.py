"""Tests for notesight.device.audio: files, streaming, and the microphone (with a fake PyAudio).

Audio fixtures are generated into tmp_path with soundfile; nothing here needs a sound card.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from service_fakes import DeviceList

from notesight.device.audio import (
    FileSource,
    InputDevice,
    MicrophoneSource,
    list_input_devices,
    read_audio_file,
)
from notesight.device.errors import AudioFileError, MicrophoneError

NOT_AUDIO = "is not a readable audio file (WAV, FLAC, OGG or MP3)"
PA_INPUT_OVERFLOW = 0x2  # portaudio.h paInputOverflow
PA_CONTINUE = 0


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def tone(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    """Frequency of the strongest FFT bin, zero-padded 16x so bins are well under 1 Hz wide."""
    n = len(x)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(n), n=16 * n))
    return float(np.argmax(spectrum)) * rate / (16 * n)


def write(path: Path, data: np.ndarray, rate: int, **kwargs: Any) -> Path:
    sf.write(path, data, rate, **kwargs)
    return path


def wav_bytes(tmp_path: Path, data: np.ndarray, rate: int) -> bytes:
    return write(tmp_path / "whole.wav", data, rate, subtype="PCM_16").read_bytes()


# --------------------------------------------------------------------------------------------
# read_audio_file: formats, rates, channels
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "ext"), [("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3")]
)
def test_reads_every_supported_format(tmp_path: Path, fmt: str, ext: str) -> None:
    rate = 44100
    stereo = np.stack([tone(440, rate, 1.0), tone(440, rate, 1.0)], axis=1)
    path = tmp_path / f"tone.{ext}"
    if fmt not in sf.available_formats():
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) cannot handle {fmt}")
    try:
        sf.write(path, stereo, rate, format=fmt)
    except (sf.LibsndfileError, TypeError, ValueError) as exc:
        pytest.skip(f"this libsndfile cannot write {fmt}: {exc}")

    audio = read_audio_file(path, 16000)

    assert audio.dtype == np.float32
    assert audio.ndim == 1
    # Lossy codecs add encoder delay and padding, so allow a little slack on the length.
    assert abs(len(audio) - 16000) < 0.1 * 16000
    assert abs(peak_hz(audio, 16000) - 440) < 1.0


@pytest.mark.parametrize("source_rate", [8000, 16000, 22050, 44100, 48000, 96000])
@pytest.mark.parametrize("target_rate", [16000, 44100])
def test_resampling_keeps_length_and_pitch(
    tmp_path: Path, source_rate: int, target_rate: int
) -> None:
    path = write(tmp_path / "tone.wav", tone(440, source_rate, 1.0), source_rate, subtype="FLOAT")

    audio = read_audio_file(path, target_rate)

    assert audio.dtype == np.float32
    assert abs(len(audio) - target_rate) <= 1
    assert abs(peak_hz(audio, target_rate) - 440) < 1.0
    # HQ resampling keeps the level: the middle of a 0.5-amplitude tone still peaks near 0.5.
    middle = audio[len(audio) // 4 : 3 * len(audio) // 4]
    assert np.max(np.abs(middle)) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("channels", [1, 2, 6, 8])
@pytest.mark.parametrize(("subtype", "atol"), [("PCM_16", 2e-4), ("FLOAT", 1e-6)])
def test_mixes_any_channel_count_down_to_the_mean(
    tmp_path: Path, channels: int, subtype: str, atol: float
) -> None:
    rate = 16000
    base = tone(440, rate, 0.5)
    gains = np.linspace(-0.5, 1.0, channels, dtype=np.float32)
    multi = base[:, None] * gains[None, :]
    path = write(tmp_path / "multi.wav", multi, rate, subtype=subtype)

    audio = read_audio_file(path, rate)  # same rate: no resampler in the way

    np.testing.assert_allclose(audio, base * gains.mean(), atol=atol)


def test_upsampled_mono_int16_keeps_pitch(tmp_path: Path) -> None:
    path = write(tmp_path / "low.wav", tone(440, 8000, 1.0), 8000, subtype="PCM_16")
    audio = read_audio_file(path, 48000)
    assert abs(len(audio) - 48000) <= 1
    assert abs(peak_hz(audio, 48000) - 440) < 1.0


def test_accepts_pathlike_and_str(tmp_path: Path) -> None:
    path = write(tmp_path / "t.wav", tone(440, 16000, 0.1), 16000)
    np.testing.assert_array_equal(read_audio_file(path, 16000), read_audio_file(str(path), 16000))


def test_dc_offset_loads(tmp_path: Path) -> None:
    rate = 44100
    path = write(tmp_path / "dc.wav", 0.5 + 0.3 * tone(440, rate, 1.0, amp=1.0), rate)
    audio = read_audio_file(path, 16000)
    middle = audio[2000:-2000]  # away from the resampler's edge transients
    assert np.mean(middle) == pytest.approx(0.5, abs=0.01)
    assert abs(peak_hz(middle - middle.mean(), 16000) - 440) < 1.0


def test_clipped_input_loads(tmp_path: Path) -> None:
    rate = 44100
    clipped = np.clip(tone(440, rate, 1.0, amp=3.0), -1.0, 1.0)
    path = write(tmp_path / "clipped.wav", clipped, rate, subtype="PCM_16")
    audio = read_audio_file(path, 16000)
    assert np.all(np.isfinite(audio))
    # Resampling a square-ish wave rings a little above full scale (Gibbs), never wildly.
    assert 0.95 < np.max(np.abs(audio)) < 1.3


def test_nan_and_inf_samples_become_zero(tmp_path: Path) -> None:
    rate = 16000
    data = tone(440, rate, 0.1)
    data[[10, 20, 30]] = [np.nan, np.inf, -np.inf]
    path = write(tmp_path / "nan.wav", data, rate, subtype="FLOAT")

    same_rate = read_audio_file(path, rate)
    resampled = read_audio_file(path, 44100)

    assert same_rate[10] == 0 and same_rate[20] == 0 and same_rate[30] == 0
    np.testing.assert_array_equal(np.delete(same_rate, [10, 20, 30]), np.delete(data, [10, 20, 30]))
    assert np.all(np.isfinite(resampled))


def test_invalid_target_rate_is_a_programming_error(tmp_path: Path) -> None:
    path = write(tmp_path / "t.wav", tone(440, 16000, 0.1), 16000)
    with pytest.raises(ValueError, match="target_rate"):
        read_audio_file(path, 0)


# --------------------------------------------------------------------------------------------
# read_audio_file: bad files
# --------------------------------------------------------------------------------------------


def assert_one_line_naming(exc: pytest.ExceptionInfo[AudioFileError], path: Path) -> None:
    message = str(exc.value)
    assert str(path) in message
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioFileError, match="does not exist") as exc:
        read_audio_file(path, 16000)
    assert_one_line_naming(exc, path)


def test_folder(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="is a folder") as exc:
        read_audio_file(tmp_path, 16000)
    assert_one_line_naming(exc, tmp_path)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="running as root: chmod 000 does not stop root from reading the file",
)
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.wav", tone(440, 16000, 0.1), 16000)
    path.chmod(0)
    try:
        with pytest.raises(AudioFileError, match="no permission") as exc:
            read_audio_file(path, 16000)
        assert_one_line_naming(exc, path)
    finally:
        path.chmod(0o644)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioFileError, match=r"is empty \(0 bytes\)") as exc:
        read_audio_file(path, 16000)
    assert_one_line_naming(exc, path)


def test_zero_frame_wav(tmp_path: Path) -> None:
    path = write(tmp_path / "zero.wav", np.zeros((0, 1), dtype=np.float32), 16000)
    with pytest.raises(AudioFileError, match="contains no audio") as exc:
        read_audio_file(path, 16000)
    assert_one_line_naming(exc, path)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("C D E F G A B\n" * 100)
    with pytest.raises(AudioFileError, match=r"is not a readable audio file \(WAV, FLAC") as exc:
        read_audio_file(path, 16000)
    assert_one_line_naming(exc, path)
    assert str(exc.value).split(NOT_AUDIO + ": ")[1]  # libsndfile's reason follows


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    with pytest.raises(AudioFileError, match=NOT_AUDIO.replace("(", r"\(").replace(")", r"\)")):
        read_audio_file(path, 16000)


def test_truncated_wav_returns_what_is_there(tmp_path: Path) -> None:
    rate = 16000
    data = tone(440, rate, 1.0)
    whole = wav_bytes(tmp_path, data, rate)
    path = tmp_path / "cut.wav"
    path.write_bytes(whole[: len(whole) // 2 + 1])  # odd cut: half a sample dangles too

    audio = read_audio_file(path, rate)

    assert 0 < len(audio) < len(data)
    np.testing.assert_allclose(audio, data[: len(audio)], atol=1e-4)


def test_wav_cut_right_after_the_header_has_no_audio(tmp_path: Path) -> None:
    whole = wav_bytes(tmp_path, tone(440, 16000, 0.5), 16000)
    path = tmp_path / "header_only.wav"
    path.write_bytes(whole[:44])  # the canonical 44-byte PCM header, no samples
    with pytest.raises(AudioFileError, match="contains no audio"):
        read_audio_file(path, 16000)


def test_wav_cut_inside_the_header_is_not_audio(tmp_path: Path) -> None:
    whole = wav_bytes(tmp_path, tone(440, 16000, 0.5), 16000)
    path = tmp_path / "half_header.wav"
    path.write_bytes(whole[:30])
    with pytest.raises(AudioFileError, match="is not a readable audio file"):
        read_audio_file(path, 16000)


def noisy_flac(tmp_path: Path) -> bytes:
    # Noise barely compresses, so the FLAC frames are big and easy to cut through.
    noise = np.random.default_rng(1).uniform(-0.5, 0.5, (48000, 2)).astype(np.float32)
    return write(tmp_path / "whole.flac", noise, 48000).read_bytes()


def test_truncated_flac_keeps_the_decodable_part(tmp_path: Path) -> None:
    whole = noisy_flac(tmp_path)
    path = tmp_path / "cut.flac"
    path.write_bytes(whole[: len(whole) // 2])

    audio = read_audio_file(path, 48000)

    assert 0 < len(audio) < 48000


def test_flac_cut_before_its_first_frame_is_not_audio(tmp_path: Path) -> None:
    whole = noisy_flac(tmp_path)
    path = tmp_path / "stub.flac"
    path.write_bytes(whole[: len(whole) // 20])
    with pytest.raises(AudioFileError, match="is not a readable audio file"):
        read_audio_file(path, 48000)


# --------------------------------------------------------------------------------------------
# FileSource
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("source_rate", "block_size"), [(16000, 256), (44100, 256), (48000, 1000)])
def test_file_source_blocks_match_read_audio_file(
    tmp_path: Path, source_rate: int, block_size: int
) -> None:
    stereo = np.stack([tone(440, source_rate, 1.3), tone(660, source_rate, 1.3)], axis=1)
    path = write(tmp_path / "t.wav", stereo, source_rate, subtype="FLOAT")
    whole = read_audio_file(path, 16000)

    with FileSource(path, 16000, block_size) as source:
        assert source.sample_rate == 16000
        assert source.source_rate == source_rate
        assert source.channels == 2
        assert source.duration_s == pytest.approx(1.3)
        assert source.position_s == 0
        blocks = list(source)
        position = source.position_s

    assert all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    assert all(len(b) == block_size for b in blocks[:-1])
    assert 0 < len(blocks[-1]) <= block_size
    assert len(blocks) == -(-len(whole) // block_size)
    streamed = np.concatenate(blocks)
    assert len(streamed) == len(whole)
    np.testing.assert_allclose(streamed, whole, atol=1e-5)
    assert position == pytest.approx(len(whole) / 16000)


def test_file_source_last_block_is_partial_not_padded(tmp_path: Path) -> None:
    data = tone(440, 16000, 1.0)[:1000]
    path = write(tmp_path / "t.wav", data, 16000, subtype="FLOAT")
    with FileSource(path, 16000, 256) as source:
        lengths = [len(b) for b in source]
    assert lengths == [256, 256, 256, 232]


def test_file_source_exact_multiple_has_no_short_block(tmp_path: Path) -> None:
    path = write(tmp_path / "t.wav", tone(440, 16000, 1.0)[:1024], 16000, subtype="FLOAT")
    with FileSource(path, 16000, 256) as source:
        assert [len(b) for b in source] == [256] * 4


def test_file_source_streams_files_longer_than_one_read_chunk(tmp_path: Path) -> None:
    rate = 48000
    path = write(tmp_path / "long.wav", tone(440, rate, 5.0), rate, subtype="PCM_16")
    with FileSource(path, 16000, 512) as source:
        streamed = np.concatenate(list(source))
    np.testing.assert_allclose(streamed, read_audio_file(path, 16000), atol=1e-5)
    assert abs(len(streamed) - 5 * 16000) <= 1


def test_file_source_is_single_pass_and_stops_after_close(tmp_path: Path) -> None:
    path = write(tmp_path / "t.wav", tone(440, 16000, 0.5), 16000)
    source = FileSource(path, 16000, 1000)
    assert iter(source) is source
    first = next(source)
    assert len(first) == 1000
    source.close()
    source.close()  # idempotent
    assert list(source) == []


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_text("hello\n" * 50), "is not a readable audio file"),
        (lambda p: sf.write(p, np.zeros((0, 2)), 16000, format="WAV"), "contains no audio"),
    ],
)
def test_file_source_open_errors_surface_at_construction(
    tmp_path: Path, make: Any, match: str
) -> None:
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioFileError, match=match):
        FileSource(path, 16000, 256)


def test_file_source_rejects_bad_block_size(tmp_path: Path) -> None:
    path = write(tmp_path / "t.wav", tone(440, 16000, 0.1), 16000)
    with pytest.raises(ValueError, match="block_size"):
        FileSource(path, 16000, 0)


def test_file_source_realtime_paces_like_a_microphone(tmp_path: Path) -> None:
    path = write(tmp_path / "short.wav", tone(440, 16000, 0.2), 16000)
    started = time.monotonic()
    with FileSource(path, 16000, 320, realtime=True) as source:
        arrivals = [(time.monotonic() - started, len(b)) for b in source]
    elapsed = time.monotonic() - started

    # Each block arrives no earlier than a microphone could have recorded it.
    delivered = np.cumsum([n for _, n in arrivals]) / 16000
    assert all(t >= due - 1e-3 for (t, _), due in zip(arrivals, delivered, strict=True))
    assert elapsed >= 0.2 - 1e-3


# --------------------------------------------------------------------------------------------
# MicrophoneSource with a recording fake PyAudio
# --------------------------------------------------------------------------------------------


class FakeStream:
    """Records what it is asked to do; deliver() plays PortAudio's real-time thread."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.events: list[str] = []
        self.running = False

    def start_stream(self) -> None:
        self.events.append("start")
        self.running = True

    def stop_stream(self) -> None:
        self.events.append("stop")
        self.running = False

    def close(self) -> None:
        self.events.append("close")

    def deliver(self, mono: np.ndarray, status: int = 0) -> tuple[Any, int]:
        """Call the stream callback with `mono` copied onto every channel, as float32 bytes."""
        assert self.running, "PortAudio only calls back on a started stream"
        channels = self.kwargs["channels"]
        frames = np.repeat(np.asarray(mono, dtype=np.float32)[:, None], channels, axis=1)
        return self.kwargs["stream_callback"](frames.tobytes(), len(mono), {}, status)


def device_info(name: str | bytes, inputs: int, rate: float = 48000.0) -> dict[str, Any]:
    return {
        "name": name,
        "maxInputChannels": inputs,
        "maxOutputChannels": 0 if inputs else 2,
        "defaultSampleRate": rate,
        "hostApi": 0,
    }


STANDARD_DEVICES = [
    device_info("HDA Intel PCH: HDMI 0 (hw:0,3)", 0, 44100.0),
    device_info("USB PnP Sound Device: Audio (hw:1,0)", 1, 48000.0),
    device_info("Scarlett 2i2 USB: Audio (hw:2,0)", 2, 44100.0),
    device_info("default", 32, 44100.0),
]


class FakePyAudio(DeviceList):
    """Stands in for pyaudio.PyAudio and records every request made of it."""

    def __init__(
        self,
        devices: list[dict[str, Any]] | None = None,
        default_index: int | None = 3,
        rates: set[int] | None = None,
        channels: set[int] | None = None,
        open_error: OSError | None = None,
        stderr_noise: bytes = b"",
    ) -> None:
        self.devices = STANDARD_DEVICES if devices is None else devices
        self.default_index = default_index
        self.rates = rates
        self.channels = channels
        self.open_error = open_error
        self.stderr_noise = stderr_noise
        self.open_calls: list[dict[str, Any]] = []
        self.streams: list[FakeStream] = []
        self.created = 0
        self.terminated = 0

    def __call__(self) -> FakePyAudio:  # the factory: what pyaudio.PyAudio() would be
        self.created += 1
        if self.stderr_noise:
            os.write(2, self.stderr_noise)  # like ALSA probing its backends
        return self

    def get_default_input_device_info(self) -> dict[str, Any]:
        if self.default_index is None:
            raise OSError("No Default Input Device Available")
        return self.get_device_info_by_index(self.default_index)

    def open(self, **kwargs: Any) -> FakeStream:
        self.open_calls.append(kwargs)
        if self.open_error is not None:
            raise self.open_error
        if self.rates is not None and kwargs["rate"] not in self.rates:
            raise OSError(-9997, "Invalid sample rate")
        if self.channels is not None and kwargs["channels"] not in self.channels:
            raise OSError(-9998, "Invalid number of channels")
        stream = FakeStream(kwargs)
        self.streams.append(stream)
        return stream

    def terminate(self) -> None:
        self.terminated += 1

    @property
    def stream(self) -> FakeStream:
        assert len(self.streams) == 1
        return self.streams[0]


def mic(fake: FakePyAudio, **kwargs: Any) -> MicrophoneSource:
    return MicrophoneSource(pyaudio_factory=fake, **kwargs)


def test_list_input_devices_lists_only_inputs() -> None:
    fake = FakePyAudio()
    devices = list_input_devices(pyaudio_factory=fake)
    assert devices == [
        InputDevice(1, "USB PnP Sound Device: Audio (hw:1,0)", 1, 48000.0, False),
        InputDevice(2, "Scarlett 2i2 USB: Audio (hw:2,0)", 2, 44100.0, False),
        InputDevice(3, "default", 32, 44100.0, True),
    ]
    assert fake.created == 1 and fake.terminated == 1


def test_list_input_devices_decodes_byte_names() -> None:
    fake = FakePyAudio([device_info(b"Mikrofon \xc3\xa4", 1)], default_index=None)
    assert list_input_devices(pyaudio_factory=fake)[0].name == "Mikrofon ä"


@pytest.mark.parametrize("device", [None, "", "  "])
def test_default_device(device: str | None) -> None:
    fake = FakePyAudio()
    source = mic(fake, device=device, sample_rate=44100, block_size=256)
    (call,) = fake.open_calls
    assert call["input_device_index"] == 3
    assert call["input"] is True
    assert call["rate"] == 44100
    assert call["channels"] == 2  # min(2, 32)
    assert call["frames_per_buffer"] == 256
    assert call["start"] is False  # started only by start()
    assert source.device.index == 3 and source.channels == 2 and source.sample_rate == 44100
    assert fake.stream.events == []


def test_no_default_input_falls_back_to_first_input() -> None:
    fake = FakePyAudio(default_index=None)
    assert mic(fake).device.index == 1


@pytest.mark.parametrize("device", [1, "1", " 1 "])
def test_device_by_index(device: int | str) -> None:
    fake = FakePyAudio()
    source = mic(fake, device=device)
    assert fake.open_calls[0]["input_device_index"] == 1
    assert fake.open_calls[0]["channels"] == 1  # the device has only one input channel
    assert source.channels == 1


@pytest.mark.parametrize(("device", "index"), [("scarlett", 2), ("USB", 1), ("DEFAULT", 3)])
def test_device_by_name_is_case_insensitive_first_match(device: str, index: int) -> None:
    fake = FakePyAudio()
    assert mic(fake, device=device).device.index == index
    assert fake.open_calls[0]["input_device_index"] == index


def test_unknown_name_lists_the_inputs() -> None:
    fake = FakePyAudio()
    with pytest.raises(MicrophoneError, match="Focusrite") as exc:
        mic(fake, device="Focusrite")
    message = str(exc.value)
    assert "USB PnP Sound Device" in message and "Scarlett 2i2" in message and "default" in message
    assert "HDMI" not in message  # output-only devices are not offered
    assert fake.open_calls == []
    assert fake.terminated == 1


@pytest.mark.parametrize("device", [7, "42", 0])  # 0 exists but is output-only
def test_index_that_is_not_an_input(device: int | str) -> None:
    fake = FakePyAudio()
    with pytest.raises(MicrophoneError, match=f"no input device with index {int(device)}") as exc:
        mic(fake, device=device)
    assert "Scarlett" in str(exc.value)
    assert fake.terminated == 1


@pytest.mark.parametrize(
    "devices", [[], [device_info("HDA Intel PCH: HDMI 0 (hw:0,3)", 0)]], ids=["none", "outputs"]
)
def test_no_microphone(devices: list[dict[str, Any]]) -> None:
    fake = FakePyAudio(devices, default_index=None)
    with pytest.raises(MicrophoneError, match="no microphone found: plug in the USB microphone"):
        mic(fake)
    assert fake.terminated == 1


@pytest.mark.parametrize(
    "error",
    [OSError(-9985, "Device unavailable"), OSError(-9996, "Invalid device"), OSError(-9999, "x")],
)
def test_busy_device(error: OSError) -> None:
    fake = FakePyAudio(open_error=error)
    with pytest.raises(MicrophoneError, match="is unavailable") as exc:
        mic(fake, device="usb")
    assert error.args[1] in str(exc.value)
    assert "USB PnP Sound Device" in str(exc.value)
    assert len(fake.open_calls) == 1  # a busy device is not retried at other rates
    assert fake.terminated == 1


def test_busy_on_start() -> None:
    fake = FakePyAudio()
    source = mic(fake)

    def refuse() -> None:
        raise OSError(-9985, "Device unavailable")

    fake.stream.start_stream = refuse  # type: ignore[method-assign]
    with pytest.raises(MicrophoneError, match="is unavailable"):
        source.start()
    source.close()
    assert fake.terminated == 1


def test_rate_falls_back_to_the_other_common_rate() -> None:
    fake = FakePyAudio(rates={44100})
    source = mic(fake, device="usb", sample_rate=48000)
    assert [c["rate"] for c in fake.open_calls] == [48000, 44100]
    assert source.sample_rate == 44100
    assert source.target_rate == 44100  # no target asked: deliver at the hardware rate


def test_rate_falls_back_to_the_device_default() -> None:
    fake = FakePyAudio([device_info("USB mic", 1, 16000.0)], default_index=0, rates={16000})
    source = mic(fake, sample_rate=44100)
    assert [c["rate"] for c in fake.open_calls] == [44100, 48000, 16000]
    assert source.sample_rate == 16000


def test_channel_count_falls_back_to_mono() -> None:
    fake = FakePyAudio(channels={1})
    source = mic(fake, device="scarlett", sample_rate=48000)
    assert [(c["rate"], c["channels"]) for c in fake.open_calls] == [(48000, 2), (48000, 1)]
    assert source.channels == 1


def test_unsupported_rate() -> None:
    fake = FakePyAudio(rates={8000})
    with pytest.raises(MicrophoneError, match="supports none of the sample rates") as exc:
        mic(fake, device="usb", sample_rate=48000)
    assert "48000, 44100" in str(exc.value)
    assert fake.terminated == 1


def test_callback_drives_blocks_to_read() -> None:
    fake = FakePyAudio()
    source = mic(fake, device="usb", sample_rate=48000, block_size=480)
    assert source.read(timeout=0.01) is None  # not started: nothing, at once
    source.start()
    assert fake.stream.events == ["start"]
    block = tone(440, 48000, 0.01)

    assert fake.stream.deliver(block) == (None, PA_CONTINUE)
    got = source.read(timeout=1.0)

    assert got is not None and got.dtype == np.float32
    np.testing.assert_array_equal(got, block)
    got[0] = 1.0  # blocks are the consumer's to modify
    assert source.read(timeout=0.01) is None  # nothing more delivered: times out
    assert source.dropped_blocks == 0 and source.overruns == 0
    source.close()


def test_stereo_is_mixed_to_mono() -> None:
    fake = FakePyAudio()
    source = mic(fake, device="scarlett", sample_rate=44100, block_size=4)
    source.start()
    left_right = np.array([[0.5, -0.1]] * 4, dtype=np.float32)
    fake.stream.kwargs["stream_callback"](left_right.tobytes(), 4, {}, 0)
    np.testing.assert_allclose(source.read(timeout=1.0), [0.2] * 4, atol=1e-7)
    source.close()


def test_blocks_are_resampled_to_the_target_rate() -> None:
    fake = FakePyAudio()
    source = mic(fake, device="usb", sample_rate=48000, block_size=480, target_rate=16000)
    source.start()
    signal = tone(440, 48000, 1.0)
    blocks = []
    for start in range(0, len(signal), 480):
        fake.stream.deliver(signal[start : start + 480])
        while (block := source.read(timeout=0.01)) is not None:
            blocks.append(block)
    out = np.concatenate(blocks)
    # soxr holds back up to one internal chunk (tens of ms) until more audio comes.
    assert 15000 < len(out) <= 16000
    assert abs(peak_hz(out, 16000) - 440) < 1.0
    source.close()


def test_quick_resampling_delivers_every_callback() -> None:
    fake = FakePyAudio()
    source = mic(
        fake,
        device="usb",
        sample_rate=48000,
        block_size=480,
        target_rate=16000,
        resample_quality="QQ",
    )
    source.start()
    lengths = []
    for _ in range(10):
        fake.stream.deliver(tone(440, 48000, 0.01))
        block = source.read(timeout=1.0)
        assert block is not None
        lengths.append(len(block))
    assert lengths == [160] * 10
    source.close()


def test_consumer_behind_drops_stale_blocks_and_counts_them() -> None:
    fake = FakePyAudio()
    # 0.5 s of queue at 48 kHz in 4800-frame blocks = 5 blocks.
    source = mic(fake, device="usb", sample_rate=48000, block_size=4800, max_latency_s=0.5)
    source.start()
    for k in range(8):
        fake.stream.deliver(np.full(4800, k / 10, dtype=np.float32))

    kept = []
    while (block := source.read(timeout=0.01)) is not None:
        kept.append(round(float(block[0]) * 10))

    assert kept == [3, 4, 5, 6, 7]  # the three oldest were stale and went
    assert source.dropped_blocks == 3
    assert source.overruns == 0
    source.close()


def test_portaudio_overflow_is_counted_as_overrun() -> None:
    fake = FakePyAudio()
    source = mic(fake, device="usb", block_size=64)
    source.start()
    fake.stream.deliver(np.zeros(64), status=PA_INPUT_OVERFLOW)
    fake.stream.deliver(np.zeros(64))
    assert source.overruns == 1
    assert source.read(timeout=1.0) is not None  # the audio itself still arrives
    source.close()


def test_read_wakes_when_audio_arrives_from_another_thread() -> None:
    fake = FakePyAudio()
    source = mic(fake, device="usb", block_size=64)
    source.start()
    block = tone(440, 48000, 64 / 48000)
    results: list[np.ndarray | None] = []
    reader = threading.Thread(target=lambda: results.append(source.read(timeout=30.0)))
    reader.start()
    fake.stream.deliver(block)  # as PortAudio's thread would
    reader.join()
    assert results[0] is not None
    np.testing.assert_array_equal(results[0], block)
    source.close()


def test_iteration_yields_until_stopped() -> None:
    fake = FakePyAudio()
    source = mic(fake, device="usb", block_size=64)
    source.start()
    for k in range(3):
        fake.stream.deliver(np.full(64, k, dtype=np.float32))
    blocks = iter(source)
    assert [float(next(blocks)[0]) for _ in range(3)] == [0.0, 1.0, 2.0]
    source.stop()
    assert list(blocks) == []
    assert fake.stream.events == ["start", "stop"]
    source.close()


def test_iteration_reports_a_silent_microphone() -> None:
    fake = FakePyAudio()
    source = mic(fake, device="usb", stall_timeout_s=0.01)
    with pytest.raises(MicrophoneError, match="sent no audio"):
        next(iter(source))
    assert fake.stream.events == ["start"]  # iterating starts the stream
    source.close()


def test_close_stops_closes_and_terminates_once() -> None:
    fake = FakePyAudio()
    source = mic(fake, device="usb")
    source.start()
    source.start()  # idempotent
    source.close()
    source.close()  # idempotent
    assert fake.stream.events == ["start", "stop", "close"]
    assert fake.terminated == 1
    assert source.read(timeout=0.01) is None
    with pytest.raises(RuntimeError, match="closed"):
        source.start()


def test_close_of_a_never_started_stream() -> None:
    fake = FakePyAudio()
    mic(fake).close()
    assert fake.stream.events == ["close"]
    assert fake.terminated == 1


def test_context_manager_starts_and_closes() -> None:
    fake = FakePyAudio()
    with mic(fake, device="usb", block_size=32) as source:
        assert fake.stream.events == ["start"]
        fake.stream.deliver(np.ones(32))
        assert source.read(timeout=1.0) is not None
    assert fake.stream.events == ["start", "stop", "close"]
    assert fake.terminated == 1


def test_close_survives_an_unplugged_device() -> None:
    fake = FakePyAudio()
    source = mic(fake)
    source.start()

    def gone() -> None:
        raise OSError(-9999, "Unanticipated host error")

    fake.stream.stop_stream = gone  # type: ignore[method-assign]
    source.close()
    assert fake.terminated == 1


def test_portaudio_stderr_noise_is_silenced(capfd: pytest.CaptureFixture[str]) -> None:
    fake = FakePyAudio(stderr_noise=b"ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM\n")
    list_input_devices(pyaudio_factory=fake)
    os.write(2, b"after\n")  # fd 2 is back where it was
    err = capfd.readouterr().err
    assert "ALSA lib" not in err
    assert "after" in err


def test_portaudio_failing_to_start_is_a_microphone_error() -> None:
    def broken() -> Any:
        raise OSError("PortAudio could not initialise")

    with pytest.raises(MicrophoneError, match="cannot start the audio system"):
        list_input_devices(pyaudio_factory=broken)


def test_real_portaudio_agrees_with_the_fake() -> None:
    """Smoke test against the installed PyAudio: device listing works on any machine."""
    pytest.importorskip("pyaudio")
    devices = list_input_devices()
    assert all(isinstance(d, InputDevice) and d.max_input_channels > 0 for d in devices)
    if not devices:  # build machines have no sound card: the caretaker message must show
        with pytest.raises(MicrophoneError, match="no microphone found"):
            MicrophoneSource()
