"""MQTT output: what the piano heard, to a broker, with nothing lost when the broker goes away.

Topics, under `<topic_prefix>/<device_id>/`:

    status   "online" / "offline" (retained; "offline" is also the last will)
    info     what this device is (retained, JSON, schemas/info.json)
    note     note_on and note_off               (schemas/note.json)
    chord    chord changes                      (schemas/chord.json)
    level    the level, at most one per [mqtt].level_interval_s (schemas/level.json); telemetry
    alert    household sounds                   (schemas/alert.json)
    session  session_start, and a summary when playing stops (schemas/session.json)
    health   uptime, outbox depth, dropped blocks and events (schemas/health.json); telemetry

Every payload carries the envelope of schemas/envelope.json: `event_id` (unique; a message
delivered twice keeps it), `boot_id`, `t` (UTC) with `clock_synced`, and the audio-stream time
`stream_s`; events (note, chord, alert, session) also carry `seq` (per device, one more per
event, across restarts).

How nothing gets lost: the audio loop only appends to an in-memory queue (`handle` never waits
for a disk or the network). The output's thread moves the events from that queue into the
SQLite outbox (device/outbox.py), and only then publishes them, QoS 1, at most `max_in_flight`
at a time; a row is deleted when the broker acknowledges it. After a reconnect paho re-sends
what was in flight and the thread continues with the next rows; after a restart the thread
starts again from the oldest row.

SD-card wear: each SQLite commit appends the pages it changed (4 KiB each) to the WAL, whatever
the size of the events. So the thread commits at most once per COMMIT_EVERY_S (of wall-clock
time or of audio, whichever passes first; the audio clock makes `run --input --fast` behave as
it would in real time): one transaction stores the events that arrived since the last commit
and deletes the rows acknowledged since then. An event after a quiet spell is committed and
published at once; while notes keep coming, an event waits at most COMMIT_EVERY_S before it is
stored and published. That is also the window a SIGKILL (or a crash) can lose: the events of
the last COMMIT_EVERY_S, still in memory, before they got a `seq`. While the broker is away,
nothing waits to be published, so the thread commits every COMMIT_EVERY_OFFLINE_S instead (a
longer SIGKILL window, still shorter than what a power cut can take with synchronous=NORMAL).

Telemetry (level, health) is different: it is superseded within seconds and has no value after
an outage, so it is never stored: it is published at once with QoS 0 while connected and simply
not sent while the broker is away. It carries no `seq` (a missed level is not a gap).

The thread runs paho's network loop itself (`loop_read`/`loop_write`/`loop_misc` around one
`select`, with a socketpair so `handle` can wake it at once), so paho's callbacks and every
SQLite access happen on that one thread; it has a stop event and is joined in `close()`, which
first waits (at most `drain_timeout_s`) for the outbox to empty.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import errno
import hashlib
import json
import logging
import math
import select
import socket
import sqlite3
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from notesight.dsp.alerts import ALERT_CLASSES
from notesight.dsp.events import Alert, Chord, Event, Level, NoteOff, NoteOn

from .config import MqttSettings, Settings
from .errors import OutputError, explain_os_error
from .outbox import OUTBOX_FILE, Outbox, PendingEvent, default_state_dir, is_disk_full
from .outputs import DeviceStatus, Output
from .session import SessionEvent, SessionStart, SessionTracker

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
EVENT_TOPICS = ("note", "chord", "level", "alert", "session", "health")
TELEMETRY = ("level", "health")  # published live with QoS 0, never stored (module docstring)
PENDING_LIMIT = 100_000  # events waiting for the thread; beyond this (a stuck disk) they drop
BATCH = 2000  # events moved from memory to SQLite per transaction
# At most one outbox commit per this many seconds (wall clock or audio, whichever passes first):
# the SD-card writes and the longest an event waits in memory (see the module docstring).
COMMIT_EVERY_S = 0.5
# While the broker is away nothing waits on a commit to be published, so commit less often. The
# price is a longer SIGKILL window (below the power-cut window of synchronous=NORMAL anyway).
COMMIT_EVERY_OFFLINE_S = 3.0
RECONNECT_MIN_S = 0.25
RECONNECT_MAX_S = 10.0
PRUNE_EVERY_S = 60.0
CLOCK_CHECK_EVERY_S = 30.0
CONNECT_TIMEOUT_S = 5.0
_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised (STA_UNSYNC)


def schema_id(kind: str) -> str:
    """The `$id` of the JSON Schema (schemas/<kind>.json) and the payload's `schema` field."""
    return f"urn:notesight:{kind}:{SCHEMA_VERSION}"


def derive_device_id(hostname: str) -> str:
    """A topic-safe device id from the host name: 'Piano Pi.local' -> 'Piano-Pi'."""
    name = hostname.split(".")[0]
    safe = "".join(c if (c.isalnum() and c.isascii()) or c in "-_" else "-" for c in name)
    return safe.strip("-")[:64] or "piano"


def iso_utc(timestamp: float) -> str:
    """ISO 8601 UTC with milliseconds: 2025-01-31T12:00:00.123Z."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def clock_synchronised() -> bool:
    """Whether the kernel considers the system clock NTP-synchronised.

    adjtimex(2) with modes = 0 only reads; it returns TIME_ERROR while STA_UNSYNC is set. This is
    what chrony, ntpd and systemd-timesyncd all report through, and no Python library wraps it,
    hence ctypes. A Pi has no real-time clock: until NTP syncs, `t` may be far off.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        timex = ctypes.create_string_buffer(512)  # larger than struct timex; modes (first) = 0
        state = libc.adjtimex(timex)
    except (OSError, AttributeError):
        return False
    return state not in (-1, _TIME_ERROR)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def notesight_version() -> str:
    try:
        return metadata.version("notesight")
    except metadata.PackageNotFoundError:
        return "unknown"


def config_hash(settings: Settings) -> str:
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Connection settings, resolved once (files read, defaults filled in)
# ---------------------------------------------------------------------------------------------


def _read_password(path_text: str) -> str:
    path = Path(path_text).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OutputError(explain_os_error(exc, path, "[mqtt].password_file")) from exc
    except UnicodeDecodeError as exc:
        raise OutputError(f"[mqtt].password_file {path} is not UTF-8 text") from exc
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise OutputError(f"[mqtt].password_file {path} is empty: write the password in it")
    return lines[0]


def _check_readable(path_text: str, key: str) -> str | None:
    if not path_text:
        return None
    path = Path(path_text).expanduser()
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise OutputError(explain_os_error(exc, path, f"[mqtt].{key}")) from exc
    return str(path)


@dataclass(frozen=True)
class Connection:
    """Everything needed to reach the broker, checked at startup."""

    host: str
    port: int
    protocol: int
    client_id: str
    device_id: str
    keepalive_s: int
    username: str | None
    password: str | None
    tls: bool
    ca_file: str | None
    cert_file: str | None
    key_file: str | None

    @classmethod
    def from_settings(cls, mqtt_settings: MqttSettings) -> Connection:
        s = mqtt_settings
        device_id = s.device_id or derive_device_id(socket.gethostname())
        return cls(
            host=s.host,
            port=s.port,
            protocol=mqtt.MQTTv5 if s.protocol == "5" else mqtt.MQTTv311,
            client_id=s.client_id or f"notesight-{device_id}",
            device_id=device_id,
            keepalive_s=s.keepalive_s,
            username=s.username or None,
            password=_read_password(s.password_file) if s.password_file else None,
            tls=s.tls,
            ca_file=_check_readable(s.tls_ca_file, "tls_ca_file"),
            cert_file=_check_readable(s.tls_cert_file, "tls_cert_file"),
            key_file=_check_readable(s.tls_key_file, "tls_key_file"),
        )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def new_client(self, client_id: str | None = None) -> mqtt.Client:
        """A paho client with the protocol, login and TLS set (not connected)."""
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or self.client_id,
            protocol=self.protocol,
        )
        client.connect_timeout = CONNECT_TIMEOUT_S
        if self.username is not None or self.password is not None:
            client.username_pw_set(self.username or "", self.password)
        if self.tls:
            try:
                client.tls_set(
                    ca_certs=self.ca_file, certfile=self.cert_file, keyfile=self.key_file
                )
            except (ssl.SSLError, ValueError) as exc:
                raise OutputError(
                    f"cannot use the TLS files ([mqtt].tls_ca_file {self.ca_file}, "
                    f"tls_cert_file {self.cert_file}, tls_key_file {self.key_file}): {exc}; "
                    "they must be PEM files and the key must match the certificate"
                ) from exc
        return client


def describe_connect_error(exc: BaseException, conn: Connection) -> str:
    """One line for the caretaker: what went wrong reaching the broker and which key to check."""
    where = conn.where
    if isinstance(exc, socket.gaierror):
        return (
            f"cannot find the MQTT broker host {conn.host!r} ({exc.strerror}): check [mqtt].host "
            "and the network"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        trusted = f"[mqtt].tls_ca_file {conn.ca_file}" if conn.ca_file else "the system CAs"
        return (
            f"TLS: the MQTT broker's certificate at {where} is not trusted by {trusted} "
            f"({exc.verify_message}): check [mqtt].tls_ca_file and that [mqtt].host is the name "
            "in the broker's certificate"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"TLS with the MQTT broker at {where} failed ({exc.reason or exc}): check [mqtt].tls,"
            " tls_ca_file, tls_cert_file, tls_key_file and [mqtt].port"
        )
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"the MQTT broker at {where} refused the connection: is the broker running? check "
            "[mqtt].host and [mqtt].port"
        )
    if isinstance(exc, TimeoutError):
        return f"no answer from the MQTT broker at {where}: check [mqtt].host, port and network"
    if isinstance(exc, OSError):
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "") or str(exc)
        return f"cannot reach the MQTT broker at {where} ({reason}): check the network"
    return f"cannot connect to the MQTT broker at {where}: {exc}"


def describe_refusal(reason: ReasonCode, conn: Connection) -> str:
    """The broker answered CONNACK with a failure."""
    text = str(reason)
    lowered = text.lower()
    if "user name or password" in lowered or "not authorized" in lowered:
        return (
            f"the MQTT broker at {conn.where} refused the login ({text}): check [mqtt].username "
            "and [mqtt].password_file"
        )
    if "identifier" in lowered:
        return (
            f"the MQTT broker at {conn.where} rejected the client id ({text}): check "
            "[mqtt].client_id"
        )
    return f"the MQTT broker at {conn.where} refused the connection ({text})"


# ---------------------------------------------------------------------------------------------
# Payloads
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Queued:
    """An event waiting for its `seq`: made on the audio thread, numbered on the MQTT thread."""

    topic: str
    kind: str  # the schema: note, chord, level, alert, session, health
    body: dict[str, Any]
    stream_s: float
    t: float
    clock_synced: bool


def event_body(event: Event) -> tuple[str, dict[str, Any], float]:
    """(topic kind, fields, stream time) of a pipeline event."""
    if isinstance(event, NoteOn):
        body = {
            "type": "note_on",
            "midi": event.midi,
            "name": event.name,
            "velocity": event.velocity,
            "cents": round(event.cents, 2),
            "freq_hz": round(event.freq_hz, 3),
            "onset_s": round(event.onset_s, 4),
        }
        return "note", body, event.emitted_s
    if isinstance(event, NoteOff):
        body = {
            "type": "note_off",
            "midi": event.midi,
            "name": event.name,
            "offset_s": round(event.offset_s, 4),
        }
        return "note", body, event.emitted_s
    if isinstance(event, Chord):
        return "chord", {"name": event.name, "midis": list(event.midis)}, event.stream_s
    if isinstance(event, Level):
        body = {"dbfs": round(event.dbfs, 2), "floor_dbfs": round(event.floor_dbfs, 2)}
        return "level", body, event.stream_s
    if isinstance(event, Alert):
        body = {
            # "class" on the wire, as issue 6 names it; the field cannot be (a Python keyword).
            "class": event.label,
            "confidence": round(event.confidence, 4),
            "active": event.active,
            "event_type": event.label if event.active else "stopped",
        }
        return "alert", body, event.stream_s
    raise TypeError(f"not a pipeline event: {event!r}")


def session_body(event: SessionEvent, start_t: float, end_t: float) -> dict[str, Any]:
    if isinstance(event, SessionStart):
        return {"type": "session_start", "start_s": round(event.start_s, 4)}
    return {
        "type": "session_end",
        "start_s": round(event.start_s, 4),
        "start_t": iso_utc(start_t),
        "end_s": round(event.end_s, 4),
        "end_t": iso_utc(end_t),
        "duration_s": round(event.duration_s, 3),
        "notes": event.notes,
        "lowest": event.lowest_name,
        "highest": event.highest_name,
        "lowest_midi": event.lowest_midi,
        "highest_midi": event.highest_midi,
        "distinct_keys": event.distinct_keys,
        "mean_velocity": round(event.mean_velocity, 1),
        "max_velocity": event.max_velocity,
        "peak_dbfs": _finite(round(event.peak_dbfs, 2)),
    }


def discovery_messages(
    discovery_prefix: str, topic_base: str, device_id: str, version: str
) -> list[tuple[str, dict[str, Any]]]:
    """Home Assistant MQTT discovery: (config topic, config) for each entity."""
    node = f"notesight_{device_id}"
    device = {
        "identifiers": [node],
        "name": f"notesight {device_id}",
        "manufacturer": "notesight",
        "model": "piano listener",
        "sw_version": version,
    }
    common = {
        "device": device,
        "availability_topic": f"{topic_base}/status",
        "payload_available": "online",
        "payload_not_available": "offline",
    }
    entities: list[tuple[str, str, dict[str, Any]]] = [
        (
            "sensor",
            "note",
            {
                "name": "Note",
                "state_topic": f"{topic_base}/note",
                "value_template": "{{ value_json.name if value_json.type == 'note_on' else '' }}",
                "icon": "mdi:music-note",
            },
        ),
        (
            "sensor",
            "chord",
            {
                "name": "Chord",
                "state_topic": f"{topic_base}/chord",
                "value_template": "{{ value_json.name }}",
                "icon": "mdi:music",
            },
        ),
        (
            "sensor",
            "level",
            {
                "name": "Level",
                "state_topic": f"{topic_base}/level",
                "value_template": "{{ value_json.dbfs }}",
                "unit_of_measurement": "dBFS",
                "state_class": "measurement",
                "icon": "mdi:volume-high",
            },
        ),
        (
            "event",
            "alert",
            {
                "name": "Alert",
                "state_topic": f"{topic_base}/alert",
                "event_types": [*ALERT_CLASSES, "stopped"],
                "icon": "mdi:bell-ring",
            },
        ),
        (
            "binary_sensor",
            "playing",
            {
                "name": "Playing",
                "state_topic": f"{topic_base}/session",
                "value_template": "{{ 'ON' if value_json.type == 'session_start' else 'OFF' }}",
                "icon": "mdi:piano",
            },
        ),
    ]
    return [
        (
            f"{discovery_prefix}/{component}/{node}/{object_id}/config",
            {
                **config,
                "unique_id": f"{node}_{object_id}",
                **common,
            },
        )
        for component, object_id, config in entities
    ]


# ---------------------------------------------------------------------------------------------
# The output
# ---------------------------------------------------------------------------------------------


@dataclass
class MqttCounters:
    """What the thread did, for the health payload, the tests and the benchmark."""

    published: int = 0  # events handed to the broker (re-sends not counted)
    acked: int = 0  # events the broker acknowledged (their rows deleted)
    dropped_full: int = 0  # the in-memory queue was full
    dropped_disk: int = 0  # the outbox could not store them (disk full, I/O error)
    refused: int = 0  # MQTT 5: the broker refused an event (reason code >= 0x80)
    connects: int = 0
    commits: int = 0  # outbox transactions (inserts and acknowledged deletes together)
    telemetry_sent: int = 0  # level and health messages published (QoS 0)
    telemetry_skipped: int = 0  # level and health messages not sent: the broker was away


class MqttOutput:
    """The daemon's MQTT output; see the module docstring."""

    name = "mqtt"

    def __init__(
        self,
        settings: MqttSettings,
        status: DeviceStatus | None = None,
        *,
        mic: str = "",
        sample_rate: int = 0,
        config_digest: str = "",
        drain_on_close: bool = False,
        record_latency: bool = False,
    ) -> None:
        self.settings = settings
        # Wait (at most drain_timeout_s) in close() until the broker has everything: at the end
        # of a file. A microphone run that stops (or reloads its config) leaves the rest on
        # disk for the next start instead of holding up the audio loop.
        self.drain_on_close = drain_on_close
        self.status = status or DeviceStatus()
        self.conn = Connection.from_settings(settings)
        self.device_id = self.conn.device_id
        self.boot_id = str(uuid.uuid4())
        self.topic_base = f"{settings.topic_prefix}/{self.device_id}"
        self.counters = MqttCounters()
        # Broker-ack latency of each event (s), from handle() to PUBACK: for bench/mqtt.py.
        self.ack_latencies: list[float] | None = [] if record_latency else None
        self._started_wall = time.time()
        self._started = time.monotonic()
        self._version = notesight_version()
        self._info = {
            "schema": schema_id("info"),
            "device_id": self.device_id,
            "boot_id": self.boot_id,
            "version": self._version,
            "config_hash": config_digest,
            "mic": mic,
            "sample_rate": sample_rate,
        }
        state_dir = default_state_dir(settings.state_dir)
        self.outbox_path = state_dir / OUTBOX_FILE
        self._outbox = Outbox(
            self.outbox_path, max_rows=settings.outbox_max_rows, max_age_s=settings.outbox_max_age_s
        )
        self._client = self._make_client()

        # Written by the audio thread, read by the MQTT thread.
        self._pending: collections.deque[_Queued] = collections.deque()
        self._clock_synced = clock_synchronised()
        self._stream_s = 0.0
        self._next_level_s = 0.0
        self._sessions = SessionTracker(settings.session_gap_s)
        self._session_start_t = 0.0
        self._closed = False
        self._info_due = False  # a reload kept this output: publish the new info (config hash)

        # Written by the MQTT thread, read by the audio thread (tick): the stream time at which
        # uncommitted events are due for the outbox, so `--fast` runs commit by audio time.
        self._commit_due_stream = math.inf

        # Owned by the MQTT thread.
        self._unstored: list[_Queued] = []  # events waiting for the next outbox commit
        self._last_commit = -math.inf  # time.monotonic() of the last commit
        self._last_commit_stream = -math.inf  # the stream time then
        self._inflight: dict[int, tuple[int, float]] = {}  # mid -> (seq, queued_at)
        self._acked_rows: list[int] = []  # seqs acknowledged, deleted at the next commit
        self._last_sent_seq = 0
        self._socket_open = False
        self._connected = False
        self._backoff_s = RECONNECT_MIN_S
        self._next_attempt = 0.0
        self._last_problem = ""
        self._failures = 0
        self._last_disk_error = -math.inf

        self._stop = threading.Event()
        self._deadline = math.inf
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._woken = False
        self.status.update(mqtt_enabled=True, mqtt_connected=False, mqtt_queued=len(self._outbox))
        self._thread = threading.Thread(target=self._run, name="notesight-mqtt", daemon=True)
        self._thread.start()

    def _make_client(self) -> mqtt.Client:
        client = self.conn.new_client()
        client.will_set(f"{self.topic_base}/status", "offline", qos=1, retain=True)
        client.max_inflight_messages_set(0)  # the outbox bounds what is in flight, not paho
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.connect_async(self.conn.host, self.conn.port, self.conn.keepalive_s)
        return client

    # -- the audio thread's side: never waits ---------------------------------------------------
    def handle(self, event: Event) -> None:
        if not self._thread.is_alive():
            # Only after a bug in the thread (logged with its traceback): the daemon drops
            # this output with one line instead of queueing into memory nobody reads.
            raise OutputError("the MQTT thread stopped; events are no longer sent")
        for session_event in self._sessions.feed(event):
            self._queue_session(session_event)
        if isinstance(event, Level):
            if event.stream_s < self._next_level_s:
                return
            self._next_level_s = event.stream_s + self.settings.level_interval_s
        kind, body, stream_s = event_body(event)
        self._queue(kind, body, stream_s)

    def config_changed(self, config_digest: str) -> None:
        """A reload kept this output (its [mqtt] did not change): the retained `info` names the
        new config's hash; the connection, boot_id and session go on."""
        self._info = {**self._info, "config_hash": config_digest}
        self._info_due = True
        self._wake()

    def tick(self, stream_s: float) -> None:
        self._stream_s = stream_s
        if stream_s >= self._commit_due_stream:
            self._wake()
        for session_event in self._sessions.tick(stream_s):
            self._queue_session(session_event)

    def _queue_session(self, event: SessionEvent) -> None:
        now = time.time()
        if isinstance(event, SessionStart):
            self._session_start_t = now
            self._queue("session", session_body(event, now, now), event.start_s)
            return
        # The session ended `stream_s - end_s` seconds of audio ago.
        end_t = max(self._session_start_t, now - max(0.0, self._stream_s - event.end_s))
        self._queue("session", session_body(event, self._session_start_t, end_t), event.end_s)

    def _queue(self, kind: str, body: dict[str, Any], stream_s: float) -> None:
        if len(self._pending) >= PENDING_LIMIT:
            self.counters.dropped_full += 1
            return
        item = _Queued(
            f"{self.topic_base}/{kind}", kind, body, stream_s, time.time(), self._clock_synced
        )
        self._pending.append(item)
        self._wake()

    def _wake(self) -> None:
        if self._woken:
            return
        self._woken = True
        # A full buffer (BlockingIOError) means wake-ups are waiting already.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    # -- close: drain, then stop ------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        for session_event in self._sessions.flush():
            self._queue_session(session_event)
        self._closed = True
        drain_s = self.settings.drain_timeout_s if self.drain_on_close else 0.0
        self._deadline = time.monotonic() + drain_s
        self._stop.set()
        self._woken = False
        self._wake()
        # Bounded: the drain, plus a connect attempt that may be under way (an unreachable
        # host); normally the thread is gone within milliseconds of the drain.
        self._thread.join(drain_s + CONNECT_TIMEOUT_S + 1.0)
        if self._thread.is_alive():
            log.error(
                "MQTT: the network thread is still busy connecting to %s; the stored events stay "
                "in the outbox %s",
                self.conn.where,
                self.outbox_path,
            )

    def _finish(self) -> None:
        """The thread's last steps: whatever is still in memory goes to disk, then close."""
        self._take_pending()
        if self._unstored or self._acked_rows:
            self._commit()
        left = len(self._outbox)
        if left:
            log.warning(
                "MQTT: %d events left in the outbox %s (broker %s); they are sent at the next "
                "start",
                left,
                self.outbox_path,
                "connected" if self._connected else "not reachable",
            )
        self._say_goodbye()
        self._outbox.close()
        self._wake_r.close()
        self._wake_w.close()
        self.status.update(mqtt_connected=False, mqtt_queued=left)

    @property
    def queued(self) -> int:
        """Events not yet acknowledged by the broker (outbox + waiting in memory; telemetry
        waiting in memory is counted too, for the moment it is there)."""
        return len(self._outbox) + len(self._pending) + len(self._unstored)

    @property
    def dropped_events(self) -> int:
        c = self.counters
        return c.dropped_full + c.dropped_disk + c.refused + self._outbox.dropped

    # -- the MQTT thread --------------------------------------------------------------------------
    def _run(self) -> None:
        self._next_health = time.monotonic() + self.settings.health_interval_s
        self._next_prune = 0.0
        self._next_clock = time.monotonic() + CLOCK_CHECK_EVERY_S
        try:
            while True:
                try:
                    if not self._turn():
                        break
                except sqlite3.Error as exc:
                    # A failing disk (full, read-only, I/O error): say so, keep trying; what
                    # is in memory waits (bounded by PENDING_LIMIT), nothing else stops.
                    self._disk_problem(exc, 0)
                    self._stop.wait(0.5)
        except Exception:
            # Never silent: a bug here must not take the audio loop down, but it must be seen.
            log.exception("MQTT output thread failed; events stay in the outbox")
        finally:
            self._finish()

    def _turn(self) -> bool:
        """One turn of the thread's loop; False when it is time to stop."""
        now = time.monotonic()
        self._take_pending()
        self._commit_if_due(now)
        if self._stop.is_set() and (self.queued == 0 or now >= self._deadline):
            return False
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY_S
            self._outbox.prune_old()
        if now >= self._next_clock:
            self._clock_synced = clock_synchronised()
            self._next_clock = now + CLOCK_CHECK_EVERY_S
        if now >= self._next_health and not self._stop.is_set():
            self._queue_health()
            self._next_health = now + self.settings.health_interval_s
            return True
        if not self._socket_open and now >= self._next_attempt:
            self._connect()
        if self._connected:
            if self._info_due:
                self._publish_info()
            self._publish_more()
        self._update_status()
        wake_at = min(self._next_health, self._next_prune, self._deadline)
        if self._unstored or self._acked_rows:
            wake_at = min(wake_at, self._last_commit + self._commit_every_s)
        timeout = wake_at - time.monotonic()
        if not self._socket_open:
            timeout = min(timeout, self._next_attempt - time.monotonic())
        self._wait_io(max(0.0, min(timeout, 1.0)))
        return True

    def _queue_health(self) -> None:
        snap = self.status.snapshot()
        body = {
            "uptime_s": round(time.monotonic() - self._started, 1),
            "outbox_depth": self.queued,
            "dropped_blocks": snap.dropped_blocks,
            "dropped_events": self.dropped_events,
            "mic_ok": snap.mic_ok,
        }
        item = _Queued(
            f"{self.topic_base}/health",
            "health",
            body,
            self._stream_s,
            time.time(),
            self._clock_synced,
        )
        self._pending.append(item)

    def _take_pending(self) -> None:
        """Memory -> telemetry published now, events to the next outbox commit."""
        while self._pending:
            item = self._pending.popleft()
            if item.kind in TELEMETRY:
                self._send_telemetry(item)
            else:
                self._unstored.append(item)

    def _send_telemetry(self, item: _Queued) -> None:
        if not self._connected:
            self.counters.telemetry_skipped += 1  # superseded by the next one; not stored
            return
        self._client.publish(item.topic, self._payload(item, None), qos=0)
        self.counters.telemetry_sent += 1

    def _commit_if_due(self, now: float) -> None:
        if not self._unstored and not self._acked_rows:
            self._commit_due_stream = math.inf
            return
        due = (
            self._stop.is_set()
            or len(self._unstored) >= BATCH
            or now >= self._last_commit + self._commit_every_s
            or self._stream_s >= self._last_commit_stream + self._commit_every_s
        )
        if not due:
            self._commit_due_stream = self._last_commit_stream + self._commit_every_s
            return
        self._commit()

    @property
    def _commit_every_s(self) -> float:
        return COMMIT_EVERY_S if self._connected else COMMIT_EVERY_OFFLINE_S

    def _commit(self) -> None:
        """Store the waiting events and delete the acknowledged rows: one transaction per
        BATCH events (one in all, normally), before any of these events is published."""
        while self._unstored or self._acked_rows:
            batch = self._unstored[:BATCH]
            del self._unstored[:BATCH]
            events: list[PendingEvent] = [
                (item.topic, self._builder(item), item.t) for item in batch
            ]
            try:
                self._outbox.write(events, self._acked_rows)
            except sqlite3.Error as exc:
                # The events are lost (counted); the acks are kept for the next commit (if the
                # process ends first, those rows are sent again at the next start: duplicates,
                # which consumers drop by event_id).
                self.counters.dropped_disk += len(batch)
                self._disk_problem(exc, len(batch))
                if not self._unstored:
                    break
                continue
            self._acked_rows = []
        self.counters.commits += 1
        self._last_commit = time.monotonic()
        self._last_commit_stream = self._stream_s
        self._commit_due_stream = math.inf

    def _builder(self, item: _Queued) -> Callable[[int], bytes]:
        return lambda seq: self._payload(item, seq)

    def _payload(self, item: _Queued, seq: int | None) -> bytes:
        """The JSON payload; `seq` only for events (telemetry is not numbered)."""
        numbered = {"seq": seq} if seq is not None else {}
        payload = {
            "schema": schema_id(item.kind),
            "device_id": self.device_id,
            "boot_id": self.boot_id,
            **numbered,
            "event_id": str(uuid.uuid4()),
            "t": iso_utc(item.t),
            "clock_synced": item.clock_synced,
            "stream_s": round(max(0.0, item.stream_s), 4),
            **item.body,
        }
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()

    def _disk_problem(self, exc: Exception, count: int) -> None:
        now = time.monotonic()
        if now - self._last_disk_error < 60.0:
            return  # one line a minute is enough; the count is in the health message
        self._last_disk_error = now
        if is_disk_full(exc) and not count:
            log.error(
                "MQTT outbox %s: the disk is full (free some space on the device holding "
                "[mqtt].state_dir)",
                self.outbox_path,
            )
        elif is_disk_full(exc):
            log.error(
                "MQTT outbox %s: the disk is full; %d events dropped (free some space on the "
                "device holding [mqtt].state_dir)",
                self.outbox_path,
                count,
            )
        else:
            log.error(
                "MQTT outbox %s: cannot store events (%s); dropped %d", self.outbox_path, exc, count
            )

    # -- connecting ------------------------------------------------------------------------------
    def _connect(self) -> None:
        # Open before the call: paho may already report the socket closing from inside it.
        self._socket_open = True
        try:
            rc = self._client.reconnect()
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._connect_failed(describe_connect_error(exc, self.conn))
            return
        if self._socket_open and (
            rc != MQTTErrorCode.MQTT_ERR_SUCCESS or not self._client.socket()
        ):
            self._mark_down(mqtt.error_string(rc))
        # Otherwise TCP (and TLS) are up, and CONNACK decides.

    def _connect_failed(self, problem: str) -> None:
        self._failures += 1
        self._socket_open = False
        self._connected = False
        self._schedule_retry()
        if problem != self._last_problem:
            log.error("%s; events are kept in the outbox (%d queued)", problem, self.queued)
            self._last_problem = problem
        else:
            log.debug("MQTT: still failing: %s", problem)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if reason.is_failure:
            self._connect_failed(describe_refusal(reason, self.conn))
            return
        self._connected = True
        self.counters.connects += 1
        self._backoff_s = RECONNECT_MIN_S
        level = logging.WARNING if self._failures else logging.INFO
        log.log(
            level,
            "MQTT: connected to %s as %s (%d events queued)",
            self.conn.where,
            self.conn.client_id,
            self.queued,
        )
        self._failures = 0
        self._last_problem = ""
        client.publish(f"{self.topic_base}/status", "online", qos=1, retain=True)
        self._publish_info()
        if self.settings.homeassistant:
            client.subscribe(f"{self.settings.discovery_prefix}/status", qos=1)
            self._send_discovery()

    def _publish_info(self) -> None:
        self._info_due = False
        info = {**self._info, "t": iso_utc(self._started_wall), "clock_synced": self._clock_synced}
        self._client.publish(f"{self.topic_base}/info", json.dumps(info), qos=1, retain=True)

    def _send_discovery(self) -> None:
        for topic, config in discovery_messages(
            self.settings.discovery_prefix, self.topic_base, self.device_id, self._version
        ):
            self._client.publish(topic, json.dumps(config), qos=1, retain=True)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # Home Assistant restarted: it forgets entities that are not announced again.
        if (
            message.topic == f"{self.settings.discovery_prefix}/status"
            and message.payload == b"online"
        ):
            log.info("MQTT: Home Assistant is online; announcing the device again")
            self._send_discovery()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if self._socket_open:
            self._mark_down(str(reason))

    def _lost(self, rc: MQTTErrorCode) -> None:
        """paho's loop reported an error: the socket is gone (on_disconnect usually said so)."""
        if self._socket_open:
            self._mark_down(mqtt.error_string(rc))

    def _mark_down(self, why: str) -> None:
        if not self._connected:
            # The socket (and TLS) came up but the broker hung up before CONNACK: a TLS
            # listener that wants a client certificate, or not an MQTT port at all.
            self._connect_failed(
                f"the MQTT broker at {self.conn.where} closed the connection before accepting "
                f"it ({why}): check [mqtt].port, [mqtt].tls and the TLS files (a client "
                "certificate may be required)"
            )
            return
        if not self._stop.is_set():
            log.warning(
                "MQTT: lost the broker at %s (%s); events are kept in the outbox and sent when "
                "it is back",
                self.conn.where,
                why,
            )
        self._socket_open = False
        self._connected = False
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        self._next_attempt = time.monotonic() + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, RECONNECT_MAX_S)

    # -- publishing ------------------------------------------------------------------------------
    def _publish_more(self) -> None:
        room = self.settings.max_in_flight - len(self._inflight)
        if room <= 0:
            return
        for row in self._outbox.after(self._last_sent_seq, room):
            info = self._client.publish(row.topic, row.payload, qos=1)
            # paho keeps a QoS 1 message even when the socket just died (rc NO_CONN) and sends
            # it after the reconnect; either way it is now paho's to deliver.
            self._inflight[info.mid] = (row.seq, row.queued_at)
            self._last_sent_seq = row.seq
            self.counters.published += 1
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                log.debug("MQTT publish returned %s", info.rc)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return  # status, info, discovery or telemetry
        seq, queued_at = entry
        if reason.is_failure:
            # MQTT 5 only: the broker will not take it (ACL, quota); re-sending cannot help.
            self.counters.refused += 1
            log.error(
                "MQTT: the broker refused an event (%s): check the broker's ACL for %s/#",
                reason,
                self.topic_base,
            )
        else:
            self.counters.acked += 1
            if self.ack_latencies is not None:
                self.ack_latencies.append(time.time() - queued_at)
        self._acked_rows.append(seq)  # deleted with the next commit (_commit_if_due)

    # -- the network loop --------------------------------------------------------------------------
    def _wait_io(self, timeout: float) -> None:
        sock = self._client.socket() if self._socket_open else None
        if self._socket_open and sock is None:  # paho closed it without telling us
            self._mark_down("the connection closed")
        if sock is not None and getattr(sock, "pending", lambda: 0)() > 0:
            timeout = 0.0  # TLS has decrypted bytes waiting that select cannot see
        if self._pending:
            timeout = 0.0
        readers: list[Any] = [self._wake_r]
        writers: list[Any] = []
        if sock is not None:
            readers.append(sock)
            if self._client.want_write():
                writers.append(sock)
        try:
            readable, writable, _ = select.select(readers, writers, [], timeout)
        except (OSError, ValueError):
            self._lost(MQTTErrorCode.MQTT_ERR_CONN_LOST)
            return
        if self._wake_r in readable:
            self._drain_wakeups()
        if sock is None:
            return
        if sock in readable or getattr(sock, "pending", lambda: 0)() > 0:
            rc = self._client.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._lost(rc)
                return
        if sock in writable or self._client.want_write():
            rc = self._client.loop_write()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._lost(rc)
                return
        rc = self._client.loop_misc()  # keepalive pings, and noticing a silent broker
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._lost(rc)

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        self._woken = False  # cleared before the queue is read, so no wake-up is missed

    def _update_status(self) -> None:
        self.status.update(mqtt_connected=self._connected, mqtt_queued=self.queued)

    def _say_goodbye(self) -> None:
        """A clean stop: "offline" now rather than the broker's last will later."""
        if not self._connected:
            return
        try:
            info = self._client.publish(f"{self.topic_base}/status", "offline", qos=1, retain=True)
            end = time.monotonic() + 0.5
            while not info.is_published() and self._connected and time.monotonic() < end:
                self._wait_io(0.05)
            self._client.disconnect()
            self._client.loop_write()
        except (OSError, ValueError, RuntimeError) as exc:
            log.debug("MQTT: goodbye failed: %s", exc)
        self._connected = False


def mqtt_outputs(settings: Settings, status: DeviceStatus, input_file: Path | None) -> list[Output]:
    """The builder for `notesight run`: the MQTT output when [mqtt].enabled."""
    if not settings.mqtt.enabled:
        return []
    if input_file is not None:
        from .audio import audio_file_rate

        sample_rate = audio_file_rate(input_file)
    else:
        sample_rate = settings.audio.sample_rate
    return [
        MqttOutput(
            settings.mqtt,
            status,
            mic=status.snapshot().mic_name,
            sample_rate=sample_rate,
            config_digest=config_hash(settings),
            drain_on_close=input_file is not None,
        )
    ]
