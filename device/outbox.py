"""The MQTT outbox: every event is written to SQLite before it is published and deleted only
when the broker has acknowledged it, so a broker outage, a Wi-Fi drop or a killed daemon loses
nothing that reached the database.

One `Outbox` belongs to one thread (the MQTT network thread): SQLite connections are not shared
between threads here, so there is no lock and no busy-waiting. The audio loop never touches it.

The database also keeps the event sequence counter, so `seq` keeps increasing across restarts:
the counter is updated in the same transaction as the rows it numbers.

Durability: WAL with synchronous=NORMAL. A committed row survives the process being killed
(SIGKILL, a crash); only a power cut can lose the last few commits, which is the usual SD-card
trade-off (synchronous=FULL would cost an fsync per batch on the Pi's SD card).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import OutputError, explain_os_error

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.sqlite3"
_SYSTEM_STATE_DIR = Path("/var/lib/notesight")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    queued_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('seq', 0);
"""


def _writable_dir(path: Path) -> bool:
    """True when `path` exists (or can be made) and we may create files in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def default_state_dir(configured: str = "", environ: dict[str, str] | None = None) -> Path:
    """The folder for the outbox: [mqtt].state_dir, else $STATE_DIRECTORY (systemd's
    StateDirectory=, possibly a colon-separated list: the first is ours), else
    /var/lib/notesight when writable, else $XDG_STATE_HOME/notesight or
    ~/.local/state/notesight."""
    env = os.environ if environ is None else environ
    if configured:
        return Path(configured).expanduser()
    systemd_dir = env.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd_dir:
        return Path(systemd_dir)
    if _writable_dir(_SYSTEM_STATE_DIR):
        return _SYSTEM_STATE_DIR
    xdg = env.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg else Path(env.get("HOME", str(Path.home()))) / ".local" / "state"
    return base / "notesight"


def is_disk_full(exc: sqlite3.Error) -> bool:
    """SQLite's SQLITE_FULL ("database or disk is full"), whatever the Python version says."""
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or (
        "database or disk is full" in str(exc)
    )


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    seq: int
    topic: str
    payload: bytes
    queued_at: float


# A pending event: (topic, build(seq) -> payload bytes, queued_at). The payload is built only
# when its `seq` is known, inside the transaction that allocates the number.
PendingEvent = tuple[str, Callable[[int], bytes], float]


class Outbox:
    """A bounded, ordered, durable queue of MQTT messages (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        max_rows: int = 100_000,
        max_age_s: float = 604_800.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self._clock = clock
        self.dropped = 0  # rows dropped since opening: too many, too old, disk full
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Opened here (errors reach the caller at startup), then used by one thread only.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except OSError as exc:
            raise OutputError(
                explain_os_error(exc, path.parent, "MQTT outbox folder")
                + " (or set [mqtt].state_dir)"
            ) from exc
        except sqlite3.Error as exc:
            raise OutputError(
                f"cannot open the MQTT outbox {path}: {exc}; check the folder's permissions "
                "or set [mqtt].state_dir"
            ) from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise OutputError(
                f"cannot use the MQTT outbox {path}: {exc}; check the folder's permissions and "
                "free space, or set [mqtt].state_dir"
            ) from exc
        self._count = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self._seq = self._db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0]

    # -- writing --------------------------------------------------------------------------------
    @property
    def seq(self) -> int:
        """The last sequence number handed out (persisted)."""
        return self._seq

    def __len__(self) -> int:
        return self._count

    def add(self, events: Sequence[PendingEvent]) -> list[int]:
        """Number and store `events` in one transaction; returns their `seq`s.

        Raises sqlite3.Error (for example disk full) with nothing stored and the counter
        unchanged; the caller decides what to do with the events.
        """
        if not events:
            return []
        seqs = list(range(self._seq + 1, self._seq + 1 + len(events)))
        rows = [
            (seq, topic, build(seq), queued_at)
            for seq, (topic, build, queued_at) in zip(seqs, events, strict=True)
        ]
        db = self._db
        try:
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO outbox (seq, topic, payload, queued_at) VALUES (?, ?, ?, ?)", rows
            )
            db.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (seqs[-1],))
            db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._seq = seqs[-1]
        self._count += len(rows)
        if self._count > self.max_rows:
            self._drop_oldest(self._count - self.max_rows)
        return seqs

    def _drop_oldest(self, how_many: int) -> None:
        cursor = self._db.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
            (how_many,),
        )
        self._note_dropped(cursor.rowcount, f"more than {self.max_rows} events queued")

    def prune_old(self) -> int:
        """Drop rows older than max_age_s; returns how many."""
        cutoff = self._clock() - self.max_age_s
        cursor = self._db.execute("DELETE FROM outbox WHERE queued_at < ?", (cutoff,))
        self._note_dropped(cursor.rowcount, f"older than {self.max_age_s:g} s")
        return max(cursor.rowcount, 0)

    def _note_dropped(self, count: int, why: str) -> None:
        if count <= 0:
            return
        self._count -= count
        self.dropped += count
        log.warning("MQTT outbox: dropped the %d oldest events (%s)", count, why)

    def delete(self, ids: Sequence[int]) -> None:
        """Forget rows the broker has acknowledged (ids that are gone already are ignored)."""
        if not ids:
            return
        db = self._db
        try:
            db.execute("BEGIN")  # one transaction: a commit per row would cost a WAL write each
            cursor = db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
            db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._count -= max(cursor.rowcount, 0)

    # -- reading --------------------------------------------------------------------------------
    def after(self, last_id: int, limit: int) -> list[Row]:
        """Up to `limit` rows with id > last_id, oldest first."""
        cursor = self._db.execute(
            "SELECT id, seq, topic, payload, queued_at FROM outbox WHERE id > ? "
            "ORDER BY id LIMIT ?",
            (last_id, limit),
        )
        return [Row(*values) for values in cursor.fetchall()]

    def close(self) -> None:
        self._db.close()
