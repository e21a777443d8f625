"""The reference backend: the kiosk API for development, demos, tests and pilot sites.

Versioned under /v1, JSON everywhere, every error body is {"code": <stable code>, "message": <Chinese text>}.
Money is a decimal string ("238.50") so no float ever touches it.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import html
import json
import os
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import AwareDatetime, BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.idnumber import is_valid as ssn_is_valid
from api.privacy import mask_id, mask_name
from backend.db import FILING_ALREADY_REPORTED, PERSONAS_PATH, Database, IdempotencyConflict

API_VERSION = "1"
MODES = ("online", "offline", "error", "slow")
Mode = Literal["online", "offline", "error", "slow"]
ECARD_PREFIX = "ESSC1"
ECARD_TTL_SECONDS = 120
_SIG_BYTES = 16  # 128-bit truncated HMAC: short enough for a small receipt QR, far beyond guessing

_MONEY = r"^-?\d+\.\d{2}$"
_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
_KEY_PATTERN = r"^[A-Za-z0-9._:-]{8,128}$"
_FILING_ID_PATTERN = r"^[A-Za-z0-9-]{1,64}$"

CARD_LOSS_TITLE = "社保卡临时挂失"
CARD_LOSS_LINES = (
    ("挂失状态", "已临时挂失"),
    ("说明", "临时挂失有效期 5 个工作日，请尽快到窗口办理正式挂失和补卡"),
)


# --- models (they are the contract: backend/openapi.json is generated from them) ----------------------


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code")
    message: str = Field(description="Human-readable explanation (Simplified Chinese)")


class FieldProblem(BaseModel):
    loc: list[str]
    type: str


class InvalidRequestBody(ErrorBody):
    fields: list[FieldProblem] = Field(description="Where and what; the input itself is never echoed")


class Health(BaseModel):
    status: Literal["ok"]
    api_version: str
    time: AwareDatetime


class Payment(BaseModel):
    month: str = Field(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")
    amount: str = Field(pattern=_MONEY, description="Yuan, two decimals")
    status: str


class Pension(BaseModel):
    insurance_type: str
    status: str
    contribution_tier: str
    years_contributed: int
    account_balance: str = Field(pattern=_MONEY)
    receiving: bool
    monthly_amount: str | None = Field(default=None, pattern=_MONEY)
    payments: list[Payment] = Field(description="Last 12 monthly payments, newest first (empty if not receiving)")
    certification_status: str = Field(description="待遇资格认证 status")
    certification_due: dt.date | None


class ReceiptIn(BaseModel):
    terminal_id: str = Field(pattern=_ID_PATTERN)
    site_id: str = Field(pattern=_ID_PATTERN)
    service: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    ssn: str = Field(min_length=18, max_length=18)
    name: str | None = Field(default=None, max_length=64, description="Defaults to the name on record")
    summary: dict[str, Any] = Field(description="What was filed; 'title' is shown on the verification page")
    created_at: AwareDatetime = Field(description="When the terminal accepted the filing")


class Receipt(BaseModel):
    receipt_id: str
    verify_url: str = Field(description="Full https URL printed as the receipt's QR code")
    service: str
    terminal_id: str
    site_id: str
    created_at: AwareDatetime
    received_at: AwareDatetime
    replayed: bool = Field(description="True when this idempotency key had already created the receipt")


class Verification(BaseModel):
    genuine: bool
    reason: Literal["ok", "bad_signature", "unknown_receipt"]
    receipt_id: str | None = None
    service: str | None = None
    title: str | None = None
    name_masked: str | None = None
    id_masked: str | None = None
    created_at: AwareDatetime | None = None
    site_id: str | None = None
    terminal_id: str | None = None


class CardLossIn(BaseModel):
    terminal_id: str = Field(pattern=_ID_PATTERN)
    site_id: str = Field(pattern=_ID_PATTERN)
    ssn: str = Field(min_length=18, max_length=18, description="Card holder's ID number (GB 11643 check digit)")
    name: str | None = Field(
        default=None, max_length=64, description="As read from the credential; the receipt shows the holder on record"
    )
    credential: Literal["id_card", "sscard_pin", "ecard"] = Field(description="How the resident proved who they are")
    created_at: AwareDatetime = Field(description="When the terminal accepted the filing")

    @field_validator("ssn")
    @classmethod
    def _check_digit(cls, v: str) -> str:
        v = v.upper()
        if not ssn_is_valid(v):
            raise PydanticCustomError("invalid_ssn", "ID number check digit does not match")
        return v


class CardLossFiling(BaseModel):
    filing_id: str
    status: Literal["accepted", "already_reported"] = Field(
        description="accepted: this request filed it; already_reported: the card was already suspended by "
        "filing_id (an earlier report), nothing new was filed"
    )
    card_status: Literal["temporarily_suspended"]
    receipt_id: str
    verify_url: str = Field(description="Full https URL printed as the receipt's QR code")
    lines: list[tuple[str, str]] = Field(description="Label / value lines recorded on the receipt, to print")
    created_at: AwareDatetime = Field(description="When the terminal accepted the filing (of filing_id)")
    received_at: AwareDatetime = Field(description="When the backend recorded the filing (of filing_id)")
    replayed: bool = Field(description="True when this idempotency key had already been answered")


class FilingStatus(BaseModel):
    filing_id: str
    type: Literal["card_loss"]
    status: Literal["accepted"]
    created_at: AwareDatetime


class ECardResolveIn(BaseModel):
    code: str = Field(min_length=1, max_length=512)


class ECardPerson(BaseModel):
    name: str
    ssn: str


class DemoECardCode(BaseModel):
    code: str
    expires_at: AwareDatetime
    ttl_seconds: int


class Revoked(BaseModel):
    revoked: bool


# --- errors ------------------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, **extra}, status_code=status)


_GENERIC = {
    404: ("not_found", "没有这个地址"),
    405: ("method_not_allowed", "不支持这种请求方式"),
}


def _errors(*pairs: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {status: {"model": ErrorBody, "description": desc} for status, desc in pairs}
    out[422] = {"model": InvalidRequestBody, "description": "invalid_request: fields missing or malformed"}
    out.update(_SERVER_ERROR)
    return out


_SERVER_ERROR: dict[int | str, dict[str, Any]] = {500: {"model": ErrorBody, "description": "server_error"}}


# --- fault injection for demos and tests ---------------------------------------------------------------


class ServerControl:
    """Mode switch and request counter shared by the app and the server that runs it."""

    def __init__(self, slow_seconds: float = 10.0) -> None:
        self._lock = threading.Lock()
        self.mode: Mode = "online"
        self.slow_seconds = slow_seconds
        self._counts: Counter[tuple[str, str]] = Counter()
        self._failures: list[bool] = []
        self.generation = 0  # bumped when the server stops: pending slow answers give up

    def fail_next(self, count: int = 1, *, after_processing: bool = False) -> None:
        """The next `count` requests answer 500; after_processing: the app runs first and its answer is lost
        (a commit whose response never arrived: what idempotency keys are for)."""
        with self._lock:
            self._failures = [after_processing] * max(0, count)

    def take_failure(self) -> bool | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def cut(self) -> None:
        with self._lock:
            self.generation += 1

    def set_mode(self, mode: str, *, slow_seconds: float | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        with self._lock:
            self.mode = mode  # type: ignore[assignment]
            if slow_seconds is not None:
                self.slow_seconds = min(max(0.0, slow_seconds), 60.0)  # bounded: never hang a test run

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self._counts[(method, path)] += 1

    def request_count(self, path_prefix: str = "", method: str | None = None) -> int:
        with self._lock:
            return sum(
                n for (m, p), n in self._counts.items()
                if p.startswith(path_prefix) and (method is None or m == method)
            )

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()


class _ControlMiddleware:
    """Pure ASGI middleware: counts requests and applies the error / slow / offline modes."""

    def __init__(self, app: Any, control: ServerControl) -> None:
        self.app, self.control = app, control

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.control.record(scope["method"], scope["path"])
        mode = self.control.mode
        failure = self.control.take_failure()
        if failure is not None:
            if failure:
                async def _lost(message: Any) -> None:
                    return None

                await self.app(scope, receive, _lost)
            await _error(500, "server_error", "服务器内部错误（演示故障）")(scope, receive, send)
            return
        if mode == "error":
            await _error(500, "server_error", "服务器内部错误（演示故障）")(scope, receive, send)
            return
        if mode == "offline":  # only reached without a RunningServer (e.g. TestClient): it stops listening
            await _error(503, "offline", "服务暂不可用（演示离线）")(scope, receive, send)
            return
        if mode == "slow":
            # Polled so that stopping the server ends the wait instead of stalling its shutdown.
            loop = asyncio.get_running_loop()
            generation, deadline = self.control.generation, loop.time() + self.control.slow_seconds
            while loop.time() < deadline and self.control.generation == generation:
                await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
        await self.app(scope, receive, send)


# --- signing ----------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, purpose: str, message: str) -> str:
    return _b64(hmac.new(secret, f"{purpose}:{message}".encode(), hashlib.sha256).digest()[:_SIG_BYTES])


# --- the app ---------------------------------------------------------------------------------------


def create_app(
    db_path: str | os.PathLike[str],
    receipt_base_url: str,
    *,
    personas_path: str | os.PathLike[str] = PERSONAS_PATH,
    demo: bool = True,
    clock: Callable[[], float] = time.time,
    today: dt.date | None = None,
    ecard_ttl: int = ECARD_TTL_SECONDS,
    control: ServerControl | None = None,
    tz: dt.tzinfo = dt.timezone(dt.timedelta(hours=8)),
) -> FastAPI:
    """Build the app on a SQLite file (created and seeded from personas on first use).

    receipt_base_url: https origin printed in receipt QR codes (the server itself, or a public front).
    demo: also serve /v1/demo/* (signed e-card codes for the demo and tests).
    """
    if not receipt_base_url.startswith("https://"):
        raise ValueError("receipt_base_url must be an https:// URL")
    base_url = receipt_base_url.rstrip("/")
    db = Database(db_path)
    db.seed_personas(personas_path, today or dt.datetime.fromtimestamp(clock(), tz).date())
    receipt_secret = db.secret("receipt_hmac")
    ecard_secret = db.secret("ecard_hmac")
    control = control or ServerControl()

    def now() -> dt.datetime:
        return dt.datetime.fromtimestamp(clock(), tz)

    app = FastAPI(
        title="Village kiosk reference backend",
        version=API_VERSION,
        description="Kiosk API: pension status, receipts with verifiable QR codes, electronic SSC resolution.",
        docs_url=None,  # Swagger UI loads from a CDN; terminals and tests have no internet
        redoc_url=None,
    )
    app.state.db = db
    app.state.control = control
    app.add_middleware(_ControlMiddleware, control=control)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, message = _GENERIC.get(exc.status_code, ("http_error", "请求无法处理"))
        return _error(exc.status_code, code, message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Only where and what, never the input: it may hold an ID number.
        fields = [{"loc": [str(p) for p in e.get("loc", ())], "type": e.get("type", "")} for e in exc.errors()]
        return _error(422, "invalid_request", "请求内容不完整或格式不对", fields=fields)

    @app.get("/v1/health", response_model=Health, tags=["health"], responses=_SERVER_ERROR)
    def health() -> Health:
        return Health(status="ok", api_version=API_VERSION, time=now())

    @app.get(
        "/v1/pension/{ssn}",
        response_model=Pension,
        tags=["pension"],
        responses=_errors((404, "no_record: no pension record"), (400, "invalid_ssn")),
    )
    def pension(ssn: str = PathParam(min_length=18, max_length=18)) -> Pension:
        ssn = ssn.upper()
        if not ssn_is_valid(ssn):
            raise ApiError(400, "invalid_ssn", "身份证号码不正确")
        found = db.pension(ssn)
        if found is None:
            raise ApiError(404, "no_record", "没有查到养老保险记录")
        row, payments = found
        return Pension(
            insurance_type=row["insurance_type"],
            status=row["status"],
            contribution_tier=row["tier"],
            years_contributed=row["years_contributed"],
            account_balance=row["account_balance"],
            receiving=bool(row["receiving"]),
            monthly_amount=row["monthly_amount"],
            payments=[Payment(month=p["month"], amount=p["amount"], status=p["status"]) for p in payments],
            certification_status=row["certification_status"],
            certification_due=row["certification_due"],
        )

    @app.post(
        "/v1/receipts",
        response_model=Receipt,
        tags=["receipts"],
        responses=_errors(
            (400, "idempotency_key_required / invalid_ssn"),
            (409, "idempotency_conflict: key reused with a different body"),
        ),
    )
    def create_receipt(
        body: ReceiptIn,
        idempotency_key: str | None = Header(
            default=None,
            alias="Idempotency-Key",
            description="Required (8-128 of A-Z a-z 0-9 . _ : -); missing or malformed: 400 idempotency_key_required",
        ),
    ) -> Receipt:
        if not idempotency_key or not re.fullmatch(_KEY_PATTERN, idempotency_key):
            raise ApiError(400, "idempotency_key_required", "缺少有效的 Idempotency-Key 请求头")
        ssn = body.ssn.upper()
        if not ssn_is_valid(ssn):
            raise ApiError(400, "invalid_ssn", "身份证号码不正确")
        canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        received = now()
        try:
            row, replayed = db.create_receipt(
                idempotency_key=idempotency_key,
                request_hash=hashlib.sha256(canonical.encode()).hexdigest(),
                new_receipt_id=f"R{received:%Y%m%d}-{secrets.token_hex(5).upper()}",
                terminal_id=body.terminal_id,
                site_id=body.site_id,
                service=body.service,
                ssn=ssn,
                name=body.name if body.name is not None else db.person_name(ssn),
                summary=body.summary,
                created_at=body.created_at.isoformat(),
                received_at=received.isoformat(),
            )
        except IdempotencyConflict:
            raise ApiError(409, "idempotency_conflict", "该 Idempotency-Key 已用于另一份内容") from None
        sig = _sign(receipt_secret, "receipt", row.receipt_id)
        return Receipt(
            receipt_id=row.receipt_id,
            verify_url=f"{base_url}/v1/receipts/{row.receipt_id}/verify?sig={sig}",
            service=row.service,
            terminal_id=row.terminal_id,
            site_id=row.site_id,
            created_at=dt.datetime.fromisoformat(row.created_at),
            received_at=dt.datetime.fromisoformat(row.received_at),
            replayed=replayed,
        )

    @app.post(
        "/v1/filings/card-loss",
        response_model=CardLossFiling,
        tags=["filings"],
        responses=_errors(
            (400, "idempotency_key_required"),
            (404, "no_card: no social-security card is known for this person"),
            (409, "idempotency_conflict: key reused with a different body"),
        ),
    )
    def file_card_loss(
        body: CardLossIn,
        idempotency_key: str | None = Header(
            default=None,
            alias="Idempotency-Key",
            description="Required (8-128 of A-Z a-z 0-9 . _ : -); missing or malformed: 400 idempotency_key_required",
        ),
    ) -> CardLossFiling:
        """社保卡临时挂失: suspend the card and issue a receipt. Reporting an already suspended card again is
        not an error (the resident's goal is met): 200 with status already_reported and the earlier filing."""
        if not idempotency_key or not re.fullmatch(_KEY_PATTERN, idempotency_key):
            raise ApiError(400, "idempotency_key_required", "缺少有效的 Idempotency-Key 请求头")
        person = db.person_by_ssn(body.ssn)
        if person is None:
            raise ApiError(404, "no_card", "没有查到这个人的社保卡")
        canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        received = now()
        stamp = f"{received:%Y%m%d}-{secrets.token_hex(5).upper()}"
        try:
            got = db.file_card_loss(
                idempotency_key=idempotency_key,
                request_hash=hashlib.sha256(canonical.encode()).hexdigest(),
                new_filing_id=f"F{stamp}",
                new_receipt_id=f"R{stamp}",
                terminal_id=body.terminal_id,
                site_id=body.site_id,
                ssn=body.ssn,
                name=person["name"],  # the receipt names the card holder on record
                credential=body.credential,
                summary={"title": CARD_LOSS_TITLE, **dict(CARD_LOSS_LINES)},
                created_at=body.created_at.isoformat(),
                received_at=received.isoformat(),
            )
        except IdempotencyConflict:
            raise ApiError(409, "idempotency_conflict", "该 Idempotency-Key 已用于另一份内容") from None
        f = got.filing
        sig = _sign(receipt_secret, "receipt", f.receipt_id)
        return CardLossFiling(
            filing_id=f.filing_id,
            status="already_reported" if got.outcome == FILING_ALREADY_REPORTED else "accepted",
            card_status="temporarily_suspended",
            receipt_id=f.receipt_id,
            verify_url=f"{base_url}/v1/receipts/{f.receipt_id}/verify?sig={sig}",
            lines=list(CARD_LOSS_LINES),
            created_at=dt.datetime.fromisoformat(f.created_at),
            received_at=dt.datetime.fromisoformat(f.received_at),
            replayed=got.replayed,
        )

    @app.get(
        "/v1/filings/{filing_id}",
        response_model=FilingStatus,
        tags=["filings"],
        responses=_errors((404, "unknown_filing")),
    )
    def filing_status(filing_id: str = PathParam(pattern=_FILING_ID_PATTERN)) -> FilingStatus:
        f = db.filing(filing_id)
        if f is None:
            raise ApiError(404, "unknown_filing", "没有查到这份申请")
        return FilingStatus(
            filing_id=f.filing_id,
            type=f.type,  # type: ignore[arg-type]  # validated against the Literal by pydantic
            status=f.status,  # type: ignore[arg-type]
            created_at=dt.datetime.fromisoformat(f.created_at),
        )

    @app.get(
        "/v1/receipts/{receipt_id}/verify",
        response_model=Verification,
        tags=["receipts"],
        responses={
            200: {"content": {"text/html": {}}, "description": "JSON, or an HTML page for browsers"},
            **_errors(),
        },
    )
    def verify_receipt(
        request: Request,
        receipt_id: str = PathParam(max_length=64),
        sig: str = Query(default="", max_length=128),
    ) -> Any:
        expected = _sign(receipt_secret, "receipt", receipt_id)
        if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace")):
            result = Verification(genuine=False, reason="bad_signature")
        else:
            row = db.receipt(receipt_id)
            if row is None:
                result = Verification(genuine=False, reason="unknown_receipt")
            else:
                title = row.summary.get("title")
                result = Verification(
                    genuine=True,
                    reason="ok",
                    receipt_id=row.receipt_id,
                    service=row.service,
                    title=title if isinstance(title, str) else None,
                    name_masked=mask_name(row.name) if row.name else None,
                    id_masked=mask_id(row.ssn),
                    created_at=dt.datetime.fromisoformat(row.created_at),
                    site_id=row.site_id,
                    terminal_id=row.terminal_id,
                )
        if "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(_verification_page(result))
        return result

    @app.post(
        "/v1/ecard/resolve",
        response_model=ECardPerson,
        tags=["ecard"],
        responses=_errors((404, "ecard_unknown"), (410, "ecard_expired / ecard_revoked")),
    )
    def resolve_ecard(body: ECardResolveIn) -> ECardPerson:
        nonce, person_key, expires = _parse_ecard(ecard_secret, body.code)
        if nonce is None or person_key is None:
            raise ApiError(404, "ecard_unknown", "无法识别这个电子社保卡二维码")
        if db.ecard_revoked(nonce):
            raise ApiError(410, "ecard_revoked", "这个电子社保卡二维码已作废")
        if expires < clock():
            raise ApiError(410, "ecard_expired", "二维码已过期，请在手机上刷新后再扫")
        person = db.person_by_key(person_key)
        if person is None:
            raise ApiError(404, "ecard_unknown", "无法识别这个电子社保卡二维码")
        return ECardPerson(name=person["name"], ssn=person["ssn"])

    if demo:

        @app.get(
            "/v1/demo/ecard-code/{persona_key}",
            response_model=DemoECardCode,
            tags=["demo"],
            responses=_errors((404, "unknown_persona")),
        )
        def demo_ecard_code(
            persona_key: str = PathParam(pattern=r"^[A-Za-z0-9_]{1,32}$"),
            expired: bool = Query(False, description="issue a code that has already expired (demo of the expired screen)"),
        ) -> DemoECardCode:
            if db.person_by_key(persona_key) is None:
                raise ApiError(404, "unknown_persona", "没有这个演示人员")
            issued = int(clock()) - (ecard_ttl + 60 if expired else 0)
            payload = {"v": 1, "p": persona_key, "iat": issued, "exp": issued + ecard_ttl, "n": secrets.token_hex(6)}
            body = _b64(json.dumps(payload, separators=(",", ":")).encode())
            code = f"{ECARD_PREFIX}.{body}.{_sign(ecard_secret, 'ecard', body)}"
            return DemoECardCode(
                code=code, expires_at=dt.datetime.fromtimestamp(issued + ecard_ttl, tz), ttl_seconds=ecard_ttl
            )

        @app.post("/v1/demo/ecard-revoke", response_model=Revoked, tags=["demo"], responses=_errors((404, "ecard_unknown")))
        def demo_ecard_revoke(body: ECardResolveIn) -> Revoked:
            nonce, _, _ = _parse_ecard(ecard_secret, body.code)
            if nonce is None:
                raise ApiError(404, "ecard_unknown", "无法识别这个电子社保卡二维码")
            db.revoke_ecard(nonce, now().isoformat())
            return Revoked(revoked=True)

    return app


def _parse_ecard(secret: bytes, code: str) -> tuple[str | None, str | None, float]:
    """(nonce, person key, expiry) of a genuine code, or (None, None, 0) for anything else."""
    parts = code.strip().split(".")
    if len(parts) != 3 or parts[0] != ECARD_PREFIX:
        return None, None, 0.0
    _, body, sig = parts
    if not hmac.compare_digest(_sign(secret, "ecard", body).encode(), sig.encode("utf-8", "replace")):
        return None, None, 0.0
    try:
        payload = json.loads(_unb64(body))
        nonce, key, exp = payload["n"], payload["p"], float(payload["exp"])
    except (ValueError, KeyError, TypeError):
        return None, None, 0.0
    if not isinstance(nonce, str) or not isinstance(key, str):
        return None, None, 0.0
    return nonce, key, exp


def _verification_page(v: Verification) -> str:
    """A small page for a phone that scanned the receipt QR."""
    esc = html.escape
    if v.genuine:
        heading, colour = "✔ 回执真实有效", "#0a6b2d"
        rows = [
            ("办理事项", v.title or v.service or ""),
            ("姓名", v.name_masked or ""),
            ("身份证号", v.id_masked or ""),
            ("办理时间", v.created_at.strftime("%Y-%m-%d %H:%M") if v.created_at else ""),
            ("服务站", v.site_id or ""),
            ("终端", v.terminal_id or ""),
            ("回执编号", v.receipt_id or ""),
        ]
        body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(val)}</td></tr>" for k, val in rows)
        detail = f"<table>{body}</table>"
    else:
        heading, colour = "✘ 无法验证这张回执", "#a4111a"
        detail = "<p>这张回执的二维码不是本系统签发的，或已被改动。请到服务站或拨打 12333 核实。</p>"
    return (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'><title>回执验证</title>"
        "<style>body{font-family:sans-serif;font-size:20px;line-height:1.5;margin:1em}"
        f"h1{{color:{colour};font-size:28px}}th{{text-align:left;padding-right:1em}}</style></head>"
        f"<body><h1>{esc(heading)}</h1>{detail}</body></html>"
    )


def write_openapi(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the OpenAPI document of the app (built on a throwaway database) to path."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        spec = create_app(Path(tmp) / "openapi.sqlite3", "https://127.0.0.1").openapi()
    Path(path).write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return spec


__all__ = ["create_app", "ServerControl", "MODES", "write_openapi"]
