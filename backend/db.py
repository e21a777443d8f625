"""SQLite store of the reference backend: people, pension records, payments, receipts, revoked e-card codes.

One short-lived connection per call (FastAPI runs sync endpoints on a thread pool); WAL so readers never
block the writer; synchronous=FULL so an accepted receipt survives a power cut.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import sqlite3
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
"""

PAYMENT_PAID = "已发放"


class IdempotencyConflict(Exception):
    """The idempotency key was already used for a different request body."""


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


class Database:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            yield conn
        finally:
            conn.close()

    # --- seeding -------------------------------------------------------------------------------------

    def seed_personas(self, personas_path: str | os.PathLike[str] = PERSONAS_PATH, today: dt.date | None = None) -> None:
        """Insert the demo people (idempotent: existing rows are kept as they are)."""
        today = today or dt.date.today()
        cards = json.loads(Path(personas_path).read_text(encoding="utf-8"))["cards"]
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
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
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # --- secrets -------------------------------------------------------------------------------------

    def secret(self, name: str) -> bytes:
        """A server secret kept in the database so signatures stay valid across restarts."""
        with self.connect() as conn:
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (name, secrets.token_hex(32)))
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()
        return bytes.fromhex(row["value"])

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
    ) -> tuple[ReceiptRow, bool]:
        """Insert once per idempotency key; returns (row, replayed). Raises IdempotencyConflict."""
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

    # --- e-card revocation -----------------------------------------------------------------------------

    def revoke_ecard(self, nonce: str, when: str) -> None:
        with self.connect() as conn:
            conn.execute("INSERT OR IGNORE INTO ecard_revoked (nonce, revoked_at) VALUES (?, ?)", (nonce, when))

    def ecard_revoked(self, nonce: str) -> bool:
        with self.connect() as conn:
            return conn.execute("SELECT 1 FROM ecard_revoked WHERE nonce = ?", (nonce,)).fetchone() is not None


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
