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

SD-card wear: every commit appends each page it changed (4 KiB) to the WAL, so the cost is
commits x pages, not bytes of events. Hence `write()` does the inserts of new events and the
deletes of acknowledged ones in ONE transaction (the caller calls it a few times a second at
most), the rows are keyed by `seq` itself (INTEGER PRIMARY KEY: one b-tree, no index, no
AUTOINCREMENT bookkeeping page), and the counter in `meta` is written only when the newest row
is deleted (otherwise the newest row holds it: on opening, the counter is the larger of the two).
With the broker up, a commit then usually changes a single page.
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
    seq INTEGER PRIMARY KEY,
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

# The first version keyed rows by an AUTOINCREMENT id next to seq (an extra page per commit).
_MIGRATE_V1 = """
ALTER TABLE outbox RENAME TO outbox_v1;
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    queued_at REAL NOT NULL
);
INSERT OR IGNORE INTO outbox (seq, topic, payload, queued_at)
    SELECT seq, topic, payload, queued_at FROM outbox_v1 ORDER BY id;
DROP TABLE outbox_v1;
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
            self._migrate()
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise OutputError(
                f"cannot use the MQTT outbox {path}: {exc}; check the folder's permissions and "
                "free space, or set [mqtt].state_dir"
            ) from exc
        self._count = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self._stored_seq = self._db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[
            0
        ]
        newest = self._db.execute("SELECT MAX(seq) FROM outbox").fetchone()[0] or 0
        self._seq = max(self._stored_seq, newest)

    def _migrate(self) -> None:
        columns = [row[1] for row in self._db.execute("PRAGMA table_info(outbox)")]
        if "id" not in columns:
            return
        db = self._db
        db.execute("BEGIN")
        try:
            for statement in _MIGRATE_V1.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("COMMIT")
        except sqlite3.Error:
            db.execute("ROLLBACK")
            raise

    # -- writing --------------------------------------------------------------------------------
    @property
    def seq(self) -> int:
        """The last sequence number handed out (persisted)."""
        return self._seq

    def __len__(self) -> int:
        return self._count

    def add(self, events: Sequence[PendingEvent]) -> list[int]:
        """Number and store `events` in one transaction; returns their `seq`s."""
        return self.write(events, ())

    def delete(self, seqs: Sequence[int]) -> None:
        """Forget rows the broker has acknowledged (seqs that are gone already are ignored)."""
        self.write((), seqs)

    def write(self, events: Sequence[PendingEvent], acked: Sequence[int]) -> list[int]:
        """Store and number `events` and delete the `acked` rows, in one transaction (one WAL
        append of the pages changed, usually one); returns the new events' `seq`s.

        Raises sqlite3.Error (for example disk full) with nothing changed and the counter
        unchanged; the caller decides what to do with the events and the acks.
        """
        if not events and not acked:
            return []
        seqs = list(range(self._seq + 1, self._seq + 1 + len(events)))
        rows = [
            (seq, topic, build(seq), queued_at)
            for seq, (topic, build, queued_at) in zip(seqs, events, strict=True)
        ]
        newest = seqs[-1] if seqs else self._seq
        db = self._db
        try:
            db.execute("BEGIN")
            deleted = 0
            if acked:
                cursor = db.executemany("DELETE FROM outbox WHERE seq = ?", [(i,) for i in acked])
                deleted = max(cursor.rowcount, 0)
            if rows:
                db.executemany(
                    "INSERT INTO outbox (seq, topic, payload, queued_at) VALUES (?, ?, ?, ?)", rows
                )
            over = self._count - deleted + len(rows) - self.max_rows
            dropped = self._delete_oldest(over) if over > 0 else 0
            stored_seq = self._keep_counter(newest)
            db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._seq = newest
        self._stored_seq = stored_seq
        self._count += len(rows) - deleted - dropped
        self._note_dropped(dropped, f"more than {self.max_rows} events queued")
        return seqs

    def _keep_counter(self, newest: int) -> int:
        """Inside a transaction: write the counter to `meta` only when no row holds it any more
        (the newest row was acknowledged or dropped); returns the value `meta` now holds."""
        if self._stored_seq >= newest:
            return self._stored_seq
        if self._db.execute("SELECT 1 FROM outbox WHERE seq = ?", (newest,)).fetchone():
            return self._stored_seq
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (newest,))
        return newest

    def _delete_oldest(self, how_many: int) -> int:
        cursor = self._db.execute(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
            (how_many,),
        )
        return max(cursor.rowcount, 0)

    def prune_old(self) -> int:
        """Drop rows older than max_age_s; returns how many."""
        cutoff = self._clock() - self.max_age_s
        db = self._db
        try:
            db.execute("BEGIN")
            cursor = db.execute("DELETE FROM outbox WHERE queued_at < ?", (cutoff,))
            stored_seq = self._keep_counter(self._seq)
            db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._stored_seq = stored_seq
        count = max(cursor.rowcount, 0)
        self._count -= count
        self._note_dropped(count, f"older than {self.max_age_s:g} s")
        return count

    def _note_dropped(self, count: int, why: str) -> None:
        if count <= 0:
            return
        self.dropped += count
        log.warning("MQTT outbox: dropped the %d oldest events (%s)", count, why)

    # -- reading --------------------------------------------------------------------------------
    def after(self, last_seq: int, limit: int) -> list[Row]:
        """Up to `limit` rows with seq > last_seq, oldest first."""
        cursor = self._db.execute(
            "SELECT seq, topic, payload, queued_at FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (last_seq, limit),
        )
        return [Row(*values) for values in cursor.fetchall()]

    def close(self) -> None:
        self._db.close()
