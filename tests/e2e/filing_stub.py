"""A small stand-in for the backend's filing endpoints (docs/filings.md), over real mutual TLS: the outbox's
tests and benchmarks run against it before (and independently of) the reference backend.

It keeps what it accepted in SQLite (synchronous=FULL), so a killed stub has what it answered 2xx for:
tables `filings (local_number, idempotency_key UNIQUE, ...)`, `attachments`, `ratings`.
Faults it can play: fail_next(n, after_processing=...) (500, optionally after doing the work: a lost answer),
down (503 with Retry-After), and a random failure rate (env FILING_STUB_FAIL_RATE when run as a program).

    python -m tests.e2e.filing_stub --data DIR [--port P] [--verify-port M]   # same output as python -m backend
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import re
import signal
import socket
import sqlite3
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from api.models import FilingRequest, RatingRequest
from backend.pki import ensure_demo_pki

SHA = re.compile(r"^[0-9a-f]{64}$")
SERVICES = [
    {"key": "jiuye_dengji", "title": "就业登记", "description": "d", "basis": "b", "materials": [], "process": [],
     "fee": "不收费", "time_limit_days": 5, "phone": "12333", "supervision_phone": "12345", "level": "id_card",
     "handling": "direct", "online_only": False, "form": {"type": "object", "properties": {}}},
]


class Stub:
    def __init__(self, data: Path, fail_rate: float = 0.0) -> None:
        self.data = data
        self.db_path = data / "stub.sqlite3"
        self.lock = threading.Lock()
        self.fail_rate = fail_rate
        self.fail = 0
        self.skip = 0
        self.fail_after = False
        self.down = False
        self.retry_after: str | None = None
        self.forget_attachments_once = False
        self.counts: dict[str, int] = {}
        self.etag = '"cat-1"'
        db = self._db()
        db.executescript("""
            CREATE TABLE IF NOT EXISTS filings (seq INTEGER PRIMARY KEY, filing_id TEXT NOT NULL,
              local_number TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE, body_hash TEXT NOT NULL,
              answer TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS attachments (digest TEXT PRIMARY KEY, media_type TEXT NOT NULL,
              size INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS ratings (idempotency_key TEXT PRIMARY KEY, rating_id TEXT NOT NULL);
        """)
        db.close()
        self.app = self._make_app()

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, isolation_level=None, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def fail_next(self, n: int = 1, *, after_processing: bool = False, skip: int = 0) -> None:
        """Answer 500 to the `n` requests after the next `skip` ones (after_processing: do the work first)."""
        with self.lock:
            self.fail, self.fail_after, self.skip = n, after_processing, skip

    def filings(self) -> list[tuple[str, str]]:
        db = self._db()
        try:
            return db.execute("SELECT local_number, idempotency_key FROM filings ORDER BY seq").fetchall()
        finally:
            db.close()

    def attachments(self) -> set[str]:
        db = self._db()
        try:
            return {r[0] for r in db.execute("SELECT digest FROM attachments")}
        finally:
            db.close()

    def _count(self, key: str) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def _fault(self) -> tuple[bool, bool]:
        """(fail this request, after doing its work)"""
        with self.lock:
            if self.skip > 0:
                self.skip -= 1
            elif self.fail > 0:
                self.fail -= 1
                return True, self.fail_after
        if self.fail_rate and random.random() < self.fail_rate:
            return True, random.random() < 0.5
        return False, False

    def _make_app(self) -> FastAPI:
        app = FastAPI()
        stub = self

        def err(status: int, code: str, **extra: Any) -> JSONResponse:
            headers = {"Retry-After": stub.retry_after} if stub.retry_after and status in (429, 503) else None
            return JSONResponse({"code": code, "message": "stub", **extra}, status_code=status, headers=headers)

        @app.middleware("http")
        async def faults(request: Request, call_next):
            path = request.url.path
            stub._count(f"{request.method} {'/v1/attachments' if path.startswith('/v1/attachments/') else path}")
            if stub.down:
                return err(503, "server_error")
            fail, after = stub._fault()
            if fail and not after:
                return err(500, "server_error")
            resp = await call_next(request)
            if fail:
                return err(500, "server_error")  # the work is done, the answer is lost
            return resp

        @app.get("/v1/services")
        def services(request: Request):
            if request.headers.get("If-None-Match") == stub.etag:
                return Response(status_code=304, headers={"ETag": stub.etag})
            return JSONResponse({"services": SERVICES}, headers={"ETag": stub.etag})

        @app.put("/v1/attachments/{digest}")
        async def put_attachment(digest: str, request: Request):
            data = await request.body()
            media = request.headers.get("Content-Type", "")
            if not SHA.fullmatch(digest) or hashlib.sha256(data).hexdigest() != digest or len(data) > 307200 \
                    or media not in ("image/jpeg", "image/png"):
                return err(422, "attachment_invalid")
            db = stub._db()
            try:
                new = db.execute("INSERT OR IGNORE INTO attachments VALUES (?,?,?)", (digest, media, len(data))).rowcount
            finally:
                db.close()
            body = {"sha256": digest, "size": len(data), "media_type": media, "replayed": not new}
            return JSONResponse(body, status_code=201 if new else 200)

        @app.post("/v1/filings")
        async def filings(request: Request):
            key = request.headers.get("Idempotency-Key")
            if not key:
                return err(400, "idempotency_key_required")
            raw = await request.body()
            try:
                body = FilingRequest.model_validate_json(raw)
            except Exception:
                return err(422, "invalid_request", fields=[])
            if body.service == "unknown_thing":
                return err(404, "unknown_service")
            body_hash = hashlib.sha256(raw).hexdigest()
            db = stub._db()
            try:
                row = db.execute("SELECT body_hash, answer FROM filings WHERE idempotency_key = ?", (key,)).fetchone()
                if row is not None:
                    if row[0] != body_hash:
                        return err(409, "idempotency_conflict")
                    return JSONResponse({**json.loads(row[1]), "replayed": True})
                if stub.forget_attachments_once:
                    stub.forget_attachments_once = False
                    db.execute("DELETE FROM attachments")
                have = {r[0] for r in db.execute("SELECT digest FROM attachments")}
                missing = [k for k, v in body.answers.items() if isinstance(v, str) and SHA.fullmatch(v)
                           and v not in have]
                if missing:
                    return err(409, "attachment_missing",
                               fields=[{"loc": ["answers", k], "type": "attachment_missing"} for k in missing])
                now = dt.datetime.now(dt.UTC)
                db.execute("BEGIN IMMEDIATE")
                seq = (db.execute("SELECT COALESCE(MAX(seq), 0) FROM filings").fetchone()[0]) + 1
                answer = {
                    "filing_id": f"F-{seq:06d}", "local_number": body.local_number, "service": body.service,
                    "title": "就业登记", "status": "received", "handling": "direct",
                    "due_date": (now + dt.timedelta(days=7)).date().isoformat(), "receipt_id": f"R-{seq:06d}",
                    "verify_url": f"https://127.0.0.1/v1/receipts/R-{seq:06d}/verify?sig=abcdefgh",
                    "lines": [["办件编号", f"F-{seq:06d}"], ["姓名", "王*兰"]],
                    "created_at": body.created_at.isoformat(), "received_at": now.isoformat(), "replayed": False,
                }
                db.execute("INSERT INTO filings VALUES (?,?,?,?,?,?)",
                           (seq, answer["filing_id"], body.local_number, key, body_hash, json.dumps(answer)))
                db.execute("COMMIT")
            finally:
                db.close()
            return JSONResponse(answer, status_code=201)

        @app.post("/v1/ratings")
        async def ratings(request: Request):
            key = request.headers.get("Idempotency-Key")
            try:
                RatingRequest.model_validate_json(await request.body())
            except Exception:
                return err(422, "invalid_request", fields=[])
            db = stub._db()
            try:
                row = db.execute("SELECT rating_id FROM ratings WHERE idempotency_key = ?", (key,)).fetchone()
                if row:
                    return {"rating_id": row[0], "replayed": True}
                rid = f"RT-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
                db.execute("INSERT INTO ratings VALUES (?,?)", (key, rid))
            finally:
                db.close()
            return JSONResponse({"rating_id": rid, "replayed": False}, status_code=201)

        return app


class StubServer:
    """The stub over mutual TLS in a thread; stop() and start() again on the same port (a backend that goes
    away and comes back)."""

    def __init__(self, data: Path, port: int = 0, fail_rate: float = 0.0) -> None:
        data.mkdir(parents=True, exist_ok=True)
        self.pki = ensure_demo_pki(data / "pki")
        self.stub = Stub(data, fail_rate)
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> StubServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.stub.app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1,
            ssl_certfile=str(self.pki.server_cert), ssl_keyfile=str(self.pki.server_key),
            ssl_ca_certs=str(self.pki.ca_cert), ssl_cert_reqs=ssl.CERT_REQUIRED,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("stub did not start")
            time.sleep(0.01)  # uvicorn gives no ready event
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(10)  # type: ignore[union-attr]
            self._server = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--verify-port", type=int, default=0)  # accepted for the backend's command line
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    server = StubServer(args.data, args.port, float(os.environ.get("FILING_STUB_FAIL_RATE", "0"))).start()
    print(f"backend listening on {server.url}", flush=True)
    print(f"  CA:          {server.pki.ca_cert}", flush=True)
    print(f"  client cert: {server.pki.client_cert}", flush=True)
    print(f"  client key:  {server.pki.client_key}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
