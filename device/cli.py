"""The `notesight` command. Every problem a person can fix is reported in one line, never a
traceback: `NotesightError`s are caught here and turned into `notesight: <message>`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from .config import Settings, load_settings
from .errors import NotesightError
from .systemd import JournalFormatter, under_systemd
from .transcribe import (
    Note,
    daemon_block_size,
    listener_params,
    notes_from_blocks,
    transcribe_block_size,
    write_midi,
)

log = logging.getLogger("notesight")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config) if args.config else None)


def _print_note(note: Note, out) -> None:
    latency_ms = 1000.0 * (note.emitted_s - note.onset_s)
    out.write(
        f"{note.onset_s:8.3f}s  {note.name:<4} {note.cents:+6.1f} cents  vel {note.velocity:3d}"
        f"  {note.offset_s - note.onset_s:6.3f}s long  (shown after {latency_ms:4.0f} ms)\n"
    )


def cmd_transcribe(args: argparse.Namespace) -> int:
    from .audio import FileSource, audio_file_rate

    settings = _settings(args)
    params = listener_params(settings.listen)
    notes: list[Note] = []
    # The listener runs at any rate; resampling first would only add the resampler's
    # pre-ringing ahead of every attack, which is heard as an early strike.
    rate = audio_file_rate(args.file)
    with FileSource(args.file, None, transcribe_block_size(rate, params)) as source:
        for note in notes_from_blocks(source, source.sample_rate, params):
            notes.append(note)
            if args.jsonl:
                sys.stdout.write(json.dumps(note.as_dict()) + "\n")
            else:
                _print_note(note, sys.stdout)
    if not args.jsonl:
        sys.stdout.write(f"{len(notes)} notes\n")
    if args.midi:
        _write_midi_or_explain(notes, Path(args.midi))
    return 0


def _write_midi_or_explain(notes: list[Note], path: Path) -> None:
    from .errors import explain_os_error

    try:
        write_midi(notes, path)
    except OSError as exc:
        raise NotesightError(explain_os_error(exc, path, "MIDI output file")) from exc


def cmd_devices(args: argparse.Namespace) -> int:
    from .audio import list_input_devices

    devices = list_input_devices()
    if not devices:
        print("no audio input devices found: plug in the USB microphone")
        return 1
    for d in devices:
        mark = "*" if d.is_default else " "
        print(
            f"{mark} {d.index:3d}  {d.name}  ({d.max_input_channels} ch, "
            f"{d.default_sample_rate:.0f} Hz)"
        )
    print("* = system default. Put the index or part of the name in [audio].device.")
    return 0


def cmd_calibrate_leds(args: argparse.Namespace) -> int:
    from .calibrate import calibrate_leds, calibration_target
    from .config import default_config_path

    settings = _settings(args)
    in_use = Path(args.config) if args.config else default_config_path()
    target = Path(args.write) if args.write else calibration_target(None, in_use)
    return calibrate_leds(settings.leds, target, (args.a0, args.c4, args.c8))


def cmd_check_config(args: argparse.Namespace) -> int:
    from .config import default_config_path

    path = Path(args.file) if args.file else default_config_path()
    load_settings(path)
    print(f"{path if path else 'built-in defaults'}: ok")
    return 0


def _paced(blocks: Iterator[np.ndarray], sample_rate: int) -> Iterator[np.ndarray]:
    """Deliver blocks no faster than real time, like a microphone would."""
    start = time.monotonic()
    consumed = 0
    for block in blocks:
        consumed += len(block)
        delay = start + consumed / sample_rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield block


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo_audio

    settings = _settings(args)
    audio, sample_rate, description = demo_audio()
    print(f"notesight demo: {description}; listening as the daemon would.\n")
    block = daemon_block_size(sample_rate)
    blocks: Iterator[np.ndarray] = (audio[i : i + block] for i in range(0, len(audio), block))
    if not args.fast:
        blocks = _paced(blocks, sample_rate)
    from .demo_view import run_demo

    def print_note(note: Note) -> None:
        _print_note(note, sys.stdout)
        sys.stdout.flush()

    # The LED strip is drawn live in the terminal (not with --fast: it would only flicker).
    terminal = sys.stdout if sys.stdout.isatty() and not args.fast else None
    params = listener_params(settings.listen)
    notes = run_demo(blocks, sample_rate, params, print_note, settings.leds, terminal)
    latencies = [1000.0 * (note.emitted_s - note.onset_s) for note in notes]
    median = f", median latency {np.median(latencies):.0f} ms" if latencies else ""
    print(f"\n{len(notes)} notes heard{median}.")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .run import RunOptions, run

    if args.input:
        settings = _settings(args)  # a one-off file run stops at a mistake in the config
    else:
        from .lastgood import startup_settings

        # The daemon: a mistake is logged and it starts with the last good config (or the
        # defaults), so a typo does not leave the pianist without LEDs until someone comes.
        settings = startup_settings(Path(args.config) if args.config else None)
    options = RunOptions(
        input_file=Path(args.input) if args.input else None,
        simulate_dir=Path(args.simulate) if args.simulate else None,
        fast=args.fast,
        events_out=sys.stdout if args.jsonl else None,
        config_path=Path(args.config) if args.config else None,
        wait_for_mic=args.wait_for_mic,
        log_level_from_config=not args.verbose,
    )
    if options.fast and options.input_file is None:
        raise NotesightError("--fast needs --input FILE: a microphone only runs in real time")
    stats = run(settings, options)
    log.info(
        "ran %.1f s of audio: %d notes, %d events%s",
        stats.stream_s,
        stats.notes,
        stats.events,
        f"; outputs that failed: {', '.join(stats.failed_outputs)}" if stats.failed_outputs else "",
    )
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from .classify import classify_file

    classify_file(Path(args.file), _settings(args), sys.stdout, jsonl=args.jsonl)
    return 0


def cmd_train_alerts(args: argparse.Namespace) -> int:
    from .classify import train_alerts

    summary = train_alerts(Path(args.folder), Path(args.out), tiny=args.tiny)
    model = json.dumps(summary["out"])
    print(
        f"wrote {summary['out']} ({summary['bytes']} bytes, {summary['windows']} training "
        f"windows, {summary['seconds']} s); use it with [alerts].model = {model}"
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor

    return doctor(Path(args.config) if args.config else None, sys.stdout)


def cmd_listen(args: argparse.Namespace) -> int:
    from .mqtt_listen import listen

    return listen(_settings(args), sys.stdout, device=args.device, count=args.count, raw=args.json)


_CONFIG_HELP = "config file (the same as --config before the command)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notesight", description="See and feel what you play on the piano."
    )
    parser.add_argument("--config", metavar="FILE", help="config file (default: search order)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("transcribe", help="print the notes in an audio file")
    p.add_argument("file", help="WAV, FLAC, OGG or MP3 file")
    p.add_argument("--jsonl", action="store_true", help="one JSON object per note, nothing else")
    p.add_argument("--midi", metavar="OUT", help="also write the notes to a MIDI file")
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("devices", help="list audio input devices")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("file", nargs="?", help="config file (default: the one notesight would use)")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("calibrate-leds", help="line the LED strip up with the keys")
    p.add_argument("--a0", type=int, metavar="N", help="the LED above A0 (with --c4, --c8)")
    p.add_argument("--c4", type=int, metavar="N", help="the LED above C4")
    p.add_argument("--c8", type=int, metavar="N", help="the LED above C8")
    p.add_argument(
        "--write",
        metavar="FILE",
        help="the config to write (default: the one in use, or "
        "/etc/notesight/config.toml instead of the documented defaults)",
    )
    p.set_defaults(func=cmd_calibrate_leds)

    p = sub.add_parser("demo", help="play a short piano clip through the pipeline (no hardware)")
    p.add_argument("--fast", action="store_true", help="as fast as possible, not in real time")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="run the daemon: microphone (or a file) to the outputs")
    p.add_argument("--input", metavar="FILE", help="an audio file instead of the microphone")
    p.add_argument("--simulate", metavar="DIR", help="write simulated LEDs, OLED and motor here")
    p.add_argument("--fast", action="store_true", help="a file as fast as possible")
    p.add_argument("--jsonl", action="store_true", help="print every event as a JSON line")
    p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=_CONFIG_HELP)
    p.add_argument(
        "--wait-for-mic",
        action="store_true",
        help="wait for a missing microphone instead of failing (the service uses this)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("listen", help="print what the devices publish over MQTT (shows gaps)")
    p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=_CONFIG_HELP)
    p.add_argument(
        "--device", metavar="ID", help="only this device (default: [mqtt].device_id, or all)"
    )
    p.add_argument("--count", type=int, metavar="N", help="stop after N events")
    p.add_argument("--json", action="store_true", help="print each payload as a JSON line")
    p.set_defaults(func=cmd_listen)

    p = sub.add_parser("doctor", help="check microphone, outputs, broker, config, permissions")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("classify", help="print the household sounds (alerts) in an audio file")
    p.add_argument("file", help="WAV, FLAC, OGG or MP3 file")
    p.add_argument("--jsonl", action="store_true", help="one JSON object per alert, nothing else")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("models", help="manage the models (retrain the alert classifier)")
    models = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    p = models.add_parser(
        "train-alerts",
        help="retrain the alert classifier with your own recordings (needs the train extra)",
    )
    p.add_argument("folder", help="a folder with one sub-folder of recordings per alert class")
    p.add_argument("--out", default="alerts-retrained.tflite", help="the new model file to write")
    p.add_argument("--tiny", action="store_true", help="a quick, small training (for testing)")
    p.set_defaults(func=cmd_train_alerts)
    return parser


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return func(args)
    except NotesightError as exc:
        sys.stdout.flush()
        print(f"notesight: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `notesight transcribe x --jsonl | head`: the reader left; that is not an error.
        sys.stderr.close()
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if under_systemd():
        # journald adds the time and reads <N> as the priority: see JournalFormatter.
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
                handler.setFormatter(JournalFormatter())
    return _run(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
