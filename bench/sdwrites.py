"""SD-card writes of the daemon: bytes written per hour of playing.

An SD card wears out by writing; the daemon must keep its writes small. This bench runs the real
`notesight run --input FILE --fast` in a child process on a rendered piano performance, once per
configuration, and reads from the child's /proc/self/io at its exit:

- `write_bytes`: bytes the process sent to the storage layer (what reaches the card),
- `wchar`: bytes passed to write(2) on any file, pipe or socket,
and measures the log lines (stderr: under systemd they go to the journal, which is written to
the card when it is persistent) and what is left in the state folder (the MQTT outbox).
Each configuration runs twice, on the performance and on its first 2 seconds: the difference,
divided by the difference in seconds played and times 3600, is the rate per hour of playing;
the short run alone is the cost of starting (imports, opening the outbox). The state folder
and the working folder are on the same disk as the checkout (not a tmpfs), so write_bytes
counts.

Configurations: no MQTT (the default config); MQTT to a local mosquitto broker started here;
MQTT with the broker unreachable (everything is kept in the outbox).

Caveats printed with the table: `--fast` plays an hour in about a minute, so writes that follow
the wall clock (MQTT health messages, SQLite checkpoints on a timer) are counted for the wall
time of the run, not for an hour; no audio is written anywhere (the table shows the bytes).

    .venv/bin/python bench/sdwrites.py [--seconds 300] [--out bench/out]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' mosquitto helper

# Runs notesight's CLI, then reports this process's I/O counters on stdout's last line.
CHILD = """
import json, sys
from notesight.device.cli import main
code = main(sys.argv[1:])
io = dict(line.split(": ") for line in open("/proc/self/io").read().splitlines())
sys.stdout.write("\\nIO " + json.dumps({k: int(v) for k, v in io.items()} | {"code": code}) + "\\n")
"""


def performance(seconds: float, rate: int = 44100) -> np.ndarray:
    """A melody of 4 notes a second over the keyboard's middle, rendered by FluidSynth."""
    from notesight.device.synth import Note, find_soundfont, render_notes

    rng = np.random.default_rng(7)
    notes = [
        Note(0.25 * i + 0.2, 0.22, int(rng.integers(48, 84)), int(rng.integers(50, 110)))
        for i in range(int(seconds * 4) - 2)
    ]
    return render_notes(notes, find_soundfont("FluidR3_GM"), rate)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_child(config: Path, wav: Path, work: Path) -> dict:
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            "--config",
            str(config),
            "run",
            "--fast",
            "--input",
            str(wav),
        ],
        cwd=work,
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(work),
            "JOURNAL_STREAM": "8:1",
            # The installed service has its bytecode compiled by pip; a checkout being edited
            # would otherwise write .pyc files, which are not the daemon's own writes.
            "PYTHONDONTWRITEBYTECODE": "1",
        },
    )
    wall = time.monotonic() - started
    lines = result.stdout.splitlines()
    io = json.loads(lines[-1][3:]) if lines and lines[-1].startswith("IO ") else {}
    if not io or io["code"] != 0:
        raise SystemExit(f"the run failed:\n{result.stdout}\n{result.stderr}")
    return {"io": io, "log_bytes": len(result.stderr.encode()), "wall_s": wall}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def audio_files(folder: Path) -> list[str]:
    suffixes = {".wav", ".flac", ".ogg", ".mp3", ".raw", ".pcm"}
    return [str(p) for p in folder.rglob("*") if p.suffix.lower() in suffixes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="audio played per run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    audio = performance(args.seconds)
    played_s = len(audio) / 44100
    rows = []
    with tempfile.TemporaryDirectory(dir=args.out, prefix="sdwrites-") as tmp:
        base = Path(tmp)
        wav = base / "performance.wav"
        sf.write(wav, audio, 44100)
        short = base / "start.wav"
        sf.write(short, audio[: 2 * 44100], 44100)
        broker = None
        try:
            from mosquitto import Broker, mosquitto_available

            if mosquitto_available():
                broker = Broker(base / "broker").start()
            setups = [("no MQTT", "")]
            if broker is not None:
                setups.append(("MQTT, broker up", f'host = "127.0.0.1"\nport = {broker.port}\n'))
            setups.append(("MQTT, broker down", f'host = "127.0.0.1"\nport = {free_port()}\n'))
            for name, mqtt in setups:
                row: dict = {"setup": name, "played_s": played_s}
                for kind, clip in (("start", short), ("long", wav)):
                    work = base / f"{name.replace(' ', '_').replace(',', '')}_{kind}"
                    state = work / "state"
                    state.mkdir(parents=True)
                    config = work / "config.toml"
                    text = '[log]\nlevel = "info"\n'
                    if mqtt:
                        text += (
                            f'[mqtt]\nenabled = true\n{mqtt}state_dir = "{state}"\n'
                            "drain_timeout_s = 2.0\n"
                        )
                    config.write_text(text)
                    before = folder_bytes(work)
                    measured = run_child(config, clip, work)
                    row[kind] = {
                        "wall_s": measured["wall_s"],
                        "write_bytes": measured["io"]["write_bytes"],
                        "wchar": measured["io"]["wchar"],
                        "log_bytes": measured["log_bytes"],
                        "state_bytes": folder_bytes(work) - before,
                        "audio_files": audio_files(work),
                    }
                rows.append(row)
        finally:
            if broker is not None:
                broker.stop()

    per_hour = 3600.0 / (played_s - 2.0)
    header = (
        f"{'setup':<18} | {'played':>7} | {'wall':>6} | {'start: disk':>11} | "
        f"{'disk writes/h':>13} | {'write() bytes/h':>15} | {'log bytes/h':>11} | "
        f"{'state left':>10} | audio files"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        start, long = r["start"], r["long"]

        def rate(key: str, start=start, long=long) -> float:
            return (long[key] - start[key]) * per_hour / 1024

        audio = len(start["audio_files"]) + len(long["audio_files"])
        print(
            f"{r['setup']:<18} | {r['played_s']:6.0f}s | {long['wall_s']:5.1f}s | "
            f"{start['write_bytes'] / 1024:7.0f} KiB | {rate('write_bytes'):9.0f} KiB | "
            f"{rate('wchar'):11.0f} KiB | {rate('log_bytes'):7.1f} KiB | "
            f"{long['state_bytes'] / 1024:6.0f} KiB | {audio}"
        )
    print(
        "\n'/h': per hour of playing: (long run - 2 s run) scaled to 3600 s played. 'start':"
        " the 2 s run alone. 'disk writes': /proc/self/io write_bytes of the daemon's process;"
        " 'write() bytes': every write(2), pipes and sockets included; 'log bytes': its log"
        " lines (journald's input); 'state left': the state folder after the long run; 'audio"
        " files': audio files found in the working and state folders. --fast: writes driven by"
        " the wall clock are counted for the wall time only."
    )
    (args.out / "sdwrites.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
