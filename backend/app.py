# pyright: reportInvalidTypeForm=false
# (FastAPI dependencies built per app inside create_app are named with local Annotated aliases)
"""The reference backend: the kiosk API for development, demos, tests and pilot sites.

Versioned under /v1, JSON everywhere, every error body is {"code": <ErrorCode>, "message": <Chinese text>}.
The models are the shared contract in api/models.py; backend/openapi.json is generated from this app.

Trust model (docs/security.md): the terminal is who its client certificate says (backend/identity.py); a
resident's data is reachable only through a session token that terminal opened for that person, which lives at
most 15 minutes and works from no other terminal. Receipts are written by the backend from what it recorded.
"""

# No `from __future__ import annotations`: FastAPI resolves the dependency annotations declared inside
# create_app at run time, and string annotations could not see those local names.

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import html
import json
import math
import os
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.enums import (
    AuditAction,
    CardStatus,
    Credential,
    ErrorCode,
    FilingState,
    Handling,
    Progress,
    Satisfaction,
    VerifyReason,
)
from api.models import (
    API_VERSION,
    AttachmentStored,
    AuditEntry,
    AuditLog,
    CardLossFiling,
    CardLossRequest,
    DemoECardCode,
    ECardResolveIn,
    ErrorBody,
    Filing,
    FilingList,
    FilingRequest,
    FilingSummary,
    Health,
    HelpRequest,
    HelpRequestList,
    HelpRequestRow,
    HelpRequestStored,
    InvalidRequestBody,
    Payment,
    Pension,
    PensionRequest,
    Person,
    RatingRequest,
    RatingStored,
    RatingSummary,
    Receipt,
    ReceiptRequest,
    Revoked,
    ServiceCatalog,
    SessionOpen,
    SessionOpened,
    Verification,
)
from api.patterns import FILING_ID_PATTERN, ID_PATTERN, IDEMPOTENCY_KEY_PATTERN, SHA256_PATTERN
from api.privacy import mask_id, mask_name
from api.workdays import add_working_days
from backend.attachments import MAX_ATTACHMENT, MEDIA_TYPES, AttachmentProblem, check_image
from backend.catalog import CATALOG_PATH, Catalog, load_catalog, reaches
from backend.db import (
    FILING_ALREADY_REPORTED,
    PERSONAS_PATH,
    Database,
    ECardUsed,
    FilingConflict,
    FilingRow,
    IdempotencyConflict,
    NewFiling,
    SessionRow,
    key_file,
)
from backend.guard import MAX_BODY, BodyGuard
from backend.identity import Terminal, terminal_of
from backend.ratelimit import TokenBuckets
from backend.worklist import STATUS_TEXT, create_worklist_app, rating_summary_of

MODES = ("online", "offline", "error", "slow")
Mode = Literal["online", "offline", "error", "slow"]
ECARD_PREFIX = "ESSC1"
ECARD_TTL_SECONDS = 120
SESSION_TTL_SECONDS = 15 * 60
SESSION_BURST, SESSION_INTERVAL = 5, 3.0  # per terminal: a real counter serves one resident every few minutes
VERIFY_BURST, VERIFY_INTERVAL = 10, 1.0  # per client address on the public verify listener
# 请工作人员帮助: a kiosk asks at most once in two minutes; more than this from one terminal is a stuck button or
# a game, and a flood would bury the county's list. Counted in the database: a restart does not reset it.
HELP_LIMIT, HELP_WINDOW = 10, dt.timedelta(minutes=10)
# Every receipt or filing needs a live session, so created_at lies between the session's opening and now, give
# or take a terminal clock's drift. Generous on purpose: verification shows the backend's own received_at, so a
# village terminal whose clock is some minutes off must still serve people; more than an hour is not a clock.
CLOCK_DRIFT = dt.timedelta(hours=1)
# A rating queued offline in a terminal's outbox is sent when the network returns: days late, at most this many.
# (A filing is never refused for its age: the terminal vouches for when the resident confirmed it.)
QUEUED_FOR = dt.timedelta(days=30)
PRUNE_EVERY = 60.0  # seconds between sweeps that forget expired sessions' personal data
_SIG_BYTES = 16  # 128-bit truncated HMAC: short enough for a small receipt QR, far beyond guessing

PENSION_TITLE = "养老金查询"
CARD_LOSS_TITLE = "社保卡临时挂失"
CARD_LOSS_LINES = (
    ("挂失状态", "已临时挂失"),
    ("说明", "临时挂失有效期 5 个工作日，请尽快到窗口办理正式挂失和补卡"),
)
_NO_RECORD = {"no_record": True}


# --- errors ------------------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(
        self, status: int, code: ErrorCode, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(code)
        self.status, self.code, self.message, self.headers, self.extra = status, code, message, headers, extra


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, **extra}, status_code=status, headers=headers)


_GENERIC = {
    404: (ErrorCode.NOT_FOUND, "没有这个地址"),
    405: (ErrorCode.METHOD_NOT_ALLOWED, "不支持这种请求方式"),
}
_BEARER = {"WWW-Authenticate": "Bearer"}

_SERVER_ERROR: dict[int | str, dict[str, Any]] = {500: {"model": ErrorBody, "description": "server_error"}}
_COMMON: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "body_too_large: more than 64 KiB"},
    **_SERVER_ERROR,
}
_AUTH: tuple[tuple[int, str], ...] = (
    (401, "certificate_required / token_required / token_invalid / token_expired"),
    (403, "wrong_terminal: the token was opened with another certificate; person_mismatch; certificate_revoked"),
)


def _errors(*pairs: tuple[int, str], auth: bool = False) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for status, desc in (*(_AUTH if auth else ()), *pairs):
        if status in out:
            desc = f"{out[status]['description']}; {desc}"
        out[status] = {"model": ErrorBody, "description": desc}
    out[422] = {"model": InvalidRequestBody, "description": "invalid_request: fields missing or malformed"}
    out.update(_COMMON)
    return out


def _field_error(loc: tuple[str, ...], kind: str) -> ApiError:
    return ApiError(
        422, ErrorCode.INVALID_REQUEST, "请求内容不完整或格式不对", fields=[{"loc": list(loc), "type": kind}]
    )


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


def _token_hash(token: str) -> str:
    # Only the hash is stored: a copy of the database opens no session.
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _install_error_handlers(app: FastAPI, *, only_not_found: bool = False) -> None:
    """only_not_found: the public listener answers 404 for anything but its one route (no method hints)."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = 404 if only_not_found and exc.status_code == 405 else exc.status_code
        code, message = _GENERIC.get(status, (ErrorCode.HTTP_ERROR, "请求无法处理"))
        return _error(status, code, message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Only where and what, never the input: it may hold an ID number.
        fields = [{"loc": [str(p) for p in e.get("loc", ())], "type": e.get("type", "")} for e in exc.errors()]
        return _error(422, ErrorCode.INVALID_REQUEST, "请求内容不完整或格式不对", fields=fields)


class _RateLimit:
    """Pure ASGI middleware: a request that key_of() names spends a token of that key before anything reads its
    body, so malformed and refused attempts cost the same; no token left: 429 with Retry-After."""

    def __init__(self, app: Any, buckets: TokenBuckets, key_of: Any, message: str) -> None:
        self.app, self.buckets, self.key_of, self.message = app, buckets, key_of, message

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        key = self.key_of(scope) if scope["type"] == "http" else None
        wait = None if key is None else self.buckets.take(key)
        if wait is not None:
            response = _error(429, ErrorCode.RATE_LIMITED, self.message, {"Retry-After": str(wait)})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _client_address(scope: dict[str, Any]) -> str:
    """The public verify listener counts every request of a client address (the TCP peer)."""
    client = scope.get("client")
    return client[0] if client else "-"


def _opening_terminal(scope: dict[str, Any]) -> str | None:
    """POST /v1/sessions spends a token of the calling terminal (its certificate CN); without a certificate
    nothing is spent: the endpoint answers 401."""
    if scope["method"] != "POST" or scope["path"] != "/v1/sessions":
        return None
    t = terminal_of(scope)
    return None if t is None else t.terminal_id


_bearer = HTTPBearer(auto_error=False, description="Session token from POST /v1/sessions (this terminal only)")


def _money_text(value: Any) -> str:
    return f"{value}元"


def _pension_lines(p: dict[str, Any]) -> list[tuple[str, str]]:
    """Receipt lines of a recorded pension answer (Chinese: the receipt is the official record)."""
    if p.get("no_record"):
        return [("查询结果", "暂无养老保险参保记录")]
    lines = [("险种", p["insurance_type"]), ("参保状态", p["status"]), ("累计缴费年限", f"{p['years_contributed']}年")]
    if p.get("receiving") and p.get("monthly_amount") is not None:
        lines.append(("月领取金额", _money_text(p["monthly_amount"])))
    lines.append(("个人账户余额", _money_text(p["account_balance"])))
    if p.get("certification_status"):
        due = f"（{p['certification_due']}前）" if p.get("certification_due") else ""
        lines.append(("资格认证", f"{p['certification_status']}{due}"))
    return lines


def _filing_lines(
    *, filing_id: str, title: str, name: str | None, ssn: str, forwarded: bool, due: dt.date, days: int,
    local_number: str | None, phone: str, supervision: str, attached: list[str],
) -> list[list[str]]:
    """Receipt lines of a filing (masked: a receipt may be lost or photographed)."""
    lines = [["受理编号", filing_id], ["事项", title]]
    if name:
        lines.append(["姓名", mask_name(name)])
    lines.append(["身份证号", mask_id(ssn)])
    if attached:
        lines.append(["提交材料", "、".join(attached)])
    lines.append(["办理方式", "转乡镇办理" if forwarded else "本站办理"])
    lines.append(["承诺办结", "当场办结" if days == 0 else f"{due.year}年{due.month}月{due.day}日前（{days}个工作日）"])
    if local_number:
        lines.append(["本地编号", local_number])
    lines.append(["咨询电话", phone])
    lines.append(["监督电话", supervision])
    return lines


def _stored_lines(summary: dict[str, Any]) -> list[tuple[str, str]]:
    raw = summary.get("lines")
    if isinstance(raw, list):
        return [(str(a), str(b)) for a, b in raw]
    return [(k, str(v)) for k, v in summary.items() if k != "title"]  # receipts of older versions


# --- the app ---------------------------------------------------------------------------------------


def create_app(
    db_path: str | os.PathLike[str],
    receipt_base_url: str,
    *,
    personas_path: str | os.PathLike[str] = PERSONAS_PATH,
    demo: bool = False,
    seed_demo_people: bool | None = None,
    clock: Callable[[], float] = time.time,
    today: dt.date | None = None,
    ecard_ttl: int = ECARD_TTL_SECONDS,
    control: ServerControl | None = None,
    tz: dt.tzinfo = dt.timezone(dt.timedelta(hours=8)),
    keys_dir: str | os.PathLike[str] | None = None,
    session_burst: int = SESSION_BURST,
    session_interval: float = SESSION_INTERVAL,
    verify_burst: int = VERIFY_BURST,
    verify_interval: float = VERIFY_INTERVAL,
    catalog_path: str | os.PathLike[str] = CATALOG_PATH,
    holidays: frozenset[dt.date] = frozenset(),
) -> FastAPI:
    """Build the app on a SQLite file (created and seeded from personas on first use).

    receipt_base_url: https origin printed in receipt QR codes (normally the public verify listener).
    demo: also serve /v1/demo/* (signed e-card codes for the demo and tests).
    seed_demo_people: insert the fictional people of personas_path (default: the value of demo); a production
    backend has none.
    keys_dir: where the signing keys live (default: `keys` beside the database file; the clerk password too).
    catalog_path: the service catalog (data file); holidays: dates that are not working days (due dates).
    The public verify listener's app (only the verify route) is `app.state.verify_app`; the township worklist's
    (backend/worklist.py) is `app.state.worklist_app`.
    """
    if not receipt_base_url.startswith("https://"):
        raise ValueError("receipt_base_url must be an https:// URL")
    base_url = receipt_base_url.rstrip("/")
    db = Database(db_path)
    if demo if seed_demo_people is None else seed_demo_people:
        db.seed_personas(personas_path, today or dt.datetime.fromtimestamp(clock(), tz).date())
    keys = Path(keys_dir) if keys_dir is not None else Path(db_path).parent / "keys"
    catalog: Catalog = load_catalog(catalog_path)
    receipt_secret = key_file(keys, "receipt_hmac", legacy=db)
    ecard_secret = key_file(keys, "ecard_hmac", legacy=db)
    control = control or ServerControl()
    session_limit = TokenBuckets(session_burst, session_interval, clock)
    verify_limit = TokenBuckets(verify_burst, verify_interval, clock)

    def now() -> dt.datetime:
        return dt.datetime.fromtimestamp(clock(), tz)

    def verify_url(receipt_id: str) -> str:
        return f"{base_url}/v1/receipts/{receipt_id}/verify?sig={_sign(receipt_secret, 'receipt', receipt_id)}"

    def check_created_at(value: dt.datetime, s: SessionRow) -> None:
        opened = dt.datetime.fromtimestamp(s.opened_at, tz)
        if value > now() + CLOCK_DRIFT or value < opened - CLOCK_DRIFT:
            raise _field_error(("body", "created_at"), "created_at_out_of_range")

    def check_key(key: str | None) -> str:
        if not key or not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key):
            raise ApiError(400, ErrorCode.IDEMPOTENCY_KEY_REQUIRED, "缺少有效的 Idempotency-Key 请求头")
        return key

    # --- who is calling -----------------------------------------------------------------------------

    def terminal(request: Request) -> Terminal:
        t = terminal_of(request.scope)
        if t is None:
            raise ApiError(401, ErrorCode.CERTIFICATE_REQUIRED, "需要有效的终端证书")
        if db.certificate_revoked(t.fingerprint):
            raise ApiError(403, ErrorCode.CERTIFICATE_REVOKED, "本终端证书已被吊销，请联系县级技术人员")
        return t

    last_prune = [0.0]
    prune_lock = threading.Lock()

    def prune_expired() -> None:
        # On authenticated requests, at most once a minute: expired sessions keep no personal data for long
        # even when no new session is opened (opening prunes too).
        t = clock()
        with prune_lock:
            if t - last_prune[0] < PRUNE_EVERY:
                return
            last_prune[0] = t
        db.prune_sessions(t)

    def session(
        t: Annotated[Terminal, Depends(terminal)],
        auth: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> SessionRow:
        prune_expired()
        if auth is None:
            raise ApiError(401, ErrorCode.TOKEN_REQUIRED, "请先开始办理（缺少会话令牌）", headers=_BEARER)
        s = db.session(_token_hash(auth.credentials))
        if s is None or s.closed:
            raise ApiError(401, ErrorCode.TOKEN_INVALID, "会话令牌无效，请重新开始办理", headers=_BEARER)
        if (s.terminal_id, s.site_id, s.cert_fingerprint) != (t.terminal_id, t.site_id, t.fingerprint):
            raise ApiError(403, ErrorCode.WRONG_TERMINAL, "这个会话不属于本终端")
        if s.expires_at <= clock():
            raise ApiError(401, ErrorCode.TOKEN_EXPIRED, "会话已过期，请重新开始办理", headers=_BEARER)
        return s

    Session = Annotated[SessionRow, Depends(session)]

    def optional_session(
        t: Annotated[Terminal, Depends(terminal)],
        auth: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> SessionRow | None:
        """A token is optional (a filing queued offline outlives its session), but one that is sent must be
        good: valid, live and this terminal's."""
        return None if auth is None else session(t, auth)

    MaybeSession = Annotated[SessionRow | None, Depends(optional_session)]
    CallingTerminal = Annotated[Terminal, Depends(terminal)]
    IdempotencyKey = Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Required (8-128 of A-Z a-z 0-9 . _ : -); missing or malformed: 400 idempotency_key_required",
        ),
    ]

    app = FastAPI(
        title="Village kiosk reference backend",
        version=API_VERSION,
        description="Kiosk API over mutual TLS: sessions, pension status, backend-written receipts with verifiable "
        "QR codes, card-loss filings, the resident's access log.",
        docs_url=None,  # Swagger UI loads from a CDN; terminals and tests have no internet
        redoc_url=None,
    )
    app.state.db = db
    app.state.control = control
    app.state.session_limit = session_limit
    # The last added runs first: the session-opening limit runs before the body guard, so a refused body costs
    # a token too.
    app.state.catalog = catalog
    app.add_middleware(BodyGuard, max_body=MAX_BODY, raw=(("PUT", "/v1/attachments/", MAX_ATTACHMENT),))
    app.add_middleware(
        _RateLimit, buckets=session_limit, key_of=_opening_terminal, message="本终端开始服务过于频繁，请稍后再试"
    )
    app.add_middleware(_ControlMiddleware, control=control)
    _install_error_handlers(app)

    @app.get("/v1/health", response_model=Health, tags=["health"], responses=_SERVER_ERROR)
    def health() -> Health:
        return Health(status="ok", api_version=API_VERSION, time=now())

    # --- sessions -----------------------------------------------------------------------------------

    def resolve_code(code: str) -> tuple[str, str, str, float]:
        nonce, person_key, expires = _parse_ecard(ecard_secret, code)
        if nonce is None or person_key is None:
            raise ApiError(404, ErrorCode.ECARD_UNKNOWN, "无法识别这个电子社保卡二维码")
        if db.ecard_revoked(nonce):
            raise ApiError(410, ErrorCode.ECARD_REVOKED, "这个电子社保卡二维码已作废")
        if db.ecard_used(nonce):
            raise _ecard_used()
        if expires < clock():
            raise ApiError(410, ErrorCode.ECARD_EXPIRED, "二维码已过期，请在手机上刷新后再扫")
        person = db.person_by_key(person_key)
        if person is None:
            raise ApiError(404, ErrorCode.ECARD_UNKNOWN, "无法识别这个电子社保卡二维码")
        return person["ssn"], person["name"], nonce, expires

    def _ecard_used() -> ApiError:
        return ApiError(410, ErrorCode.ECARD_REVOKED, "这个电子社保卡二维码已经用过，请在手机上刷新后再扫")

    @app.post(
        "/v1/sessions",
        status_code=201,
        response_model=SessionOpened,
        tags=["sessions"],
        responses=_errors(
            (401, "certificate_required"),
            (403, "certificate_revoked"),
            (404, "ecard_unknown"),
            (410, "ecard_expired / ecard_revoked (also: the code already opened a session; a code opens one)"),
            (429, "rate_limited: header Retry-After (seconds); 5 at once, then one per 3 s per terminal"),
        ),
    )
    def open_session(body: SessionOpen, t: Annotated[Terminal, Depends(terminal)]) -> SessionOpened:
        """Start serving one resident: the token opens their data, from this terminal only, for 15 minutes.
        An e-card code opens one session: a second use, from any terminal, is 410 ecard_revoked."""
        nonce: str | None = None
        code_expires = 0.0
        if body.credential is Credential.ECARD:
            assert body.code is not None  # SessionOpen checks it
            ssn, name, nonce, code_expires = resolve_code(body.code)
            recorded = name
        else:
            assert body.ssn is not None
            ssn = body.ssn
            on_file = db.person_by_ssn(ssn)
            # A name the terminal read is echoed back, never recorded: nothing the backend signs may carry it.
            recorded = on_file["name"] if on_file is not None else ""
            name = recorded or body.name or ""
        token = secrets.token_urlsafe(32)
        opened = clock()
        expires = opened + SESSION_TTL_SECONDS
        try:
            db.open_session(
                token_hash=_token_hash(token), terminal_id=t.terminal_id, site_id=t.site_id,
                cert_fingerprint=t.fingerprint, credential=body.credential,
                ssn=ssn, name=recorded, opened_at=opened, expires_at=expires, at=now().isoformat(),
                ecard_nonce=nonce, ecard_expires=code_expires,
            )
        except ECardUsed:
            raise _ecard_used() from None
        return SessionOpened(
            token=token,
            expires_at=dt.datetime.fromtimestamp(expires, tz),
            credential=body.credential,
            person=Person(name=name, ssn=ssn),
        )

    @app.delete(
        "/v1/sessions/current",
        status_code=204,
        response_class=Response,
        tags=["sessions"],
        responses=_errors(auth=True),
    )
    def close_session(s: Session) -> Response:
        db.close_session(s, now().isoformat())
        return Response(status_code=204)

    # --- pension ------------------------------------------------------------------------------------

    @app.post(
        "/v1/pension",
        response_model=Pension,
        tags=["pension"],
        responses=_errors((404, "no_record: no pension record"), auth=True),
    )
    def pension(s: Session, body: PensionRequest | None = None) -> Pension:
        """The session's person's pension status. The answer is recorded: a receipt vouches for it."""
        if body is not None and body.ssn is not None and body.ssn != s.ssn:
            raise ApiError(403, ErrorCode.PERSON_MISMATCH, "只能查询本人的信息")
        found = db.pension(s.ssn)
        if found is None:
            db.remember_pension(s, _NO_RECORD, now().isoformat())
            raise ApiError(404, ErrorCode.NO_RECORD, "没有查到养老保险记录")
        row, payments = found
        answer = Pension(
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
        db.remember_pension(s, answer.model_dump(mode="json"), now().isoformat())
        return answer

    @app.get(
        "/v1/pension/{ssn}",
        tags=["retired"],
        responses=_errors((410, "gone: use POST /v1/pension with a session token"), auth=True),
        deprecated=True,
    )
    def pension_by_path(s: Session, ssn: str) -> None:
        """Retired (it put an ID number in the URL): refuses, 401 without a token, 410 with one."""
        raise ApiError(410, ErrorCode.GONE, "此接口已停用，请使用 POST /v1/pension")

    # --- receipts -----------------------------------------------------------------------------------

    @app.post(
        "/v1/receipts",
        response_model=Receipt,
        tags=["receipts"],
        responses=_errors(
            (400, "idempotency_key_required"),
            (409, "nothing_to_vouch: nothing recorded in this session; idempotency_conflict: key reused"),
            auth=True,
        ),
    )
    def create_receipt(body: ReceiptRequest, s: Session, idempotency_key: IdempotencyKey = None) -> Receipt:
        """A receipt for what the backend answered in this session; it writes the title and lines itself."""
        key = check_key(idempotency_key)
        check_created_at(body.created_at, s)
        if s.pension is None:
            raise ApiError(409, ErrorCode.NOTHING_TO_VOUCH, "本次办理还没有可出具回执的查询结果")
        lines = _pension_lines(s.pension)
        canonical = json.dumps(
            {
                "terminal": s.terminal_id, "site": s.site_id, "ssn": s.ssn, "service": str(body.service),
                "created_at": body.created_at.isoformat(), "lines": lines,
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        received = now()
        try:
            row, replayed = db.create_receipt(
                idempotency_key=key,
                request_hash=hashlib.sha256(canonical.encode()).hexdigest(),
                new_receipt_id=f"R{received:%Y%m%d}-{secrets.token_hex(5).upper()}",
                terminal_id=s.terminal_id,
                site_id=s.site_id,
                service=str(body.service),
                ssn=s.ssn,
                name=db.person_name(s.ssn),  # only a name on record: none for a person the backend does not know
                summary={"title": PENSION_TITLE, "lines": lines},
                created_at=body.created_at.isoformat(),
                received_at=received.isoformat(),
                audit_credential=s.credential,
            )
        except IdempotencyConflict:
            raise ApiError(409, ErrorCode.IDEMPOTENCY_CONFLICT, "该 Idempotency-Key 已用于另一份内容") from None
        title = row.summary.get("title")
        return Receipt(
            receipt_id=row.receipt_id,
            verify_url=verify_url(row.receipt_id),
            service=row.service,
            title=title if isinstance(title, str) else "",
            terminal_id=row.terminal_id,
            site_id=row.site_id,
            created_at=dt.datetime.fromisoformat(row.created_at),
            received_at=dt.datetime.fromisoformat(row.received_at),
            replayed=replayed,
            lines=_stored_lines(row.summary),
        )

    # --- filings ------------------------------------------------------------------------------------

    @app.post(
        "/v1/filings/card-loss",
        response_model=CardLossFiling,
        tags=["filings"],
        responses=_errors(
            (400, "idempotency_key_required"),
            (404, "no_card: no social-security card is known for this person"),
            (409, "idempotency_conflict: key reused with a different body"),
            auth=True,
        ),
    )
    def file_card_loss(body: CardLossRequest, s: Session, idempotency_key: IdempotencyKey = None) -> CardLossFiling:
        """社保卡临时挂失 of the session's person (whatever credential opened the session). Reporting an already
        suspended card again is not an error: 200 with status already_reported and the earlier filing."""
        key = check_key(idempotency_key)
        check_created_at(body.created_at, s)
        person = db.person_by_ssn(s.ssn)
        if person is None:
            raise ApiError(404, ErrorCode.NO_CARD, "没有查到这个人的社保卡")
        canonical = json.dumps(
            {
                "terminal": s.terminal_id, "site": s.site_id, "ssn": s.ssn, "credential": s.credential,
                "created_at": body.created_at.isoformat(),
            },
            sort_keys=True,
        )
        received = now()
        stamp = f"{received:%Y%m%d}-{secrets.token_hex(5).upper()}"
        try:
            got = db.file_card_loss(
                idempotency_key=key,
                request_hash=hashlib.sha256(canonical.encode()).hexdigest(),
                new_filing_id=f"F{stamp}",
                new_receipt_id=f"R{stamp}",
                terminal_id=s.terminal_id,
                site_id=s.site_id,
                ssn=s.ssn,
                name=person["name"],  # the receipt names the card holder on record
                credential=s.credential,
                summary={"title": CARD_LOSS_TITLE, "lines": [list(x) for x in CARD_LOSS_LINES]},
                created_at=body.created_at.isoformat(),
                received_at=received.isoformat(),
            )
        except IdempotencyConflict:
            raise ApiError(409, ErrorCode.IDEMPOTENCY_CONFLICT, "该 Idempotency-Key 已用于另一份内容") from None
        f = got.filing
        return CardLossFiling(
            filing_id=f.filing_id,
            status=FilingState.ALREADY_REPORTED if got.outcome == FILING_ALREADY_REPORTED else FilingState.ACCEPTED,
            card_status=CardStatus.TEMPORARILY_SUSPENDED,
            receipt_id=f.receipt_id,
            verify_url=verify_url(f.receipt_id),
            lines=list(CARD_LOSS_LINES),
            created_at=dt.datetime.fromisoformat(f.created_at),
            received_at=dt.datetime.fromisoformat(f.received_at),
            replayed=got.replayed,
        )

    # --- the catalog (GET /v1/services) -------------------------------------------------------------

    @app.get(
        "/v1/services",
        response_model=ServiceCatalog,
        tags=["filings"],
        responses={
            304: {"description": "Not modified: If-None-Match names the current ETag"},
            **_errors((401, "certificate_required"), (403, "certificate_revoked")),
        },
    )
    def services(
        t: CallingTerminal,
        if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
    ) -> Response:
        """The services this backend files, with their 八公开 and form schemas. Strong ETag: a terminal sends
        If-None-Match with the one it cached and gets 304 when nothing changed."""
        headers = {"ETag": catalog.etag, "Cache-Control": "no-cache"}
        if if_none_match is not None:
            offered = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
            if catalog.etag in offered or "*" in offered:
                return Response(status_code=304, headers=headers)
        return Response(catalog.body, media_type="application/json", headers=headers)

    # --- attachments --------------------------------------------------------------------------------

    @app.put(
        "/v1/attachments/{sha256}",
        status_code=201,
        response_model=AttachmentStored,
        tags=["filings"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {m: {"schema": {"type": "string", "contentMediaType": m}} for m in MEDIA_TYPES},
            }
        },
        responses={
            200: {"model": AttachmentStored, "description": "already stored (replayed)"},
            **_errors((401, "certificate_required"), (403, "certificate_revoked")),
            413: {"model": ErrorBody, "description": "attachment_invalid: more than 307,200 bytes"},
            422: {
                "model": InvalidRequestBody,
                "description": "attachment_invalid: type not image/jpeg or image/png, digest or magic bytes do "
                "not match, the image does not decode; invalid_request: bad digest in the path",
            },
        },
    )
    async def put_attachment(
        request: Request,
        response: Response,
        t: CallingTerminal,
        sha256: str = PathParam(pattern=SHA256_PATTERN, description="SHA-256 of the bytes, lower-case hex"),
        content_type: Annotated[str | None, Header(alias="Content-Type")] = None,
    ) -> AttachmentStored:
        """Store an attachment (document photo, face photo, signature) under its digest, before the filing that
        names it. Sending the same bytes again is harmless (200, replayed): an interrupted upload is resent."""
        data = await request.body()
        try:
            media_type = await asyncio.to_thread(check_image, sha256, content_type, data)
        except AttachmentProblem as e:
            raise ApiError(
                422, ErrorCode.ATTACHMENT_INVALID, e.message, fields=[{"loc": list(e.loc), "type": e.kind}]
            ) from None
        size, stored_type, replayed = await asyncio.to_thread(
            db.store_attachment, sha256, media_type, data, now().isoformat()
        )
        response.status_code = 200 if replayed else 201
        return AttachmentStored(sha256=sha256, size=size, media_type=stored_type, replayed=replayed)

    # --- filings ------------------------------------------------------------------------------------

    def title_of(service: str) -> str:
        found = catalog.get(service)
        return found.info.title if found is not None else (CARD_LOSS_TITLE if service == "card_loss" else service)

    def filing_answer(f: FilingRow, replayed: bool) -> Filing:
        receipt = db.receipt(f.receipt_id)
        lines = _stored_lines(receipt.summary) if receipt is not None else []
        return Filing(
            filing_id=f.filing_id,
            local_number=f.local_number,
            service=f.service,
            title=title_of(f.service),
            status=Progress(f.progress),
            handling=Handling(f.handling),
            due_date=dt.date.fromisoformat(f.due_date),
            receipt_id=f.receipt_id,
            verify_url=verify_url(f.receipt_id),
            lines=lines,
            created_at=dt.datetime.fromisoformat(f.created_at),
            received_at=dt.datetime.fromisoformat(f.received_at),
            replayed=replayed,
        )

    def summary_of(f: FilingRow) -> FilingSummary:
        return FilingSummary(
            filing_id=f.filing_id,
            local_number=f.local_number,
            service=f.service,
            title=title_of(f.service),
            status=Progress(f.progress),
            handling=Handling(f.handling),
            reason=f.reason,
            due_date=dt.date.fromisoformat(f.due_date),
            created_at=dt.datetime.fromisoformat(f.created_at),
            updated_at=dt.datetime.fromisoformat(f.updated_at),
        )

    def check_queued_at(value: dt.datetime, loc: tuple[str, ...] = ("body", "created_at")) -> None:
        current = now()
        if value > current + CLOCK_DRIFT or value < current - QUEUED_FOR:
            raise _field_error(loc, "created_at_out_of_range")

    def conflict() -> ApiError:
        return ApiError(409, ErrorCode.IDEMPOTENCY_CONFLICT, "该 Idempotency-Key 已用于另一份内容")

    @app.post(
        "/v1/filings",
        status_code=201,
        response_model=Filing,
        tags=["filings"],
        responses={
            200: {"model": Filing, "description": "replayed: this key, or this terminal's local number, filed it"},
            **_errors(
                (400, "idempotency_key_required"),
                (403, "level_too_low: the credential does not reach the service's level"),
                (404, "unknown_service; no_card: card_loss for a person without a card"),
                (409, "attachment_missing (fields name the answer): upload it, send again; idempotency_conflict"),
                auth=True,
            ),
        },
    )
    def file_service(
        body: FilingRequest,
        response: Response,
        t: CallingTerminal,
        s: MaybeSession,
        idempotency_key: IdempotencyKey = None,
    ) -> Filing:
        """File a confirmed filing from the terminal's outbox. The client certificate vouches for the terminal
        and the terminal for the person it read (a queued filing outlives its session); a session token, when
        sent, must be this person's. Safe to repeat: the same key answers the same filing (replayed), and so
        does the terminal's local number under another key: the local number printed on an offline receipt
        IS the filing, so it is never filed twice.

        created_at is when the resident confirmed, as the terminal says (docs/filings.md): it is not refused
        for its age (a terminal offline for weeks still files what it promised; received_at is the backend's
        own), and one in the future (a terminal clock that runs ahead) is kept as received_at instead."""
        key = check_key(idempotency_key)
        person = body.person
        if s is not None and s.ssn != person.ssn:
            raise ApiError(403, ErrorCode.PERSON_MISMATCH, "只能为本人办理")
        canonical = json.dumps(
            {"terminal": t.terminal_id, "site": t.site_id, "body": body.model_dump(mode="json")},
            sort_keys=True, ensure_ascii=False,
        )
        request_hash = hashlib.sha256(canonical.encode()).hexdigest()
        seen = db.filing_by_key(key)
        if seen is not None:
            if seen[0] != request_hash:
                raise conflict()
            response.status_code = 200
            return filing_answer(seen[1], replayed=True)
        service = catalog.get(body.service)
        if service is None:
            raise ApiError(404, ErrorCode.UNKNOWN_SERVICE, "没有这项服务")
        info = service.info
        if not reaches(person.credential, info.level):
            raise ApiError(403, ErrorCode.LEVEL_TOO_LOW, "这项服务需要刷社保卡并输入密码，或使用电子社保卡")
        problems = service.problems(body.answers)
        for field, value in body.answers.items():
            # What the credential told is filled in, never asked: it must be the person's own.
            prefill = service.info.form["properties"].get(field, {}).get("x-prefill")
            own = {"name": person.name, "id_number": person.ssn}.get(prefill) if isinstance(prefill, str) else None
            if own is not None and isinstance(value, str) and value.upper() != own.upper():
                problems.append({"loc": ["body", "answers", field], "type": "prefill_mismatch"})
        if problems:
            raise ApiError(422, ErrorCode.INVALID_REQUEST, "填写的内容有误", fields=problems)
        wanted = list(service.attachments(body.answers))
        stored = db.attachment_types([digest for _, digest, _ in wanted])
        missing = [f for f, digest, _ in wanted if digest not in stored]
        if missing:
            raise ApiError(
                409, ErrorCode.ATTACHMENT_MISSING, "附件还没有上传，请先上传再提交",
                fields=[{"loc": ["body", "answers", f], "type": "attachment_missing"} for f in missing],
            )
        wrong = [f for f, digest, media in wanted if stored[digest] != media]
        if wrong:
            raise ApiError(
                422, ErrorCode.INVALID_REQUEST, "附件类型不对",
                fields=[{"loc": ["body", "answers", f], "type": "media_type"} for f in wrong],
            )
        card_loss = info.key == "card_loss"
        on_file = db.person_by_ssn(person.ssn)
        if card_loss and on_file is None:
            raise ApiError(404, ErrorCode.NO_CARD, "没有查到这个人的社保卡")
        received = now()
        stamp = f"{received:%Y%m%d}-{secrets.token_hex(5).upper()}"
        filing_id = f"F{stamp}"
        due = add_working_days(received.date(), info.time_limit_days, holidays)
        forwarded = info.handling is Handling.FORWARDED
        progress = Progress.DONE if card_loss else Progress.FORWARDED if forwarded else Progress.RECEIVED
        record_name = on_file["name"] if on_file is not None else None
        lines = _filing_lines(
            filing_id=filing_id, title=info.title, name=record_name, ssn=person.ssn, forwarded=forwarded,
            due=due, days=info.time_limit_days, local_number=body.local_number, phone=info.phone,
            supervision=info.supervision_phone,
            attached=[service.info.form["properties"][f].get("title", f) for f, _, _ in wanted],
        )
        if card_loss:
            lines[2:2] = [list(x) for x in CARD_LOSS_LINES]
        try:
            row, replayed = db.file_service(
                NewFiling(
                    filing_id=filing_id, receipt_id=f"R{stamp}", idempotency_key=key, request_hash=request_hash,
                    terminal_id=t.terminal_id, site_id=t.site_id, service=info.key,
                    local_number=body.local_number, ssn=person.ssn, name=person.name, receipt_name=record_name,
                    credential=str(person.credential), progress=str(progress), handling=str(info.handling),
                    due_date=due.isoformat(), answers=body.answers, summary={"title": info.title, "lines": lines},
                    created_at=min(body.created_at, received).isoformat(), received_at=received.isoformat(),
                    suspend_card=card_loss,
                )
            )
        except (IdempotencyConflict, FilingConflict):
            raise conflict() from None
        response.status_code = 200 if replayed else 201
        return filing_answer(row, replayed)

    @app.get("/v1/filings", response_model=FilingList, tags=["filings"], responses=_errors(auth=True))
    def my_filings(s: Session) -> FilingList:
        """我的办件: the session's person's filings, newest first (audited: filings_listed)."""
        return FilingList(filings=[summary_of(f) for f in db.person_filings(s, now().isoformat())])

    @app.get(
        "/v1/filings/{filing_id}",
        response_model=FilingSummary,
        tags=["filings"],
        responses=_errors((404, "unknown_filing (also for another person's filing)"), auth=True),
    )
    def filing_status(
        s: Session,
        filing_id: str = PathParam(
            pattern=FILING_ID_PATTERN, description="The filing id, or the local number the terminal printed"
        ),
    ) -> FilingSummary:
        """One filing of the session's person, by its filing id or by the local number of an offline receipt."""
        f = db.read_filing(s, filing_id, now().isoformat())
        if f is None:
            raise ApiError(404, ErrorCode.UNKNOWN_FILING, "没有查到这份申请")
        return summary_of(f)

    # --- ratings ------------------------------------------------------------------------------------

    @app.post(
        "/v1/ratings",
        status_code=201,
        response_model=RatingStored,
        tags=["ratings"],
        responses={
            200: {"model": RatingStored, "description": "replayed"},
            **_errors(
                (400, "idempotency_key_required"), (401, "certificate_required"), (403, "certificate_revoked"),
                (409, "idempotency_conflict"),
            ),
        },
    )
    def rate(body: RatingRequest, response: Response, t: CallingTerminal,
             idempotency_key: IdempotencyKey = None) -> RatingStored:
        """满意度评价 of a service at this terminal's station. Reasons only with dissatisfied (no typing)."""
        key = check_key(idempotency_key)
        if body.reasons and body.satisfaction is not Satisfaction.DISSATISFIED:
            raise _field_error(("body", "reasons"), "reasons_not_allowed")
        check_queued_at(body.created_at)
        canonical = json.dumps(
            {"terminal": t.terminal_id, "site": t.site_id, "body": body.model_dump(mode="json")}, sort_keys=True
        )
        received = now()
        try:
            rating_id, replayed = db.store_rating(
                idempotency_key=key, request_hash=hashlib.sha256(canonical.encode()).hexdigest(),
                new_rating_id=f"S{received:%Y%m%d}-{secrets.token_hex(5).upper()}", terminal_id=t.terminal_id,
                site_id=t.site_id, service=body.service, filing_ref=body.filing_ref,
                satisfaction=str(body.satisfaction), reasons=sorted({str(r) for r in body.reasons}),
                created_at=body.created_at.isoformat(), received_at=received.isoformat(),
            )
        except IdempotencyConflict:
            raise conflict() from None
        response.status_code = 200 if replayed else 201
        return RatingStored(rating_id=rating_id, replayed=replayed)

    @app.get(
        "/v1/ratings/summary",
        response_model=RatingSummary,
        tags=["ratings"],
        responses=_errors((401, "certificate_required"), (403, "certificate_revoked")),
    )
    def rating_summary(t: CallingTerminal) -> RatingSummary:
        """The satisfaction counts of the calling terminal's station (its certificate's site)."""
        return rating_summary_of(db, t.site_id)


    # --- help requests (请工作人员帮助) ----------------------------------------------------------------------

    @app.post(
        "/v1/help-requests",
        status_code=201,
        response_model=HelpRequestStored,
        tags=["help"],
        responses=_errors((401, "certificate_required"), (403, "certificate_revoked"), (
            429, f"rate_limited: more than {HELP_LIMIT} help requests from this terminal in "
                 f"{int(HELP_WINDOW.total_seconds() // 60)} minutes; header Retry-After (seconds); nothing stored")),
    )
    def request_help(body: HelpRequest, t: CallingTerminal) -> HelpRequestStored:
        """Someone at this terminal asked for a person's help. Stored with the certificate's terminal and site;
        nothing personal is sent or kept. A terminal may ask ten times in ten minutes (a kiosk asks at most once in
        two): beyond that 429, nothing is stored and the kiosk's panel says to phone."""
        check_queued_at(body.created_at)
        received = now()
        request_id = f"H{received:%Y%m%d}-{secrets.token_hex(5).upper()}"
        wait = db.store_help_request(
            request_id=request_id, terminal_id=t.terminal_id, site_id=t.site_id, screen=body.screen,
            created_at=body.created_at.isoformat(), received_at=received, limit=HELP_LIMIT, window=HELP_WINDOW,
        )
        if wait is not None:
            raise ApiError(429, ErrorCode.RATE_LIMITED, "求助太频繁，请直接拨打服务站电话",
                           headers={"Retry-After": str(math.ceil(wait))})
        return HelpRequestStored(request_id=request_id)

    @app.get(
        "/v1/help-requests",
        response_model=HelpRequestList,
        tags=["help"],
        responses=_errors((401, "certificate_required"), (403, "certificate_revoked")),
    )
    def help_requests(
        t: CallingTerminal,
        limit: int = Query(default=50, ge=1, le=200),
        site_id: str | None = Query(default=None, pattern=ID_PATTERN, max_length=64),
    ) -> HelpRequestList:
        """The county's recent help requests, newest first (one station's with site_id)."""
        return HelpRequestList(requests=[
            HelpRequestRow(
                request_id=r["request_id"], terminal_id=r["terminal_id"], site_id=r["site_id"], screen=r["screen"],
                created_at=dt.datetime.fromisoformat(r["created_at"]),
                received_at=dt.datetime.fromisoformat(r["received_at"]),
            )
            for r in db.help_requests(limit, site_id)
        ])

    # --- audit --------------------------------------------------------------------------------------

    @app.get("/v1/audit", response_model=AuditLog, tags=["audit"], responses=_errors(auth=True))
    def audit_log(s: Session) -> AuditLog:
        """Every access to the session's person's data, newest first: what the resident can see later."""
        rows = db.read_audit(s, now().isoformat())
        return AuditLog(
            entries=[
                AuditEntry(
                    time=dt.datetime.fromisoformat(r.at), terminal_id=r.terminal_id, site_id=r.site_id,
                    credential=Credential(r.credential), action=AuditAction(r.action),
                )
                for r in rows
            ]
        )

    # --- verification (no token: masked data only) ------------------------------------------------------

    def verification(receipt_id: str, sig: str) -> Verification:
        expected = _sign(receipt_secret, "receipt", receipt_id)
        if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace")):
            return Verification(genuine=False, reason=VerifyReason.BAD_SIGNATURE)
        row = db.receipt(receipt_id)
        if row is None:
            return Verification(genuine=False, reason=VerifyReason.UNKNOWN_RECEIPT)
        title = row.summary.get("title")
        filing = db.filing_of_receipt(receipt_id)
        return Verification(
            filing_status=None if filing is None else Progress(filing.progress),
            filing_reason=None if filing is None else filing.reason,
            genuine=True,
            reason=VerifyReason.OK,
            receipt_id=row.receipt_id,
            service=row.service,
            title=title if isinstance(title, str) else None,
            name_masked=mask_name(row.name) if row.name else None,
            id_masked=mask_id(row.ssn),
            created_at=dt.datetime.fromisoformat(row.created_at),
            received_at=dt.datetime.fromisoformat(row.received_at),
            site_id=row.site_id,
            terminal_id=row.terminal_id,
        )

    def add_verify_route(target: FastAPI) -> None:
        @target.get(
            "/v1/receipts/{receipt_id}/verify",
            response_model=Verification,
            tags=["receipts"],
            responses={
                200: {"content": {"text/html": {}}, "description": "JSON, or an HTML page for browsers"},
                429: {"model": ErrorBody, "description": "rate_limited (public listener, per client address)"},
                **_errors(),
            },
        )
        def verify_receipt(
            request: Request,
            receipt_id: str = PathParam(max_length=64),
            sig: str = Query(default="", max_length=128),
        ) -> Any:
            result = verification(receipt_id, sig)
            if "text/html" in request.headers.get("accept", ""):
                return HTMLResponse(_verification_page(result))
            return result

    add_verify_route(app)

    # --- retired routes: kept only to refuse ---------------------------------------------------------------

    @app.post(
        "/v1/ecard/resolve",
        tags=["retired"],
        responses=_errors((410, "gone: e-card sign-in is POST /v1/sessions"), auth=True),
        deprecated=True,
    )
    def resolve_ecard(s: Session) -> None:
        """Retired: refuses, 401 without a token, 410 with one."""
        raise ApiError(410, ErrorCode.GONE, "此接口已停用，请使用 POST /v1/sessions")

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
                raise ApiError(404, ErrorCode.UNKNOWN_PERSONA, "没有这个演示人员")
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
                raise ApiError(404, ErrorCode.ECARD_UNKNOWN, "无法识别这个电子社保卡二维码")
            db.revoke_ecard(nonce, now().isoformat())
            return Revoked(revoked=True)

    # --- the public verify listener's app ------------------------------------------------------------------

    public = FastAPI(
        title="Receipt verification", version=API_VERSION, openapi_url=None, docs_url=None, redoc_url=None
    )
    _install_error_handlers(public, only_not_found=True)
    add_verify_route(public)
    public.add_middleware(BodyGuard, max_body=MAX_BODY)
    public.add_middleware(
        _RateLimit, buckets=verify_limit, key_of=_client_address, message="请求太频繁，请稍后再试"
    )
    public.state.db = db
    app.state.verify_app = public
    app.state.worklist_app = create_worklist_app(db, catalog, keys, clock=clock, tz=tz)
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
            # The backend's own clock: the terminal's created_at is only what the terminal says.
            ("办理时间", v.received_at.strftime("%Y-%m-%d %H:%M") if v.received_at else ""),
            ("服务站", v.site_id or ""),
            ("终端", v.terminal_id or ""),
            ("回执编号", v.receipt_id or ""),
        ]
        if v.filing_status is not None:
            progress = STATUS_TEXT.get(v.filing_status, str(v.filing_status))
            rows.insert(1, ("办理进度", f"{progress}（{v.filing_reason}）" if v.filing_reason else progress))
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
    """Write the OpenAPI document of the app (built on a throwaway database, without demo routes) to path."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        spec = create_app(Path(tmp) / "openapi.sqlite3", "https://127.0.0.1").openapi()
    Path(path).write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return spec


__all__ = ["create_app", "ServerControl", "MODES", "write_openapi", "ApiError"]
