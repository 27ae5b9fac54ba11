"""`notesight listen`: subscribe to what the devices publish and print it, one line a message,
so an operator can check a device end to end. Gaps in `seq` (events that never arrived),
duplicates (re-sent after a reconnect) and late arrivals are shown as they happen.

It uses the broker settings of [mqtt] (host, port, TLS, login), not [mqtt].enabled.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import IO, Any

from .config import Settings
from .errors import NotesightError
from .mqtt import Connection, describe_connect_error, describe_refusal

EVENT_KINDS = ("note", "chord", "level", "alert", "session", "health")
_SEEN_LIMIT = 100_000  # event ids remembered per device for duplicate detection


@dataclass
class _DeviceSeq:
    expected: int | None = None  # the next seq we expect
    missing: set[int] = field(default_factory=set)
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)


class SeqTracker:
    """Per device: which `seq`s are missing, which messages are duplicates."""

    def __init__(self) -> None:
        self._devices: dict[str, _DeviceSeq] = {}
        self.events = 0
        self.duplicates = 0

    @property
    def missing(self) -> int:
        return sum(len(d.missing) for d in self._devices.values())

    def observe(self, device: str, seq: int, event_id: str) -> list[str]:
        """Notes about this message: "" for an ordinary one, else what is odd about it."""
        state = self._devices.setdefault(device, _DeviceSeq())
        if event_id in state.seen:
            self.duplicates += 1
            return [f"duplicate of #{seq} (already received)"]
        state.seen[event_id] = None
        if len(state.seen) > _SEEN_LIMIT:
            state.seen.popitem(last=False)
        self.events += 1
        notes = []
        if state.expected is None or seq == state.expected:
            pass
        elif seq > state.expected:
            gap = range(state.expected, seq)
            state.missing.update(gap)
            first, last = gap[0], gap[-1]
            span = f"#{first}" if first == last else f"#{first}-#{last}"
            notes.append(f"GAP: {len(gap)} events missing ({span})")
        elif seq in state.missing:
            state.missing.discard(seq)
            notes.append("late: fills an earlier gap")
        else:
            notes.append(f"out of order (expected #{state.expected})")
        if state.expected is None or seq >= state.expected:
            state.expected = seq + 1
        return notes


def describe(kind: str, p: dict[str, Any]) -> str:
    """A short human line for an event payload."""
    if kind == "note":
        if p.get("type") == "note_on":
            return (
                f"note_on  {p.get('name', '?'):<4} vel {p.get('velocity', 0):3d} "
                f"{p.get('cents', 0.0):+5.1f} cents"
            )
        return f"note_off {p.get('name', '?')}"
    if kind == "chord":
        return f"chord {p.get('name') or '(none)'} {p.get('midis', [])}"
    if kind == "level":
        return f"level {p.get('dbfs', 0.0):6.1f} dBFS (floor {p.get('floor_dbfs', 0.0):.1f})"
    if kind == "alert":
        state = "ACTIVE" if p.get("active") else "stopped"
        return f"alert {p.get('class')} {state} ({p.get('confidence', 0.0):.2f})"
    if kind == "session":
        if p.get("type") == "session_start":
            return "session started"
        return (
            f"session ended: {p.get('notes')} notes in {p.get('duration_s', 0.0):.0f} s, "
            f"{p.get('lowest')}-{p.get('highest')}, mean velocity {p.get('mean_velocity')}"
        )
    if kind == "health":
        return (
            f"health: up {p.get('uptime_s', 0.0):.0f} s, outbox {p.get('outbox_depth')}, dropped "
            f"{p.get('dropped_events')} events / {p.get('dropped_blocks')} audio blocks"
        )
    return kind


class Listener:
    """Formats messages and tracks sequence numbers; separate from the network for the tests."""

    def __init__(self, out: IO[str], raw: bool = False) -> None:
        self.out = out
        self.raw = raw
        self.seqs = SeqTracker()

    def message(self, topic: str, payload: bytes, retained: bool) -> bool:
        """Print one message; True when it was an event (counted for --count)."""
        parts = topic.split("/")
        kind, device = parts[-1], parts[-2] if len(parts) >= 2 else "?"
        mark = " (retained)" if retained else ""
        if kind == "status":
            self.line(f"{device} status {payload.decode(errors='replace')}{mark}")
            return False
        try:
            data = json.loads(payload)
        except ValueError:
            self.line(f"{topic}: not JSON: {payload[:80]!r}")
            return False
        if self.raw:
            self.line(json.dumps({"topic": topic, **data} if isinstance(data, dict) else data))
        if kind == "info":
            if not self.raw:
                self.line(
                    f"{device} info: notesight {data.get('version')}, mic {data.get('mic')!r} at "
                    f"{data.get('sample_rate')} Hz, config {data.get('config_hash')}, boot "
                    f"{data.get('boot_id')}{mark}"
                )
            return False
        if kind in ("level", "health") and isinstance(data, dict) and "seq" not in data:
            # Telemetry: live, never stored or re-sent, not numbered (device/mqtt.py).
            if not self.raw:
                sync = "" if data.get("clock_synced") else "~"
                self.line(f"{data.get('t', '?')}{sync} {device} {describe(kind, data)}")
            return False
        if kind not in EVENT_KINDS or not isinstance(data, dict) or "seq" not in data:
            if not self.raw:
                self.line(f"{topic}: {payload[:120].decode(errors='replace')}")
            return False
        notes = self.seqs.observe(device, int(data["seq"]), str(data.get("event_id")))
        if self.raw:
            for note in notes:
                self.line(f"# {device} {note}")
            return True
        gaps = [n for n in notes if n.startswith("GAP")]
        for gap in gaps:
            self.line(f"{device} {gap}")
        rest = [n for n in notes if not n.startswith("GAP")]
        sync = "" if data.get("clock_synced") else "~"  # ~: the device's clock was not synced
        self.line(
            f"{data.get('t', '?')}{sync} {device} #{data['seq']} {describe(kind, data)}"
            + (f"  [{'; '.join(rest)}]" if rest else "")
        )
        return True

    def summary(self) -> str:
        s = self.seqs
        return f"{s.events} events, {s.duplicates} duplicates, {s.missing} missing"

    def line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def listen(
    settings: Settings,
    out: IO[str],
    *,
    device: str | None = None,
    count: int | None = None,
    raw: bool = False,
    stop: threading.Event | None = None,
) -> int:
    """Print messages until `count` events arrived, `stop` is set, or Ctrl-C."""
    conn = Connection.from_settings(settings.mqtt)
    device = device or settings.mqtt.device_id or "+"
    topic = f"{settings.mqtt.topic_prefix}/{device}/#"
    client = conn.new_client(client_id=f"notesight-listen-{uuid.uuid4().hex[:8]}")
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue()

    def on_connect(client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            inbox.put(("refused", reason))
            return
        client.subscribe(topic, qos=1)
        inbox.put(("connected", None))

    def on_disconnect(client, userdata, flags, reason, properties) -> None:
        inbox.put(("lost", reason))

    def on_message(client, userdata, message) -> None:
        inbox.put(("message", (message.topic, bytes(message.payload), message.retain)))

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_message = on_message
    try:
        client.connect(conn.host, conn.port, conn.keepalive_s)
    except (OSError, ValueError) as exc:
        raise NotesightError(describe_connect_error(exc, conn)) from exc
    printer = Listener(out, raw)
    client.loop_start()
    received = 0
    try:
        while stop is None or not stop.is_set():
            try:
                what, data = inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            if what == "refused":
                raise NotesightError(describe_refusal(data, conn))
            if what == "connected":
                printer.line(f"# listening to {topic} on {conn.where}")
            elif what == "lost":
                printer.line(f"# lost the broker ({data}); reconnecting")
            elif printer.message(*data):
                received += 1
                if count is not None and received >= count:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    printer.line(f"# {printer.summary()}")
    return 0
