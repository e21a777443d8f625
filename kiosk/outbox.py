"""The terminal's durable outbox: confirmed filings and ratings wait here until the backend has them.

A filing is written here, committed and fsynced, **before** the resident is told anything (已受理 / 待上传).
SQLite in WAL mode with synchronous=FULL; the person, the answers, the attachment bytes and the backend's
receipt lines are encrypted with AES-GCM (a random 96-bit nonce per value; the associated data names the row
and the column, so a value moved to another row or column does not decrypt). The key is a file of 32 random
bytes, mode 0600, made once and never replaced: a key file that is readable by others or of the wrong size
stops the start (OutboxKeyError), because a new key would make every queued filing unreadable.

Each item has its idempotency key and local number from the moment it is written, so a retry, a restart or a
crash never files it twice. A sent item keeps only a non-personal row (local number, filing id, service,
status) for 30 days; its personal ciphertext is wiped at once.

SyncWorker sends off the UI thread: oldest first, attachments before their filing, exponential backoff with
jitter, Retry-After honoured. sync_once drains once (the technician's `kiosk outbox sync`). An item that fails on
its own (a timeout, a 5xx) is rescheduled with backoff and the next one goes; only a backend that cannot be
reached (or several items failing in a row) stops a pass. Both may run at once (two processes): every state
change is guarded by the state it expects, so the second sender never undoes the first.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import hmac
import json
import logging
import os
import random
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from api.enums import ErrorCode
from api.models import Filing, FilingRequest, RatingRequest, RatingStored, encode, parse
from api.patterns import IDEMPOTENCY_KEY_PATTERN, SHA256_PATTERN
from kiosk.backend_client import ATTACHMENT_TYPES, MAX_ATTACHMENT, BackendClient, BackendFailure, FailureKind

log = logging.getLogger("kiosk.outbox")

KEY_BYTES = 32
NONCE_BYTES = 12
KEEP_SENT = 30 * 86400  # the non-personal row of a sent item, for 我的办件
KEEP_RESULT = 86400  # the backend's receipt lines (encrypted), for a reprint after a restart
BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0
RETRY_AFTER_MAX = 3600.0  # a server asking for longer is asked again after an hour
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

PENDING, SENT, FAILED = "pending", "sent", "failed_permanently"
DB_NAME, KEY_NAME = "outbox.sqlite3", "outbox.key"  # in [terminal] data_dir
FILING, RATING = "filing", "rating"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('filing', 'rating')),
    key TEXT NOT NULL UNIQUE,
    local_number TEXT NOT NULL UNIQUE,
    service TEXT NOT NULL,
    created_at TEXT NOT NULL,
    person_tag TEXT,
    online_only INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed_permanently')),
    payload BLOB,
    result BLOB,
    refused_fields TEXT,
    filing_id TEXT,
    status TEXT,
    queued_at REAL NOT NULL,
    sent_at REAL
);
CREATE INDEX IF NOT EXISTS items_by_state ON items (state, seq);
CREATE TABLE IF NOT EXISTS attachments (
    item_key TEXT NOT NULL REFERENCES items(key) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    ciphertext BLOB,
    uploaded INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (item_key, digest)
);
"""


class OutboxError(Exception):
    """Anything the outbox cannot do; the message is for the log and the technician (no personal data)."""


class OutboxKeyError(OutboxError):
    """The key file is missing its safety (mode), has the wrong size or cannot be read: start-up stops."""


class OutboxFull(OutboxError):
    """The disk (or the database) is full: the filing was NOT saved; the screen must say so."""


class OutboxCorrupt(OutboxError):
    """A stored value does not decrypt (wrong key file, or damaged). The item is kept as it is."""


# --- the key -------------------------------------------------------------------------------------------------


def load_key(path: str | os.PathLike[str]) -> bytes:
    """The outbox key: 32 random bytes in `path`, mode 0600. Made when the file is missing (O_EXCL, so two
    processes never make two keys); refused when readable by group or others, or not 32 bytes."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return _new_key(p)
    except OSError as e:
        raise OutboxKeyError(f"outbox key {p} cannot be read ({e.strerror}); restore it from backup") from None
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o077:
            raise OutboxKeyError(
                f"outbox key {p} is readable by group or others (mode {st.st_mode & 0o777:o}); chmod 600 it"
            )
        if st.st_uid != os.geteuid():
            raise OutboxKeyError(
                f"outbox key {p} belongs to uid {st.st_uid}, not to this user: run as the kiosk user (sudo -u kiosk ...)"
            )
        raw = os.read(fd, KEY_BYTES + 1)
    except OSError as e:
        raise OutboxKeyError(f"outbox key {p} cannot be read ({e.strerror}); restore it from backup") from None
    finally:
        os.close(fd)
    if len(raw) != KEY_BYTES:
        raise OutboxKeyError(f"outbox key {p} is {len(raw)} bytes, not {KEY_BYTES}; restore it from backup")
    return raw


def _new_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = secrets.token_bytes(KEY_BYTES)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # left by a crash between create and link: it never held a key in use
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic, and never over an existing key (another process may have made one)
    except FileExistsError:
        tmp.unlink()
        return load_key(path)
    tmp.unlink()
    _fsync_dir(path.parent)
    log.info("outbox key created")
    return data


def _has_key_check(db_path: Path) -> bool:
    """The outbox file exists and names the key it was sealed with."""
    if not db_path.exists():
        return False
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute("SELECT 1 FROM meta WHERE key = 'key_check'").fetchone() is not None
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return False  # no meta table yet (or not an outbox): opening it will say what is wrong


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- values ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxItem:
    kind: str
    key: str
    local_number: str
    service: str
    created_at: str
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    online_only: bool
    filing_id: str | None
    status: str | None

    @property
    def queued(self) -> bool:
        return self.state == PENDING


@dataclass(frozen=True)
class PendingView:
    """What a technician or 我的办件 may see of a waiting item: nothing personal."""

    local_number: str
    kind: str
    service: str
    created: str
    attempts: int
    last_error: str | None
    state: str

    def as_dict(self) -> dict[str, Any]:
        return {"local_number": self.local_number, "kind": self.kind, "service": self.service,
                "created": self.created, "attempts": self.attempts, "last_error": self.last_error,
                "state": self.state}


def new_local_number(day: dt.date) -> str:
    """L + YYYYMMDD + "-" + 6 random base32 characters (the number a queued filing's receipt shows)."""
    return f"L{day:%Y%m%d}-" + "".join(secrets.choice(_BASE32) for _ in range(6))


def backoff(attempts: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP,
            rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after `attempts` failed tries (1, 2, ...): exponential, capped, with "equal jitter"
    (half fixed, half random) so that many terminals coming back after an outage do not call in step."""
    step = min(cap, base * (2 ** max(0, min(attempts - 1, 32))))
    return step / 2 + rand() * step / 2


def _is_full(e: BaseException) -> bool:
    if isinstance(e, sqlite3.OperationalError):
        code = getattr(e, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "full" in str(e).lower()
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


# --- the outbox --------------------------------------------------------------------------------------------


class Outbox:
    def __init__(self, path: str | os.PathLike[str], key_path: str | os.PathLike[str],
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        if not Path(key_path).exists() and _has_key_check(self.path):
            # a new key would make every queued filing unreadable: never make one for an outbox that had one
            raise OutboxKeyError(f"outbox key {key_path} is missing but the outbox {self.path} was sealed with a "
                                 "key; restore the key from backup")
        self._key = load_key(key_path)
        self._aead = AESGCM(self._key)
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fresh = not self.path.exists()
        if fresh:
            # Made 0600 before SQLite opens it: SQLite gives the -wal and -shm files the database file's mode,
            # and they hold the same ciphertext (and the plain row metadata) as the file itself.
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                fresh = False  # another process made it first
            except OSError as e:
                if _is_full(e):
                    raise OutboxFull(f"outbox {self.path}: disk full ({e})") from None
                raise OutboxError(f"outbox {self.path} cannot be made ({e.strerror})") from None
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA secure_delete=ON")  # wiped ciphertext is overwritten, not left in free pages
            self._db.executescript(_SCHEMA)
            self._migrate()
            self._check_key_matches()
        except sqlite3.DatabaseError as e:
            if _is_full(e):
                raise OutboxFull(f"outbox {self.path}: disk full ({e})") from None
            raise OutboxError(f"outbox {self.path} cannot be opened ({e})") from None
        # An outbox made by an older version (or a -wal left by one) may be 0644: never readable by others.
        for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            try:
                if p.stat().st_mode & 0o077:
                    os.chmod(p, 0o600)
            except FileNotFoundError:
                pass
        if fresh:
            _fsync_dir(self.path.parent)
        self.purge()

    def _migrate(self) -> None:
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(items)")}
        if "refused_fields" not in cols:  # an outbox of an older version
            self._db.execute("ALTER TABLE items ADD COLUMN refused_fields TEXT")

    def _check_key_matches(self) -> None:
        check = hmac.new(self._key, b"outbox-key-check", hashlib.sha256).hexdigest()
        self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('key_check', ?)", (check,))
        stored = self._db.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()[0]
        if not hmac.compare_digest(stored, check):
            self._db.close()
            raise OutboxKeyError(f"outbox key does not match the outbox {self.path} (another terminal's key, or "
                                 "replaced); restore the right key from backup")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- crypto ----------------------------------------------------------------------------------------

    def _seal(self, where: str, data: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, where.encode())

    def _open(self, where: str, blob: bytes | None) -> bytes:
        if blob is None or len(blob) < NONCE_BYTES + 16:
            raise OutboxCorrupt(f"{where}: no stored value")
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], where.encode())
        except InvalidTag:
            raise OutboxCorrupt(f"{where}: does not decrypt (wrong key file or damaged); item kept") from None

    def _person_tag(self, ssn: str) -> str:
        # A keyed hash: finds a person's waiting filings without decrypting every row, and says nothing
        # about the person to whoever copies the file without the key.
        return hmac.new(self._key, b"person:" + ssn.upper().encode(), hashlib.sha256).hexdigest()

    # --- writing -----------------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction, committed (and with synchronous=FULL, fsynced) when the block ends."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._rollback()
                    raise
                self._db.execute("COMMIT")
            except (sqlite3.OperationalError, OSError) as e:
                self._rollback()
                if _is_full(e):
                    raise OutboxFull("磁盘已满，办件未能保存 (disk full: the filing was not saved)") from e
                raise

    def _rollback(self) -> None:
        # SQLite rolls back by itself on some errors (SQLITE_FULL): only what is still open
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def put_filing(
        self, *, service: str, person: dict[str, str], answers: dict[str, Any],
        attachments: dict[str, tuple[bytes, str]] | None = None, online_only: bool = False,
        created_at: dt.datetime, key: str | None = None, local_number: str | None = None,
    ) -> OutboxItem:
        """Queue a confirmed filing; durable (committed and fsynced) when this returns. The same key again
        returns the item already queued. ValueError when the filing cannot be valid (checked before writing,
        so nothing unsendable is queued); OutboxFull when the disk is full (nothing was saved)."""
        key = key or secrets.token_urlsafe(18)
        _check_key(key)
        attachments = dict(attachments or {})
        for digest, (data, media_type) in attachments.items():
            # what the client would refuse to send (and the backend to keep) must never be queued
            if len(data) > MAX_ATTACHMENT:
                raise ValueError(f"attachment of {len(data)} bytes: at most {MAX_ATTACHMENT}")
            if re.fullmatch(SHA256_PATTERN, digest) is None or hashlib.sha256(data).hexdigest() != digest:
                raise ValueError("attachment digest does not match its bytes")
            if media_type not in ATTACHMENT_TYPES:
                raise ValueError(f"attachment type {media_type!r} refused")
        existing = self._by_key(key)
        if existing is not None:
            return existing
        number = local_number or new_local_number(created_at.date())
        try:
            body = FilingRequest.model_validate({
                "service": service, "local_number": number, "person": dict(person), "answers": answers,
                "created_at": created_at,
            })
        except pydantic.ValidationError as e:
            where = ", ".join(".".join(str(p) for p in err["loc"]) for err in e.errors())
            raise ValueError(f"filing refused before queueing: {where}") from None
        payload = json.loads(encode(body))
        tag = self._person_tag(body.person.ssn)
        for _ in range(20):
            try:
                with self._write() as db:
                    self._insert(db, FILING, key, number, service, body.created_at, payload, tag, online_only)
                    for digest, (data, media_type) in attachments.items():
                        db.execute(
                            "INSERT INTO attachments (item_key, digest, media_type, ciphertext) VALUES (?,?,?,?)",
                            (key, digest, media_type, self._seal(f"attachments:{key}:{digest}:ciphertext", data)),
                        )
                break
            except sqlite3.IntegrityError as e:
                if "local_number" in str(e) and local_number is None:
                    number = new_local_number(created_at.date())  # 32^6 per day: a clash is rare; draw again
                    payload["local_number"] = number
                    continue
                existing = self._by_key(key)  # another process queued the same key first
                if existing is not None:
                    return existing
                raise ValueError(f"filing refused: {e}") from None
        else:
            raise OutboxError("no free local number")
        item = self._by_key(key)
        assert item is not None
        return item

    def put_rating(
        self, *, service: str, satisfaction: str, reasons: tuple[str, ...] | list[str] = (),
        filing_ref: str | None = None, created_at: dt.datetime, key: str | None = None,
    ) -> OutboxItem:
        """Queue a rating (same durability and idempotency as a filing)."""
        key = key or secrets.token_urlsafe(18)
        _check_key(key)
        existing = self._by_key(key)
        if existing is not None:
            return existing
        try:
            body = RatingRequest.model_validate({
                "service": service, "satisfaction": satisfaction, "reasons": list(reasons),
                "filing_ref": filing_ref, "created_at": created_at,
            })
        except pydantic.ValidationError as e:
            where = ", ".join(".".join(str(p) for p in err["loc"]) for err in e.errors())
            raise ValueError(f"rating refused before queueing: {where}") from None
        payload = json.loads(encode(body))
        for _ in range(20):
            number = new_local_number(created_at.date())
            try:
                with self._write() as db:
                    self._insert(db, RATING, key, number, service, body.created_at, payload, None, False)
                break
            except sqlite3.IntegrityError as e:
                if "local_number" in str(e):
                    continue
                existing = self._by_key(key)
                if existing is not None:
                    return existing
                raise ValueError(f"rating refused: {e}") from None
        item = self._by_key(key)
        assert item is not None
        return item

    def _insert(self, db: sqlite3.Connection, kind: str, key: str, number: str, service: str,
                created_at: dt.datetime, payload: dict, tag: str | None, online_only: bool) -> None:
        sealed = self._seal(f"items:{key}:payload", json.dumps(payload, ensure_ascii=False).encode())
        db.execute(
            "INSERT INTO items (kind, key, local_number, service, created_at, person_tag, online_only, payload,"
            " queued_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (kind, key, number, service, created_at.isoformat(), tag, int(online_only), sealed, self.clock()),
        )

    # --- reading -----------------------------------------------------------------------------------------

    _COLS = ("kind, key, local_number, service, created_at, state, attempts, next_attempt_at, last_error, "
             "online_only, filing_id, status")

    def _row(self, r: tuple) -> OutboxItem:
        return OutboxItem(*r[:9], bool(r[9]), r[10], r[11])  # type: ignore[arg-type]

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _by_key(self, key: str) -> OutboxItem | None:
        rows = self._query(f"SELECT {self._COLS} FROM items WHERE key = ?", (key,))
        return self._row(rows[0]) if rows else None

    def get(self, local_number: str) -> OutboxItem | None:
        rows = self._query(f"SELECT {self._COLS} FROM items WHERE local_number = ?", (local_number,))
        return self._row(rows[0]) if rows else None

    def pending(self) -> list[PendingView]:
        """Items not sent (waiting, or failed for good), oldest first, masked."""
        rows = self._query(
            "SELECT local_number, kind, service, created_at, attempts, last_error, state FROM items"
            " WHERE state != 'sent' ORDER BY seq"
        )
        return [PendingView(*r) for r in rows]

    def pending_for(self, ssn: str) -> list[PendingView]:
        """The person's filings still waiting here (我的办件 adds them as 待上传)."""
        rows = self._query(
            "SELECT local_number, kind, service, created_at, attempts, last_error, state FROM items"
            " WHERE state != 'sent' AND kind = 'filing' AND person_tag = ? ORDER BY seq DESC",
            (self._person_tag(ssn),),
        )
        return [PendingView(*r) for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self._query("SELECT state, COUNT(*) FROM items GROUP BY state")
        return {PENDING: 0, SENT: 0, FAILED: 0, **dict(rows)}

    def due(self, now: float | None = None, limit: int = 100, ignore_schedule: bool = False) -> list[OutboxItem]:
        """Pending items whose time has come, oldest first."""
        when = float("inf") if ignore_schedule else (self.clock() if now is None else now)
        rows = self._query(
            f"SELECT {self._COLS} FROM items WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY seq LIMIT ?",
            (when, limit),
        )
        return [self._row(r) for r in rows]

    def next_due_at(self) -> float | None:
        rows = self._query("SELECT MIN(next_attempt_at) FROM items WHERE state = 'pending'")
        return rows[0][0] if rows and rows[0][0] is not None else None

    def request_of(self, item: OutboxItem) -> FilingRequest | RatingRequest:
        """The stored request body, decrypted. OutboxCorrupt when it does not decrypt or parse."""
        rows = self._query("SELECT payload FROM items WHERE key = ?", (item.key,))
        raw = self._open(f"items:{item.key}:payload", rows[0][0] if rows else None)
        model: type[FilingRequest] | type[RatingRequest] = FilingRequest if item.kind == FILING else RatingRequest
        try:
            return model.model_validate_json(raw)
        except pydantic.ValidationError:
            raise OutboxCorrupt(f"items:{item.key}:payload: not a {model.__name__}; item kept") from None

    def attachments_to_upload(self, item: OutboxItem) -> list[tuple[str, str]]:
        """(digest, media_type) of the item's attachments not uploaded yet."""
        return [(d, m) for d, m in self._query(
            "SELECT digest, media_type FROM attachments WHERE item_key = ? AND uploaded = 0 ORDER BY digest",
            (item.key,))]

    def attachment(self, item: OutboxItem, digest: str) -> bytes:
        rows = self._query("SELECT ciphertext FROM attachments WHERE item_key = ? AND digest = ?", (item.key, digest))
        data = self._open(f"attachments:{item.key}:{digest}:ciphertext", rows[0][0] if rows else None)
        if hashlib.sha256(data).hexdigest() != digest:
            raise OutboxCorrupt(f"attachments:{item.key}:{digest}: bytes do not match the digest; item kept")
        return data

    def result(self, local_number: str) -> Filing | RatingStored | None:
        """The backend's answer for a sent item (kept a day, encrypted), or None."""
        rows = self._query("SELECT key, kind, result FROM items WHERE local_number = ?", (local_number,))
        if not rows or rows[0][2] is None:
            return None
        key, kind, blob = rows[0]
        raw = self._open(f"items:{key}:result", blob)
        return parse(Filing if kind == FILING else RatingStored, raw)

    # --- state changes -----------------------------------------------------------------------------------

    def mark_uploaded(self, item: OutboxItem, digest: str, uploaded: bool = True) -> None:
        with self._write() as db:
            db.execute("UPDATE attachments SET uploaded = ? WHERE item_key = ? AND digest = ?",
                       (int(uploaded), item.key, digest))

    def mark_all_not_uploaded(self, item: OutboxItem) -> None:
        with self._write() as db:
            db.execute("UPDATE attachments SET uploaded = 0 WHERE item_key = ?", (item.key,))

    # Every state change below is guarded by the state it expects: the kiosk's worker and `kiosk outbox sync`
    # (two processes, two handles) may send the same item at once, and the second answer must not undo the first.

    def mark_sent(self, item: OutboxItem, answer: Filing | RatingStored) -> None:
        """The backend has it: keep the non-personal row, the answer (encrypted, a day), wipe the rest now.
        Idempotent: an item already sent keeps its first answer."""
        raw = answer.model_dump_json().encode()
        filing_id = answer.filing_id if isinstance(answer, Filing) else answer.rating_id
        status = answer.status.value if isinstance(answer, Filing) else None
        with self._write() as db:
            db.execute(
                "UPDATE items SET state = 'sent', payload = NULL, person_tag = NULL, last_error = NULL,"
                " result = ?, filing_id = ?, status = ?, sent_at = ?, refused_fields = NULL"
                " WHERE key = ? AND state != 'sent'",
                (self._seal(f"items:{item.key}:result", raw), filing_id, status, self.clock(), item.key),
            )
            db.execute("DELETE FROM attachments WHERE item_key = ?", (item.key,))

    def mark_retry(self, item: OutboxItem, error: str, wait: float) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE items SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
                " WHERE key = ? AND state = 'pending'",
                (error[:200], self.clock() + max(0.0, wait), item.key),
            )

    def mark_attempt(self, item: OutboxItem, error: str) -> None:
        """A try that did not reach the backend (offline): counted, not rescheduled (the worker waits)."""
        with self._write() as db:
            db.execute("UPDATE items SET attempts = attempts + 1, last_error = ? WHERE key = ? AND state = 'pending'",
                       (error[:200], item.key))

    def mark_failed(self, item: OutboxItem, error: str, fields: tuple[str, ...] | list[str] = ()) -> None:
        """The backend refused it for good (or it cannot be read): never retried; kept for the technician.
        `fields`: the answers the backend named (refused_fields gives them back)."""
        names = json.dumps([str(f)[:64] for f in list(fields)[:50]]) if fields else None
        with self._write() as db:
            db.execute("UPDATE items SET state = 'failed_permanently', attempts = attempts + 1, last_error = ?,"
                       " refused_fields = ? WHERE key = ? AND state = 'pending'", (error[:200], names, item.key))

    def refused_fields(self, local_number: str) -> tuple[str, ...]:
        """The answers the backend named when it refused this filing for good (422 invalid_request), in its
        order; () when it named none, or the item is not refused (or unknown). Form field names only."""
        rows = self._query("SELECT refused_fields FROM items WHERE local_number = ? AND state = 'failed_permanently'",
                           (local_number,))
        if not rows or not rows[0][0]:
            return ()
        try:
            names = json.loads(rows[0][0])
        except ValueError:
            return ()
        return tuple(n for n in names if isinstance(n, str)) if isinstance(names, list) else ()

    def purge(self) -> int:
        """Forget sent rows after 30 days and their receipt lines after a day."""
        now = self.clock()
        try:
            with self._write() as db:
                db.execute("UPDATE items SET result = NULL WHERE state = 'sent' AND result IS NOT NULL"
                           " AND sent_at < ?", (now - KEEP_RESULT,))
                n = db.execute("DELETE FROM items WHERE state = 'sent' AND sent_at < ?", (now - KEEP_SENT,)).rowcount
        except OutboxFull:
            log.warning("outbox: disk full, old sent rows not purged")
            return 0
        return n


def open_in(data_dir: str | os.PathLike[str]) -> Outbox:
    """The terminal's outbox in its data folder ([terminal] data_dir)."""
    d = Path(data_dir)
    return Outbox(d / DB_NAME, d / KEY_NAME)


def _check_key(key: str) -> None:
    if re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key) is None:
        raise ValueError("idempotency key must be 8-128 characters of A-Z a-z 0-9 . _ : -")


# --- sending -----------------------------------------------------------------------------------------------

# What the outbox makes of a failure (_failed):
# - "away": the backend (or the way to it) is down, or it refuses this terminal: nothing about the item. The item
#   is counted, not rescheduled; the worker stops its pass and probes again later with the oldest item.
#   Connection-level failures (refused, unreachable, connect timeout, TLS), 429, 503 (the backend says it is
#   unavailable), and the terminal's own certificate codes (re-enrolment fixes them).
# - permanent: the backend refused THIS item for good, and only for the codes below: never retried.
# - anything else (a read timeout, 500/502/504, 404/405/413 from a proxy, an unknown code, a 2xx we cannot
#   read): this item is rescheduled with backoff, and the next item goes. Several different items failing in a
#   row (AWAY_AFTER) is the backend's fault after all: the pass stops as for "away".
_AWAY_KINDS = frozenset({FailureKind.OFFLINE, FailureKind.RATE_LIMITED})
_AWAY_STATUSES = frozenset({503})
_TERMINAL_CODES = frozenset({ErrorCode.CERTIFICATE_REQUIRED.value, ErrorCode.CERTIFICATE_REVOKED.value,
                             ErrorCode.WRONG_TERMINAL.value, ErrorCode.RATE_LIMITED.value})
# Item-level refusals that no retry can change. invalid_request only when it names answers (a 422 about
# created_at, or without fields, may be the backend's or a proxy's passing mood: retried).
_PERMANENT_CODES = frozenset({ErrorCode.LEVEL_TOO_LOW.value, ErrorCode.UNKNOWN_SERVICE.value, ErrorCode.NO_CARD.value,
                              ErrorCode.IDEMPOTENCY_CONFLICT.value, ErrorCode.ATTACHMENT_INVALID.value,
                              ErrorCode.PERSON_MISMATCH.value})
AWAY_AFTER = 3  # different items failing in a row, with no success between: the backend is away


@dataclass(frozen=True)
class Outcome:
    sent: Filing | RatingStored | None = None
    away: bool = False  # the backend could not be reached (or refuses this terminal): stop this pass
    permanent: str | None = None  # error code: failed for good
    error: str | None = None
    wait: float | None = None  # the server's Retry-After
    fields: tuple[str, ...] = ()  # the answers a refusal names
    gone: bool = False  # no longer pending here (another process sent or refused it meanwhile): nothing to do

    @property
    def retry(self) -> bool:
        """This item failed, the backend answered: rescheduled with backoff."""
        return self.sent is None and not self.away and self.permanent is None and not self.gone


def _describe(f: BackendFailure) -> str:
    return f"{f.kind.value}:{f.code or '-'}" + (f":{f.status}" if f.status else "")


def _is_away(f: BackendFailure) -> bool:
    return f.kind in _AWAY_KINDS or f.status in _AWAY_STATUSES or f.code in _TERMINAL_CODES


def _is_permanent(f: BackendFailure) -> bool:
    if f.code == ErrorCode.INVALID_REQUEST.value:
        return f.status == 422 and bool(f.fields)
    return f.code in _PERMANENT_CODES


def send_item(outbox: Outbox, client: BackendClient, item: OutboxItem) -> Outcome:
    """One try at one item: attachments first, then the filing (or the rating). Never raises for a backend
    answer; OutboxCorrupt (a value that does not decrypt) becomes a permanent failure, the item kept, unless
    the item is no longer pending (another process sent it and wiped it meanwhile): then nothing is done."""
    now = outbox.get(item.local_number)
    if now is None or now.state != PENDING:
        return Outcome(gone=True)
    try:
        body = outbox.request_of(item)
        if item.kind == RATING:
            assert isinstance(body, RatingRequest)
            got: Any = client.submit_rating(body, item.key)
        else:
            assert isinstance(body, FilingRequest)
            for round_ in range(2):
                for digest, media_type in outbox.attachments_to_upload(item):
                    up = client.put_attachment(digest, outbox.attachment(item, digest), media_type)
                    if isinstance(up, BackendFailure):
                        return _failed(up)
                    outbox.mark_uploaded(item, digest)
                got = client.submit_filing(body, item.key)
                missing = (isinstance(got, BackendFailure) and got.status == 409
                           and got.code == ErrorCode.ATTACHMENT_MISSING.value)
                if not missing:
                    break
                # The backend lost (or never kept) one: upload them all again (a PUT of known bytes is cheap).
                outbox.mark_all_not_uploaded(item)
                if round_ == 1:
                    return Outcome(error=_describe(got))  # still missing: later, with backoff
    except OutboxCorrupt as e:
        now = outbox.get(item.local_number)
        if now is None or now.state != PENDING:
            return Outcome(gone=True)  # sent (its ciphertext wiped) or refused by the other sender
        log.error("outbox item %s: %s", item.local_number, e)
        return Outcome(permanent="undecryptable", error=str(e))
    if isinstance(got, BackendFailure):
        if item.kind == RATING and got.status == 422 and got.code == ErrorCode.INVALID_REQUEST.value:
            # A rating the backend will not take (e.g. older than it keeps): nobody was promised it; never again.
            return Outcome(permanent=got.code, error=_describe(got))
        return _failed(got)
    return Outcome(sent=got)


def _failed(f: BackendFailure) -> Outcome:
    if _is_away(f):
        return Outcome(away=True, error=_describe(f), wait=f.retry_after)
    if _is_permanent(f):
        return Outcome(permanent=f.code or f"http_{f.status}", error=_describe(f), fields=f.fields)
    # The item, or the backend only for this item: this one later, with backoff; the next one now.
    # (BAD_RESPONSE: a 2xx we could not read may have filed it; the same key again is safe.)
    return Outcome(error=_describe(f), wait=f.retry_after, fields=f.fields)


def _apply(outbox: Outbox, item: OutboxItem, out: Outcome) -> None:
    if out.gone:
        return
    if out.sent is not None:
        outbox.mark_sent(item, out.sent)
    elif out.permanent is not None:
        log.warning("outbox item %s failed for good: %s", item.local_number, out.error)
        outbox.mark_failed(item, out.error or out.permanent, out.fields)
    elif out.away:  # the backend, not the item: counted; the worker (or the technician) decides when again
        outbox.mark_attempt(item, out.error or "away")
    else:
        wait = backoff(item.attempts + 1)
        if out.wait is not None:
            wait = max(wait, min(out.wait, RETRY_AFTER_MAX))
        outbox.mark_retry(item, out.error or "retry", wait)


@dataclass
class SyncReport:
    sent: int = 0
    remaining: int = 0
    unreachable: bool = False
    failed: int = 0  # items failed for good (now, or earlier and still here)
    errors: list[str] = field(default_factory=list)


def sync_once(outbox: Outbox, client: BackendClient) -> SyncReport:
    """Drain now, oldest first, whatever the schedule says. An item that fails (timeout, 5xx, ...) is
    rescheduled and skipped, and the drain goes on; it stops (unreachable) when the backend cannot be reached,
    or when AWAY_AFTER different items fail in a row. Items the backend refuses for good are marked and counted."""
    report = SyncReport()
    skip: set[str] = set()
    failing = 0
    while not report.unreachable:
        batch = [i for i in outbox.due(ignore_schedule=True, limit=100 + len(skip)) if i.key not in skip]
        if not batch:
            break
        for item in batch:
            out = send_item(outbox, client, item)
            _apply(outbox, item, out)
            skip.add(item.key)  # not again in this drain (sent, refused, rescheduled, or gone)
            if out.gone:
                continue
            if out.sent is not None:
                report.sent += 1
                failing = 0
                continue
            report.errors.append(f"{item.local_number}: {out.error}")
            if out.permanent is not None:
                failing = 0  # the backend answered about this item: it is there
                continue
            if not out.away:
                failing += 1
            if out.away or failing >= AWAY_AFTER:
                report.unreachable = True
                break
    counts = outbox.counts()
    report.remaining = counts[PENDING] + counts[FAILED]
    report.failed = counts[FAILED]
    return report


class SyncWorker:
    """Sends the outbox in a background thread. kick() when something was queued (or the network came back);
    wait_for(local_number) blocks until that item is sent (for 已受理 with the backend's own number)."""

    def __init__(self, outbox: Outbox, client_factory: Callable[[], BackendClient],
                 on_result: Callable[[OutboxItem, Filing | RatingStored | None, str | None], None] | None = None,
                 *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP, parallel: int = 4) -> None:
        self.outbox = outbox
        self.client_factory = client_factory
        self.on_result = on_result
        self.base, self.cap = base, cap
        self.parallel = max(1, parallel)
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()  # one client (one connection pool) per sending thread
        self._clients: list[BackendClient] = []
        self._cond = threading.Condition()
        self._kicked = False
        self._stopping = False
        self._away = 0  # consecutive passes that found the backend away
        self._done: dict[str, Filing | RatingStored | None] = {}  # local number -> answer (None: failed for good)
        self._thread: threading.Thread | None = None

    def start(self) -> SyncWorker:
        self._thread = threading.Thread(target=self._run, name="outbox-sync", daemon=True)
        self._thread.start()
        return self

    @property
    def away(self) -> bool:
        """A pass since the last kick found the backend away: a screen waiting for an answer can stop waiting."""
        return self._away > 0

    def kick(self) -> None:
        with self._cond:
            self._kicked = True
            self._away = 0  # a new filing deserves a try now
            self._cond.notify_all()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for client in self._clients:
            client.close()

    def wait_for(self, local_number: str, timeout: float) -> Filing | RatingStored | None:
        """The backend's answer once the item is sent; None when the time runs out or it failed for good."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                if local_number in self._done:
                    return self._done[local_number]
                item = self.outbox.get(local_number)
                if item is None or item.state == FAILED:
                    return None
                if item.state == SENT:
                    return self.outbox.result(local_number)
                left = end - time.monotonic()
                if left <= 0 or self._stopping:
                    return None
                self._cond.wait(left)

    # --- the thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                self._kicked = False
            try:
                wait = self._pass()
            except OutboxError as e:  # e.g. disk full while marking: try again later, nothing is lost
                log.error("outbox sync: %s", e)
                wait = self.cap
            except Exception:
                log.exception("outbox sync pass failed")
                wait = self.cap
            with self._cond:
                if self._stopping:
                    return
                if not self._kicked:
                    self._cond.wait(wait)

    def _pass(self) -> float:
        """Send what is due; the seconds to wait before the next pass. Each pass probes with the oldest item
        alone (while the backend is away that is the only call), then sends in groups of `parallel`, each
        group oldest first, so a long queue drains at the backend's pace, not one round trip at a time.
        An item that fails on its own (timeout, 5xx) is rescheduled with backoff and the pass goes on with the
        next: one slow upload or one filing the backend chokes on never holds up the others."""
        probe = True
        failing: dict[str, Outcome] = {}  # items that failed in this pass since the last success
        while True:
            batch = self.outbox.due(limit=100)
            if not batch:
                nxt = self.outbox.next_due_at()
                return self.cap if nxt is None else min(self.cap, max(0.0, nxt - self.outbox.clock()))
            while batch:
                size = 1 if probe else self.parallel
                group, batch = batch[:size], batch[size:]
                probe = False
                with self._cond:
                    if self._stopping:
                        return 0.0
                if len(group) == 1:
                    outs = [self._send(group[0])]
                else:
                    if self._pool is None:
                        self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="outbox-send")
                    outs = list(self._pool.map(self._send, group))
                away = [o for o in outs if o.away]
                for item, out in zip(group, outs, strict=True):
                    if out.sent is not None or out.permanent is not None:
                        self._finished(item, out)
                    if out.sent is not None or out.permanent is not None:
                        failing.clear()  # the backend answers: the failures were the items'
                    elif out.retry:
                        failing[item.key] = out  # rescheduled with backoff: the next item goes
                if len(failing) >= AWAY_AFTER:  # several different items: the backend after all
                    away = list(failing.values())
                if away:
                    self._away += 1
                    wait = backoff(self._away, base=self.base, cap=self.cap)
                    asked = [o.wait for o in away if o.wait is not None]
                    if asked:
                        wait = max(wait, min(max(asked), RETRY_AFTER_MAX))
                    log.info("outbox: backend away (%s), %d waiting, next try in %.1f s",
                             away[0].error, self.outbox.counts()[PENDING], wait)
                    return wait
                self._away = 0

    def _send(self, item: OutboxItem) -> Outcome:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self.client_factory()
            with self._cond:
                self._clients.append(client)
        out = send_item(self.outbox, client, item)
        _apply(self.outbox, item, out)
        return out

    def _finished(self, item: OutboxItem, out: Outcome) -> None:
        with self._cond:
            self._done[item.local_number] = out.sent
            if len(self._done) > 1000:  # the runtime waits only for the newest few
                self._done.pop(next(iter(self._done)))
            self._cond.notify_all()
        if self.on_result is not None:
            try:
                self.on_result(item, out.sent, out.permanent)
            except Exception:
                log.exception("outbox on_result callback failed")
