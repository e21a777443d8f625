"""SQLite store of the reference backend: people, pension records, payments, receipts, revoked e-card codes,
filings (every service of the catalog, 社保卡临时挂失 among them) with their answers, attachments (bytes keyed by
their SHA-256), ratings, card status, sessions (hashed tokens) and the audit log.
Signing keys are not in here: they are files beside it (`key_file`), so a copy of the database cannot forge.

One connection per thread, kept (FastAPI runs sync endpoints on a thread pool; each call is its own
transaction); WAL so readers never block the writer; synchronous=FULL so an accepted receipt survives a power cut.
An older database gains the filing columns at start (ALTER TABLE), its card-loss filings read as done.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

PERSONAS_PATH = Path(__file__).resolve().parent.parent / "assets" / "demo" / "personas.json"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS persons (
    key TEXT PRIMARY KEY, ssn TEXT NOT NULL UNIQUE, name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pensions (
    ssn TEXT PRIMARY KEY REFERENCES persons(ssn),
    insurance_type TEXT NOT NULL, status TEXT NOT NULL, tier TEXT NOT NULL,
    years_contributed INTEGER NOT NULL, account_balance TEXT NOT NULL, receiving INTEGER NOT NULL,
    monthly_amount TEXT, certification_status TEXT NOT NULL, certification_due TEXT
);
CREATE TABLE IF NOT EXISTS payments (
    ssn TEXT NOT NULL REFERENCES pensions(ssn), month TEXT NOT NULL, amount TEXT NOT NULL,
    status TEXT NOT NULL, PRIMARY KEY (ssn, month)
);
CREATE TABLE IF NOT EXISTS receipts (
    receipt_id TEXT PRIMARY KEY, idempotency_key TEXT NOT NULL UNIQUE, request_hash TEXT NOT NULL,
    terminal_id TEXT NOT NULL, site_id TEXT NOT NULL, service TEXT NOT NULL, ssn TEXT NOT NULL,
    name TEXT, summary_json TEXT NOT NULL, created_at TEXT NOT NULL, received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ecard_revoked (nonce TEXT PRIMARY KEY, revoked_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ecard_used (nonce TEXT PRIMARY KEY, used_at TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS filings (
    filing_id TEXT PRIMARY KEY, type TEXT NOT NULL, status TEXT NOT NULL, ssn TEXT NOT NULL,
    name TEXT, credential TEXT NOT NULL, terminal_id TEXT NOT NULL, site_id TEXT NOT NULL,
    receipt_id TEXT NOT NULL REFERENCES receipts(receipt_id), created_at TEXT NOT NULL, received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS filing_keys (
    idempotency_key TEXT PRIMARY KEY, request_hash TEXT NOT NULL,
    filing_id TEXT NOT NULL REFERENCES filings(filing_id), outcome TEXT NOT NULL, received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, terminal_id TEXT NOT NULL, site_id TEXT NOT NULL, credential TEXT NOT NULL,
    ssn TEXT NOT NULL, name TEXT NOT NULL, opened_at REAL NOT NULL, expires_at REAL NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0, pension_json TEXT, cert_fingerprint TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at);
CREATE TABLE IF NOT EXISTS revoked_certs (
    fingerprint TEXT PRIMARY KEY, terminal_id TEXT NOT NULL, site_id TEXT NOT NULL, revoked_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, ssn TEXT NOT NULL, terminal_id TEXT NOT NULL,
    site_id TEXT NOT NULL, credential TEXT NOT NULL, action TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_person ON audit (ssn, id);
CREATE TABLE IF NOT EXISTS attachments (
    sha256 TEXT PRIMARY KEY, media_type TEXT NOT NULL, size INTEGER NOT NULL, data BLOB NOT NULL, stored_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ratings (
    rating_id TEXT PRIMARY KEY, idempotency_key TEXT NOT NULL UNIQUE, request_hash TEXT NOT NULL,
    terminal_id TEXT NOT NULL, site_id TEXT NOT NULL, service TEXT NOT NULL, filing_ref TEXT,
    satisfaction TEXT NOT NULL, reasons_json TEXT NOT NULL, created_at TEXT NOT NULL, received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ratings_by_site ON ratings (site_id);
CREATE TABLE IF NOT EXISTS help_requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL UNIQUE, terminal_id TEXT NOT NULL,
    site_id TEXT NOT NULL, screen TEXT NOT NULL, created_at TEXT NOT NULL, received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS help_requests_by_terminal ON help_requests (terminal_id, seq);
CREATE TABLE IF NOT EXISTS card_status (
    ssn TEXT PRIMARY KEY, status TEXT NOT NULL, since TEXT NOT NULL,
    filing_id TEXT NOT NULL REFERENCES filings(filing_id)
);
"""

# Columns the generic filings added to the card-loss table (older databases gain them at start).
_FILING_COLUMNS = (
    ("service", "TEXT"), ("local_number", "TEXT"), ("progress", "TEXT"), ("handling", "TEXT"), ("reason", "TEXT"),
    ("due_date", "TEXT"), ("answers_json", "TEXT"), ("updated_at", "TEXT"),
)
_FILING_INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS filings_by_local ON filings (terminal_id, local_number)
    WHERE local_number IS NOT NULL;
CREATE INDEX IF NOT EXISTS filings_by_person ON filings (ssn, received_at);
CREATE INDEX IF NOT EXISTS filings_by_handling ON filings (handling, received_at);
"""

CARD_SUSPENDED = "temporarily_suspended"
FILING_ACCEPTED = "accepted"
FILING_ALREADY_REPORTED = "already_reported"

PAYMENT_PAID = "已发放"


class IdempotencyConflict(Exception):
    """The idempotency key was already used for a different request body."""


class ECardUsed(Exception):
    """This e-card code already opened a session (a code is good for one opening)."""


class KeyFileError(RuntimeError):
    """A signing key file exists but cannot be used: start-up must stop rather than make a new key."""


@dataclass(frozen=True)
class FilingRow:
    filing_id: str
    type: str
    status: str
    ssn: str
    terminal_id: str
    site_id: str
    credential: str
    receipt_id: str
    created_at: str
    received_at: str
    # Generic filings (POST /v1/filings); a card-loss filing of the old route reads as a done direct card_loss.
    name: str | None = None
    service: str = "card_loss"
    local_number: str | None = None
    progress: str = "done"
    handling: str = "direct"
    reason: str | None = None
    due_date: str = ""
    answers: dict[str, Any] | None = None
    updated_at: str = ""


@dataclass(frozen=True)
class NewFiling:
    """What POST /v1/filings records (ids made by the caller, lines written by the backend)."""

    filing_id: str
    receipt_id: str
    idempotency_key: str
    request_hash: str
    terminal_id: str
    site_id: str
    service: str
    local_number: str
    ssn: str
    name: str
    receipt_name: str | None  # a name on record only: a receipt never carries a name the terminal chose
    credential: str
    progress: str
    handling: str
    due_date: str
    answers: dict[str, Any]
    summary: dict[str, Any]
    created_at: str
    received_at: str
    suspend_card: bool = False


class FilingConflict(Exception):
    """The terminal's local number already names a filing of another person (a terminal bug, never merged)."""


@dataclass(frozen=True)
class RatingCounts:
    satisfaction: dict[str, int]
    reasons: dict[str, int]


@dataclass(frozen=True)
class CardLossOutcome:
    filing: FilingRow
    outcome: str  # FILING_ACCEPTED (this request filed it) or FILING_ALREADY_REPORTED (an earlier one did)
    card_status: str
    replayed: bool  # this idempotency key had been seen before


@dataclass(frozen=True)
class ReceiptRow:
    receipt_id: str
    terminal_id: str
    site_id: str
    service: str
    ssn: str
    name: str | None
    summary: dict[str, Any]
    created_at: str
    received_at: str


def last_months(today: dt.date, count: int = 12) -> list[str]:
    """The `count` months before today's month, newest first, as YYYY-MM (this month is not paid yet)."""
    y, m = today.year, today.month
    out = []
    for _ in range(count):
        m -= 1
        if m == 0:
            y, m = y - 1, 12
        out.append(f"{y:04d}-{m:02d}")
    return out


@dataclass(frozen=True)
class SessionRow:
    token_hash: str
    terminal_id: str
    site_id: str
    cert_fingerprint: str
    credential: str
    ssn: str
    name: str
    opened_at: float
    expires_at: float
    closed: bool
    pension: dict[str, Any] | None  # the last pension answer given in this session ({"no_record": true} too)


@dataclass(frozen=True)
class AuditRow:
    at: str
    terminal_id: str
    site_id: str
    credential: str
    action: str


def key_file(directory: str | os.PathLike[str], name: str, legacy: Database | None = None) -> bytes:
    """A 32-byte signing key kept in DIRECTORY/NAME.key (mode 0600), created on first use.
    A key an older version kept in the database's meta table is moved out (signatures stay valid).

    Only a missing file makes a new key: a new key would make every receipt printed so far verify as forged,
    so a file that is unreadable, malformed or readable by others stops start-up instead (KeyFileError)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    path = d / f"{name}.key"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return _new_key(path, name, legacy)
    except OSError as e:
        raise KeyFileError(f"signing key {path} cannot be read ({e.strerror}); restore it from backup") from None
    try:
        mode = os.fstat(fd).st_mode
        if mode & 0o077:
            raise KeyFileError(
                f"signing key {path} is readable by group or others (mode {mode & 0o777:o}); chmod 600 it"
            )
        try:
            raw = os.read(fd, 1024)
        except OSError as e:
            raise KeyFileError(f"signing key {path} cannot be read ({e.strerror}); restore it from backup") from None
    finally:
        os.close(fd)
    try:
        data = bytes.fromhex(raw.decode("ascii").strip())
    except ValueError:
        data = b""
    if len(data) != 32:
        raise KeyFileError(f"signing key {path} is not a 32-byte hex key; restore it from backup")
    return data


def _new_key(path: Path, name: str, legacy: Database | None) -> bytes:
    data = (legacy.take_legacy_secret(name) if legacy is not None else None) or secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)  # left by a crash between create and rename: it never held a key in use
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(data.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # atomic and never over an existing key (another process may have made one)
    except FileExistsError:
        tmp.unlink()
        return key_file(path.parent, name)
    tmp.unlink()
    return data


class Database:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self.connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            have = {r["name"] for r in conn.execute("PRAGMA table_info(filings)")}
            for column, kind in _FILING_COLUMNS:
                if column not in have:
                    conn.execute(f"ALTER TABLE filings ADD COLUMN {column} {kind}")
            conn.executescript(_FILING_INDEXES)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE (serialised across threads and processes), committed when the
        block ends, rolled back on any exception."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (made on first use, kept: opening one per call cost more than the query).
        Every caller ends its own transaction; one left open by an exception is rolled back here."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=True)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    # --- seeding -------------------------------------------------------------------------------------

    def seed_personas(self, personas_path: str | os.PathLike[str] = PERSONAS_PATH, today: dt.date | None = None) -> None:
        """Insert the demo people (idempotent: existing rows are kept as they are)."""
        today = today or dt.date.today()
        cards = json.loads(Path(personas_path).read_text(encoding="utf-8"))["cards"]
        with self._write() as conn:
            for card in cards:
                conn.execute(
                    "INSERT OR IGNORE INTO persons (key, ssn, name) VALUES (?, ?, ?)",
                    (card["key"], card["ssn"], card["name"]),
                )
                p = card.get("pension")
                if p is None:
                    continue
                conn.execute(
                    "INSERT OR IGNORE INTO pensions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        card["ssn"], p["insurance_type"], p["status"], p["tier"], int(p["years_contributed"]),
                        str(Decimal(p["account_balance"])), int(bool(p["receiving"])),
                        None if p["monthly_amount"] is None else str(Decimal(p["monthly_amount"])),
                        p["certification_status"], p["certification_due"],
                    ),
                )
                if p["receiving"] and p["monthly_amount"] is not None:
                    amount = str(Decimal(p["monthly_amount"]))
                    for month in last_months(today):
                        conn.execute(
                            "INSERT OR IGNORE INTO payments (ssn, month, amount, status) VALUES (?, ?, ?, ?)",
                            (card["ssn"], month, amount, PAYMENT_PAID),
                        )

    # --- secrets -------------------------------------------------------------------------------------

    def take_legacy_secret(self, name: str) -> bytes | None:
        """Remove and return a secret an older version stored in the meta table (None if there is none)."""
        with self.connect() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM meta WHERE key = ?", (name,))
        return bytes.fromhex(row["value"])

    # --- sessions and audit -----------------------------------------------------------------------------

    def open_session(
        self, *, token_hash: str, terminal_id: str, site_id: str, cert_fingerprint: str, credential: str, ssn: str,
        name: str, opened_at: float, expires_at: float, at: str, ecard_nonce: str | None = None,
        ecard_expires: float = 0.0,
    ) -> None:
        """Record the session and its audit row in one transaction (and forget sessions long expired).
        ecard_nonce: the e-card code that opened it, marked used in the same transaction (raises ECardUsed if it
        already was: two terminals racing with one code get one session); ecard_expires: when the code expires
        (after that it is refused as expired, and its row can go)."""
        with self._write() as conn:
            if ecard_nonce is not None:
                used = conn.execute(
                    "INSERT INTO ecard_used (nonce, used_at, expires_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (nonce) DO NOTHING",
                    (ecard_nonce, at, ecard_expires),
                )
                if used.rowcount != 1:
                    raise ECardUsed(ecard_nonce)
            _prune(conn, opened_at)
            conn.execute(
                "INSERT INTO sessions (token_hash, terminal_id, site_id, cert_fingerprint, credential, ssn, name,"
                " opened_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (token_hash, terminal_id, site_id, cert_fingerprint, credential, ssn, name, opened_at, expires_at),
            )
            _audit(conn, at, ssn, terminal_id, site_id, credential, "session_opened")

    def session(self, token_hash: str) -> SessionRow | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM sessions WHERE token_hash = ?", (token_hash,)).fetchone()
        if row is None:
            return None
        return SessionRow(
            token_hash=row["token_hash"], terminal_id=row["terminal_id"], site_id=row["site_id"],
            cert_fingerprint=row["cert_fingerprint"], credential=row["credential"], ssn=row["ssn"], name=row["name"], opened_at=row["opened_at"],
            expires_at=row["expires_at"], closed=bool(row["closed"]),
            pension=None if row["pension_json"] is None else json.loads(row["pension_json"]),
        )

    def close_session(self, s: SessionRow, at: str) -> None:
        with self._write() as conn:
            conn.execute(f"UPDATE sessions SET closed = 1, {_FORGET} WHERE token_hash = ?", (s.token_hash,))
            _audit(conn, at, s.ssn, s.terminal_id, s.site_id, s.credential, "session_closed")

    def remember_pension(self, s: SessionRow, answer: dict[str, Any], at: str) -> None:
        """Keep the pension answer given in this session (what a receipt may vouch for) and audit the read."""
        with self._write() as conn:
            conn.execute(
                "UPDATE sessions SET pension_json = ? WHERE token_hash = ?",
                (json.dumps(answer, ensure_ascii=False, sort_keys=True), s.token_hash),
            )
            _audit(conn, at, s.ssn, s.terminal_id, s.site_id, s.credential, "pension_read")

    def prune_sessions(self, now: float) -> None:
        """Forget the personal data of expired sessions, and the rows of sessions expired a day ago."""
        with self._write() as conn:
            _prune(conn, now)

    def read_filing(self, s: SessionRow, ref: str, at: str) -> FilingRow | None:
        """The session's person's filing named by its filing id or by the local number a terminal printed,
        audited (filing_read) in the same transaction; None if unknown or someone else's (nothing is audited
        then: nothing was read)."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT * FROM filings WHERE (filing_id = ? OR local_number = ?) AND ssn = ?"
                " ORDER BY filing_id = ? DESC, received_at DESC LIMIT 1",
                (ref, ref, s.ssn, ref),
            ).fetchone()
            if row is not None:
                _audit(conn, at, s.ssn, s.terminal_id, s.site_id, s.credential, "filing_read")
        return None if row is None else _filing(row)

    def read_audit(self, s: SessionRow, at: str, limit: int = 500) -> list[AuditRow]:
        """The session's person's access log, newest first, and its own audit_read row, in one transaction
        (the row it writes is not in what it returns)."""
        with self._write() as conn:
            rows = _audit_rows(conn, s.ssn, limit)
            _audit(conn, at, s.ssn, s.terminal_id, s.site_id, s.credential, "audit_read")
        return rows

    def revoke_certificate(self, fingerprint: str, terminal_id: str, site_id: str, at: str) -> None:
        """From now on this certificate opens nothing, and the sessions it opened are dead."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO revoked_certs (fingerprint, terminal_id, site_id, revoked_at)"
                " VALUES (?, ?, ?, ?)",
                (fingerprint, terminal_id, site_id, at),
            )
            conn.execute(f"UPDATE sessions SET closed = 1, {_FORGET} WHERE cert_fingerprint = ?", (fingerprint,))

    def certificate_revoked(self, fingerprint: str) -> bool:
        with self.connect() as conn:
            row = conn.execute("SELECT 1 FROM revoked_certs WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return row is not None

    def audit_of(self, ssn: str, limit: int = 500) -> list[AuditRow]:
        """Accesses to this person's data, newest first."""
        with self.connect() as conn:
            return _audit_rows(conn, ssn, limit)

    # --- reads ---------------------------------------------------------------------------------------

    def pension(self, ssn: str) -> tuple[sqlite3.Row, list[sqlite3.Row]] | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM pensions WHERE ssn = ?", (ssn,)).fetchone()
            if row is None:
                return None
            payments = conn.execute(
                "SELECT month, amount, status FROM payments WHERE ssn = ? ORDER BY month DESC LIMIT 12", (ssn,)
            ).fetchall()
        return row, payments

    def person_by_key(self, key: str) -> sqlite3.Row | None:
        with self.connect() as conn:
            return conn.execute("SELECT key, ssn, name FROM persons WHERE key = ?", (key,)).fetchone()

    def person_by_ssn(self, ssn: str) -> sqlite3.Row | None:
        with self.connect() as conn:
            return conn.execute("SELECT key, ssn, name FROM persons WHERE ssn = ?", (ssn,)).fetchone()

    def person_name(self, ssn: str) -> str | None:
        with self.connect() as conn:
            row = conn.execute("SELECT name FROM persons WHERE ssn = ?", (ssn,)).fetchone()
        return None if row is None else row["name"]

    # --- receipts ------------------------------------------------------------------------------------

    def create_receipt(
        self,
        *,
        idempotency_key: str,
        request_hash: str,
        new_receipt_id: str,
        terminal_id: str,
        site_id: str,
        service: str,
        ssn: str,
        name: str | None,
        summary: dict[str, Any],
        created_at: str,
        received_at: str,
        audit_credential: str | None = None,
    ) -> tuple[ReceiptRow, bool]:
        """Insert once per idempotency key; returns (row, replayed). Raises IdempotencyConflict.
        audit_credential: also write the audit row (receipt_issued) in the same transaction."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")  # serialise check-then-insert across threads and processes
            try:
                row = conn.execute(
                    "SELECT * FROM receipts WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if row is not None:
                    conn.execute("ROLLBACK")
                    if row["request_hash"] != request_hash:
                        raise IdempotencyConflict(idempotency_key)
                    return _receipt(row), True
                conn.execute(
                    "INSERT INTO receipts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        new_receipt_id, idempotency_key, request_hash, terminal_id, site_id, service, ssn, name,
                        json.dumps(summary, ensure_ascii=False, sort_keys=True), created_at, received_at,
                    ),
                )
                if audit_credential is not None:
                    _audit(conn, received_at, ssn, terminal_id, site_id, audit_credential, "receipt_issued")
                conn.execute("COMMIT")
            except IdempotencyConflict:
                raise
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        found = self.receipt(new_receipt_id)
        assert found is not None
        return found, False

    def receipt(self, receipt_id: str) -> ReceiptRow | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM receipts WHERE receipt_id = ?", (receipt_id,)).fetchone()
        return None if row is None else _receipt(row)

    def count_receipts(self, idempotency_key: str | None = None) -> int:
        with self.connect() as conn:
            if idempotency_key is None:
                return conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0]
            return conn.execute(
                "SELECT COUNT(*) FROM receipts WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()[0]

    # --- filings ---------------------------------------------------------------------------------------

    def file_card_loss(
        self,
        *,
        idempotency_key: str,
        request_hash: str,
        new_filing_id: str,
        new_receipt_id: str,
        terminal_id: str,
        site_id: str,
        ssn: str,
        name: str | None,
        credential: str,
        summary: dict[str, Any],
        created_at: str,
        received_at: str,
    ) -> CardLossOutcome:
        """Record a temporary loss report once per idempotency key, with its receipt and the card's new status,
        in one transaction. A card already suspended is not filed again: the earlier filing is answered.
        Raises IdempotencyConflict."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")  # serialise check-then-insert across threads and processes
            try:
                seen = conn.execute(
                    "SELECT * FROM filing_keys WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if seen is not None:
                    conn.execute("ROLLBACK")
                    if seen["request_hash"] != request_hash:
                        raise IdempotencyConflict(idempotency_key)
                    return self._outcome(seen["filing_id"], seen["outcome"], replayed=True)
                current = conn.execute(
                    "SELECT filing_id FROM card_status WHERE ssn = ? AND status = ?", (ssn, CARD_SUSPENDED)
                ).fetchone()
                if current is not None:
                    filing_id, outcome = current["filing_id"], FILING_ALREADY_REPORTED
                else:
                    filing_id, outcome = new_filing_id, FILING_ACCEPTED
                    conn.execute(
                        "INSERT INTO receipts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            # '/' is outside the client key alphabet: never collides with POST /v1/receipts keys
                            new_receipt_id, f"filing/{new_filing_id}", request_hash, terminal_id, site_id,
                            "card_loss", ssn, name, json.dumps(summary, ensure_ascii=False, sort_keys=True),
                            created_at, received_at,
                        ),
                    )
                    _insert_filing(
                        conn, filing_id=new_filing_id, type="card_loss", status=FILING_ACCEPTED, ssn=ssn, name=name,
                        credential=credential, terminal_id=terminal_id, site_id=site_id, receipt_id=new_receipt_id,
                        created_at=created_at, received_at=received_at, service="card_loss", local_number=None,
                        progress="done", handling="direct", reason=None, due_date=received_at[:10],
                        answers_json="{}", updated_at=received_at,
                    )
                    conn.execute(
                        "INSERT OR REPLACE INTO card_status (ssn, status, since, filing_id) VALUES (?, ?, ?, ?)",
                        (ssn, CARD_SUSPENDED, received_at, new_filing_id),
                    )
                conn.execute(
                    "INSERT INTO filing_keys VALUES (?, ?, ?, ?, ?)",
                    (idempotency_key, request_hash, filing_id, outcome, received_at),
                )
                _audit(conn, received_at, ssn, terminal_id, site_id, credential, "card_loss_filed")
                conn.execute("COMMIT")
            except IdempotencyConflict:
                raise
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return self._outcome(filing_id, outcome, replayed=False)

    def _outcome(self, filing_id: str, outcome: str, *, replayed: bool) -> CardLossOutcome:
        filing = self.filing(filing_id)
        assert filing is not None  # filing_keys references filings
        status = self.card_status(filing.ssn)
        return CardLossOutcome(filing, outcome, status[0] if status else CARD_SUSPENDED, replayed)

    def filing(self, filing_id: str) -> FilingRow | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM filings WHERE filing_id = ?", (filing_id,)).fetchone()
        return None if row is None else _filing(row)

    def card_status(self, ssn: str) -> tuple[str, str, str] | None:
        """(status, since, filing_id) of a card with a recorded status, else None (card in normal use)."""
        with self.connect() as conn:
            row = conn.execute("SELECT status, since, filing_id FROM card_status WHERE ssn = ?", (ssn,)).fetchone()
        return None if row is None else (row["status"], row["since"], row["filing_id"])

    def count_filings(self, ssn: str | None = None) -> int:
        with self.connect() as conn:
            if ssn is None:
                return conn.execute("SELECT COUNT(*) FROM filings").fetchone()[0]
            return conn.execute("SELECT COUNT(*) FROM filings WHERE ssn = ?", (ssn,)).fetchone()[0]

    # --- generic filings (POST /v1/filings) ------------------------------------------------------------

    def filing_by_key(self, idempotency_key: str) -> tuple[str, FilingRow] | None:
        """(request hash, filing) an idempotency key already answered, or None."""
        with self.connect() as conn:
            seen = conn.execute(
                "SELECT request_hash, filing_id FROM filing_keys WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
            if seen is None:
                return None
            row = conn.execute("SELECT * FROM filings WHERE filing_id = ?", (seen["filing_id"],)).fetchone()
        return seen["request_hash"], _filing(row)

    def filing_by_local(self, terminal_id: str, local_number: str) -> FilingRow | None:
        with self.connect() as conn:
            row = conn.execute(
                "SELECT * FROM filings WHERE terminal_id = ? AND local_number = ?", (terminal_id, local_number)
            ).fetchone()
        return None if row is None else _filing(row)

    def file_service(self, f: NewFiling) -> tuple[FilingRow, bool]:
        """Record a filing, its receipt, its key and its audit row (filing_filed) in one transaction; returns
        (filing, replayed). Checked again inside the transaction, so racing retries file once:
        - the idempotency key seen before: its filing (IdempotencyConflict when the body differs);
        - the terminal's local number seen before (with another key): that filing. The local number is the
          filing: the terminal printed it on the resident's receipt, so the backend never makes a second one
          (FilingConflict when it names another person's filing).
        suspend_card: also mark the person's card temporarily suspended (社保卡临时挂失)."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                seen = conn.execute(
                    "SELECT request_hash, filing_id FROM filing_keys WHERE idempotency_key = ?", (f.idempotency_key,)
                ).fetchone()
                if seen is not None:
                    conn.execute("ROLLBACK")
                    if seen["request_hash"] != f.request_hash:
                        raise IdempotencyConflict(f.idempotency_key)
                    found = self.filing(seen["filing_id"])
                    assert found is not None
                    return found, True
                local = conn.execute(
                    "SELECT filing_id, ssn FROM filings WHERE terminal_id = ? AND local_number = ?",
                    (f.terminal_id, f.local_number),
                ).fetchone()
                if local is not None:
                    if local["ssn"] != f.ssn:
                        conn.execute("ROLLBACK")
                        raise FilingConflict(f.local_number)
                    conn.execute(
                        "INSERT INTO filing_keys VALUES (?, ?, ?, ?, ?)",
                        (f.idempotency_key, f.request_hash, local["filing_id"], FILING_ACCEPTED, f.received_at),
                    )
                    conn.execute("COMMIT")
                    found = self.filing(local["filing_id"])
                    assert found is not None
                    return found, True
                conn.execute(
                    "INSERT INTO receipts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        # '/' is outside the client key alphabet: never collides with POST /v1/receipts keys
                        f.receipt_id, f"filing/{f.filing_id}", f.request_hash, f.terminal_id, f.site_id, f.service,
                        f.ssn, f.receipt_name, json.dumps(f.summary, ensure_ascii=False, sort_keys=True),
                        f.created_at, f.received_at,
                    ),
                )
                _insert_filing(
                    conn, filing_id=f.filing_id, type=f.service, status=FILING_ACCEPTED, ssn=f.ssn, name=f.name,
                    credential=f.credential, terminal_id=f.terminal_id, site_id=f.site_id, receipt_id=f.receipt_id,
                    created_at=f.created_at, received_at=f.received_at, service=f.service,
                    local_number=f.local_number, progress=f.progress, handling=f.handling, reason=None,
                    due_date=f.due_date, answers_json=json.dumps(f.answers, ensure_ascii=False, sort_keys=True),
                    updated_at=f.received_at,
                )
                conn.execute(
                    "INSERT INTO filing_keys VALUES (?, ?, ?, ?, ?)",
                    (f.idempotency_key, f.request_hash, f.filing_id, FILING_ACCEPTED, f.received_at),
                )
                if f.suspend_card:
                    conn.execute(
                        "INSERT INTO card_status (ssn, status, since, filing_id) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (ssn) DO NOTHING",  # already suspended: the earlier filing stays its cause
                        (f.ssn, CARD_SUSPENDED, f.received_at, f.filing_id),
                    )
                _audit(conn, f.received_at, f.ssn, f.terminal_id, f.site_id, f.credential, "filing_filed")
                conn.execute("COMMIT")
            except (IdempotencyConflict, FilingConflict):
                raise
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        found = self.filing(f.filing_id)
        assert found is not None
        return found, False

    def person_filings(self, s: SessionRow, at: str, limit: int = 200) -> list[FilingRow]:
        """The session's person's filings, newest first, audited (filings_listed) in the same transaction."""
        with self._write() as conn:
            rows = conn.execute(
                "SELECT * FROM filings WHERE ssn = ? ORDER BY received_at DESC, filing_id DESC LIMIT ?",
                (s.ssn, limit),
            ).fetchall()
            _audit(conn, at, s.ssn, s.terminal_id, s.site_id, s.credential, "filings_listed")
        return [_filing(r) for r in rows]

    def filing_of_receipt(self, receipt_id: str) -> FilingRow | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM filings WHERE receipt_id = ?", (receipt_id,)).fetchone()
        return None if row is None else _filing(row)

    # --- township worklist -----------------------------------------------------------------------------

    def forwarded_filings(self, limit: int = 500) -> list[FilingRow]:
        """Forwarded filings, the open ones first (oldest due first), then the closed ones newest first."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT * FROM filings WHERE handling = 'forwarded'"
                " ORDER BY progress IN ('done', 'returned'), CASE WHEN progress IN ('done', 'returned')"
                " THEN '' ELSE due_date END, updated_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_filing(r) for r in rows]

    def move_filing(self, filing_id: str, *, allowed_from: tuple[str, ...], to: str, reason: str | None,
                    at: str) -> bool:
        """Set a filing's progress if it stands in one of allowed_from (one statement: no lost update)."""
        marks = ", ".join("?" for _ in allowed_from)
        with self.connect() as conn:
            cur = conn.execute(
                f"UPDATE filings SET progress = ?, reason = ?, updated_at = ? WHERE filing_id = ?"
                f" AND handling = 'forwarded' AND progress IN ({marks})",
                (to, reason, at, filing_id, *allowed_from),
            )
        return cur.rowcount == 1

    # --- attachments -----------------------------------------------------------------------------------

    def store_attachment(self, sha256: str, media_type: str, data: bytes, at: str) -> tuple[int, str, bool]:
        """Keep bytes under their digest once; (size, media type, replayed)."""
        with self.connect() as conn:
            cur = conn.execute(
                "INSERT INTO attachments (sha256, media_type, size, data, stored_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (sha256) DO NOTHING",
                (sha256, media_type, len(data), data, at),
            )
            if cur.rowcount == 1:
                return len(data), media_type, False
            row = conn.execute("SELECT size, media_type FROM attachments WHERE sha256 = ?", (sha256,)).fetchone()
        return row["size"], row["media_type"], True

    def attachment_types(self, digests: list[str]) -> dict[str, str]:
        """Media type of each of these digests that is stored."""
        if not digests:
            return {}
        marks = ", ".join("?" for _ in digests)
        with self.connect() as conn:
            rows = conn.execute(
                f"SELECT sha256, media_type FROM attachments WHERE sha256 IN ({marks})", tuple(digests)
            ).fetchall()
        return {r["sha256"]: r["media_type"] for r in rows}

    def attachment(self, sha256: str) -> tuple[str, bytes] | None:
        with self.connect() as conn:
            row = conn.execute("SELECT media_type, data FROM attachments WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else (row["media_type"], bytes(row["data"]))

    # --- ratings ---------------------------------------------------------------------------------------

    def store_rating(
        self, *, idempotency_key: str, request_hash: str, new_rating_id: str, terminal_id: str, site_id: str,
        service: str, filing_ref: str | None, satisfaction: str, reasons: list[str], created_at: str,
        received_at: str,
    ) -> tuple[str, bool]:
        """Once per idempotency key; (rating id, replayed). Raises IdempotencyConflict."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                seen = conn.execute(
                    "SELECT rating_id, request_hash FROM ratings WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if seen is not None:
                    conn.execute("ROLLBACK")
                    if seen["request_hash"] != request_hash:
                        raise IdempotencyConflict(idempotency_key)
                    return seen["rating_id"], True
                conn.execute(
                    "INSERT INTO ratings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        new_rating_id, idempotency_key, request_hash, terminal_id, site_id, service, filing_ref,
                        satisfaction, json.dumps(reasons), created_at, received_at,
                    ),
                )
                conn.execute("COMMIT")
            except IdempotencyConflict:
                raise
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return new_rating_id, False

    def rating_counts(self, site_id: str | None = None) -> dict[str, RatingCounts]:
        """Counts per site (all sites, or one)."""
        with self.connect() as conn:
            if site_id is None:
                rows = conn.execute("SELECT site_id, satisfaction, reasons_json FROM ratings").fetchall()
            else:
                rows = conn.execute(
                    "SELECT site_id, satisfaction, reasons_json FROM ratings WHERE site_id = ?", (site_id,)
                ).fetchall()
        out: dict[str, RatingCounts] = {}
        for r in rows:
            c = out.setdefault(r["site_id"], RatingCounts({}, {}))
            c.satisfaction[r["satisfaction"]] = c.satisfaction.get(r["satisfaction"], 0) + 1
            for reason in json.loads(r["reasons_json"]):
                c.reasons[reason] = c.reasons.get(reason, 0) + 1
        return out

    # --- help requests (no personal data: which terminal, which screen, when) ------------------------------

    def store_help_request(
        self, *, request_id: str, terminal_id: str, site_id: str, screen: str, created_at: str,
        received_at: dt.datetime, limit: int | None = None, window: dt.timedelta = dt.timedelta(minutes=10),
    ) -> float | None:
        """Store it and return None; or, when the terminal's last `limit` requests were all received within
        `window` before this one, store nothing and return the seconds until the oldest of them leaves the
        window. Checked and stored in one write transaction, so two requests at once cannot both slip in."""
        with self._write() as conn:
            if limit is not None:
                recent = [dt.datetime.fromisoformat(r[0]) for r in conn.execute(
                    "SELECT received_at FROM help_requests WHERE terminal_id = ? ORDER BY seq DESC LIMIT ?",
                    (terminal_id, limit),
                )]
                # rows "from the future" (the clock was stepped back since) do not count: they would block the
                # terminal for as long as the clock had been ahead
                recent = [r for r in recent if dt.timedelta(0) <= received_at - r < window]
                if len(recent) >= limit:
                    return max(1.0, (min(recent) + window - received_at).total_seconds())
            conn.execute(
                "INSERT INTO help_requests (request_id, terminal_id, site_id, screen, created_at, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (request_id, terminal_id, site_id, screen, created_at, received_at.isoformat()),
            )
        return None

    def help_requests(self, limit: int = 50, site_id: str | None = None) -> list[sqlite3.Row]:
        """The newest first (in the order received)."""
        where, args = ("WHERE site_id = ?", (site_id,)) if site_id else ("", ())
        with self.connect() as conn:
            return conn.execute(
                "SELECT request_id, terminal_id, site_id, screen, created_at, received_at FROM help_requests "
                f"{where} ORDER BY seq DESC LIMIT ?", (*args, limit),
            ).fetchall()

    # --- e-card revocation -----------------------------------------------------------------------------

    def revoke_ecard(self, nonce: str, when: str) -> None:
        with self.connect() as conn:
            conn.execute("INSERT OR IGNORE INTO ecard_revoked (nonce, revoked_at) VALUES (?, ?)", (nonce, when))

    def ecard_revoked(self, nonce: str) -> bool:
        with self.connect() as conn:
            return conn.execute("SELECT 1 FROM ecard_revoked WHERE nonce = ?", (nonce,)).fetchone() is not None

    def ecard_used(self, nonce: str) -> bool:
        with self.connect() as conn:
            return conn.execute("SELECT 1 FROM ecard_used WHERE nonce = ?", (nonce,)).fetchone() is not None


def _audit(
    conn: sqlite3.Connection, at: str, ssn: str, terminal_id: str, site_id: str, credential: str, action: str
) -> None:
    conn.execute(
        "INSERT INTO audit (at, ssn, terminal_id, site_id, credential, action) VALUES (?, ?, ?, ?, ?, ?)",
        (at, ssn, terminal_id, site_id, credential, action),
    )


# What a session keeps of its person only while it is live: the audit table keeps who, when and what.
_FORGET = "name = '', ssn = '', pension_json = NULL"


def _prune(conn: sqlite3.Connection, now: float) -> None:
    conn.execute(f"UPDATE sessions SET {_FORGET} WHERE expires_at <= ? AND ssn != ''", (now,))
    # An expired row is kept a day (without personal data) so its token is answered token_expired, not invalid.
    conn.execute("DELETE FROM sessions WHERE expires_at < ?", (now - 86400,))
    # A used code past its expiry is refused as expired anyway; a minute's margin for the check-then-open gap.
    conn.execute("DELETE FROM ecard_used WHERE expires_at < ?", (now - 60,))


def _audit_rows(conn: sqlite3.Connection, ssn: str, limit: int) -> list[AuditRow]:
    rows = conn.execute(
        "SELECT at, terminal_id, site_id, credential, action FROM audit WHERE ssn = ? ORDER BY id DESC LIMIT ?",
        (ssn, limit),
    ).fetchall()
    return [AuditRow(r["at"], r["terminal_id"], r["site_id"], r["credential"], r["action"]) for r in rows]


def _filing(row: sqlite3.Row) -> FilingRow:
    received = row["received_at"]
    return FilingRow(
        filing_id=row["filing_id"], type=row["type"], status=row["status"], ssn=row["ssn"],
        terminal_id=row["terminal_id"], site_id=row["site_id"], credential=row["credential"],
        receipt_id=row["receipt_id"], created_at=row["created_at"], received_at=received,
        name=row["name"], service=row["service"] or row["type"], local_number=row["local_number"],
        progress=row["progress"] or "done", handling=row["handling"] or "direct", reason=row["reason"],
        due_date=row["due_date"] or received[:10],
        answers=json.loads(row["answers_json"]) if row["answers_json"] else {},
        updated_at=row["updated_at"] or received,
    )


def _insert_filing(conn: sqlite3.Connection, **values: Any) -> None:
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    conn.execute(f"INSERT INTO filings ({columns}) VALUES ({marks})", tuple(values.values()))


def _receipt(row: sqlite3.Row) -> ReceiptRow:
    return ReceiptRow(
        receipt_id=row["receipt_id"],
        terminal_id=row["terminal_id"],
        site_id=row["site_id"],
        service=row["service"],
        ssn=row["ssn"],
        name=row["name"],
        summary=json.loads(row["summary_json"]),
        created_at=row["created_at"],
        received_at=row["received_at"],
    )
