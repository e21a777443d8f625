"""The township worklist: a small server-rendered site (Jinja2, autoescaped) where a township clerk accepts
(→ in_progress), returns with a reason (→ returned) or completes (→ done) the filings villages forwarded.

Why a third listener, not a path on an existing one: the API listener admits only terminals (mutual TLS: a
clerk's browser has no terminal certificate, and must never get one), and the verify listener is public (any
phone), one read-only route behind a per-address rate limit. A page that changes filings and shows residents'
answers belongs on neither. Its own listener (HTTPS with the server certificate, loopback by default,
`--worklist-port`) can be firewalled or put behind the township's network on its own.

Nothing is reachable without signing in: the clerk password's scrypt hash lives in DATA/keys/clerk_password
(`python -m backend --data DATA --set-clerk-password` reads it from stdin); without that file nobody signs in.
A sign-in gets a random session cookie (HttpOnly, Secure, SameSite=Strict; only its hash is kept, in memory,
8 hours) and every POST form carries the session's CSRF token. Sign-in attempts are rate limited per address.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.enums import Progress, RatingReason, Satisfaction
from api.models import RatingSummary
from api.patterns import FILING_ID_PATTERN, SHA256_PATTERN
from api.privacy import mask_id, mask_name
from backend.catalog import ATTACHMENT_MEDIA, Catalog
from backend.db import Database, FilingRow
from backend.ratelimit import TokenBuckets

TEMPLATES = Path(__file__).resolve().parent / "templates"
PASSWORD_FILE = "clerk_password"
COOKIE = "wl_session"
LOGIN_COOKIE = "wl_login"
SESSION_TTL = 8 * 3600.0
MAX_FORM = 8 * 1024
LOGIN_BURST, LOGIN_INTERVAL = 5, 5.0
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}

STATUS_TEXT = {
    Progress.RECEIVED: "已受理",
    Progress.FORWARDED: "待乡镇受理",
    Progress.IN_PROGRESS: "办理中",
    Progress.DONE: "已办结",
    Progress.RETURNED: "已退回",
}
RETURN_REASONS = ("材料不全", "信息有误", "不符合申请条件", "需本人到乡镇窗口办理", "其他")
SATISFACTION_TEXT = {Satisfaction.SATISFIED: "满意", Satisfaction.BASICALLY: "基本满意", Satisfaction.DISSATISFIED: "不满意"}
REASON_TEXT = {
    RatingReason.TOO_SLOW: "办得太慢", RatingReason.HARD_TO_USE: "机器不好用", RatingReason.NOT_CLEAR: "说得不清楚",
    RatingReason.NOT_SOLVED: "事情没办成", RatingReason.STAFF: "工作人员态度",
}
# action -> (allowed from, to)
TRANSITIONS = {
    "accept": ((Progress.FORWARDED,), Progress.IN_PROGRESS),
    "return": ((Progress.FORWARDED, Progress.IN_PROGRESS), Progress.RETURNED),
    "complete": ((Progress.IN_PROGRESS,), Progress.DONE),
}
_CSS = (TEMPLATES / "worklist.css").read_text(encoding="utf-8") if (TEMPLATES / "worklist.css").exists() else ""
_HEADERS = {
    "Cache-Control": "no-store",  # residents' answers: never kept by the browser
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


# --- the clerk password ------------------------------------------------------------------------------------


def _hash(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)


def set_clerk_password(keys_dir: str | os.PathLike[str], password: str) -> Path:
    """Store the scrypt hash of the clerk password (mode 0600, replaced atomically)."""
    if len(password) < 8:
        raise ValueError("the clerk password needs at least 8 characters")
    d = Path(keys_dir)
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    salt = secrets.token_bytes(16)
    line = "scrypt${n}${r}${p}$".format(**_SCRYPT) + f"{salt.hex()}${_hash(password, salt, **_SCRYPT).hex()}\n"
    path = d / PASSWORD_FILE
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def check_clerk_password(keys_dir: str | os.PathLike[str], password: str) -> bool:
    try:
        kind, n, r, p, salt, digest = (Path(keys_dir) / PASSWORD_FILE).read_text(encoding="ascii").strip().split("$")
        if kind != "scrypt":
            return False
        got = _hash(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except (OSError, ValueError, UnicodeError):
        return False  # no password set (or a damaged file): nobody signs in
    return hmac.compare_digest(got, bytes.fromhex(digest))


# --- the station satisfaction figure (also GET /v1/ratings/summary) -----------------------------------------


def rating_summary_of(db: Database, site_id: str) -> RatingSummary:
    counts = db.rating_counts(site_id).get(site_id)
    sat = {s: (counts.satisfaction.get(str(s), 0) if counts else 0) for s in Satisfaction}
    reasons = {r: (counts.reasons.get(str(r), 0) if counts else 0) for r in RatingReason}
    total = sum(sat.values())
    good = sat[Satisfaction.SATISFIED] + sat[Satisfaction.BASICALLY]
    return RatingSummary(
        site_id=site_id, counts=sat, reasons=reasons, total=total, satisfied_share=good / total if total else 0.0
    )


# --- the site ------------------------------------------------------------------------------------------------


@dataclass
class _ClerkSession:
    csrf: str
    expires: float


class _Sessions:
    def __init__(self, clock: Callable[[], float], ttl: float = SESSION_TTL, limit: int = 1000) -> None:
        self.clock, self.ttl, self.limit = clock, ttl, limit
        self._lock = threading.Lock()
        self._by_hash: dict[str, _ClerkSession] = {}

    def open(self) -> tuple[str, _ClerkSession]:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        s = _ClerkSession(secrets.token_urlsafe(24), now + self.ttl)
        with self._lock:
            self._by_hash = {k: v for k, v in self._by_hash.items() if v.expires > now}
            while len(self._by_hash) >= self.limit:
                self._by_hash.pop(next(iter(self._by_hash)))
            self._by_hash[_digest(token)] = s
        return token, s

    def get(self, token: str | None) -> _ClerkSession | None:
        if not token:
            return None
        with self._lock:
            s = self._by_hash.get(_digest(token))
            if s is not None and s.expires <= self.clock():
                del self._by_hash[_digest(token)]
                return None
        return s

    def close(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._by_hash.pop(_digest(token), None)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _option_title(prop: dict[str, Any], value: Any) -> str:
    for opt in prop.get("oneOf", []):
        if isinstance(opt, dict) and opt.get("const") == value:
            title = str(opt.get("title", value))
            amount = opt.get("x-amount")
            return title if not amount or str(amount).rstrip("0").rstrip(".") in title else f"{title}（{amount}元）"
    return str(value)


def answer_rows(catalog: Catalog, f: FilingRow) -> list[dict[str, Any]]:
    """The filing's answers in form order, as the clerk reads them (option titles, 是/否, images)."""
    service = catalog.get(f.service)
    answers = f.answers or {}
    if service is None:
        return [{"title": k, "text": str(v), "image": None} for k, v in answers.items()]
    form = service.info.form
    rows = []
    for field in form.get("x-order", []):
        if field not in answers:
            continue
        prop, value = form["properties"][field], answers[field]
        widget = prop.get("x-widget")
        row: dict[str, Any] = {"title": prop.get("title", field), "text": "", "image": None}
        if prop.get("x-prefill") == "id_number" and isinstance(value, str):
            row["text"] = mask_id(value)  # as everywhere on these pages: the last digits identify, no more
        elif widget in ATTACHMENT_MEDIA and isinstance(value, str) and re.fullmatch(SHA256_PATTERN, value):
            row["image"] = value
        elif widget in ("choice", "pick"):
            row["text"] = _option_title(prop, value)
        elif widget == "yesno":
            row["text"] = "是" if value is True else "否"
        elif widget == "keypad" and isinstance(value, int) and not isinstance(value, bool):
            row["text"] = f"{value:,}"
        else:
            row["text"] = str(value)
        rows.append(row)
    return rows


def create_worklist_app(
    db: Database,
    catalog: Catalog,
    keys_dir: str | os.PathLike[str],
    *,
    clock: Callable[[], float] = time.time,
    tz: dt.tzinfo = dt.timezone(dt.timedelta(hours=8)),
    login_burst: int = LOGIN_BURST,
    login_interval: float = LOGIN_INTERVAL,
) -> FastAPI:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["masked_name"] = lambda n: mask_name(n or "")
    env.filters["masked_id"] = mask_id
    env.filters["status_text"] = lambda p: STATUS_TEXT.get(Progress(p), p)
    env.filters["when"] = lambda iso: dt.datetime.fromisoformat(iso).astimezone(tz).strftime("%Y-%m-%d %H:%M")
    sessions = _Sessions(clock)
    login_limit = TokenBuckets(login_burst, login_interval, clock)
    keys = Path(keys_dir)

    app = FastAPI(title="Township worklist", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.sessions = sessions

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=status, headers=_HEADERS)

    def message(text: str, status: int, back: str = "/") -> HTMLResponse:
        return page("message.html", status=status, text=text, back=back, clerk=None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> HTMLResponse:
        status = 404 if exc.status_code == 405 else exc.status_code
        return message("没有这个页面" if status == 404 else "请求无法处理", status)

    async def form_of(request: Request) -> dict[str, str] | None:
        """The urlencoded form (first value of each field), or None when too large or not a form."""
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return None
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                return None
        try:
            parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
        except (UnicodeDecodeError, ValueError):
            return None
        return {k: v[0] for k, v in parsed.items()}

    def clerk(request: Request) -> _ClerkSession | None:
        return sessions.get(request.cookies.get(COOKIE))

    def to_login() -> RedirectResponse:
        return RedirectResponse("/login", status_code=303, headers=_HEADERS)

    def csrf_ok(s: _ClerkSession, form: dict[str, str]) -> bool:
        return hmac.compare_digest(s.csrf.encode(), form.get("csrf", "").encode("utf-8", "replace"))

    @app.get("/static/worklist.css")
    def css() -> Response:
        return Response(_CSS, media_type="text/css", headers={"Cache-Control": "max-age=3600"})

    @app.get("/login")
    def login_page(request: Request) -> HTMLResponse:
        if clerk(request) is not None:
            return RedirectResponse("/", status_code=303, headers=_HEADERS)  # type: ignore[return-value]
        # Sign-in CSRF: a random value in a SameSite=Strict cookie must come back in the form (double submit).
        nonce = secrets.token_urlsafe(24)
        response = page("login.html", nonce=nonce, error=None, clerk=None)
        response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, secure=True, samesite="strict", max_age=1800)
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        client = request.client.host if request.client else "-"
        wait = login_limit.take(client)
        if wait is not None:
            r = message("登录尝试太频繁，请稍后再试", 429, back="/login")
            r.headers["Retry-After"] = str(wait)
            return r
        form = await form_of(request)
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if form is None or not nonce or not hmac.compare_digest(nonce.encode(), form.get("nonce", "").encode()):
            return message("页面已过期，请重新登录", 403, back="/login")
        if not check_clerk_password(keys, form.get("password", "")):
            fresh = secrets.token_urlsafe(24)
            r = page("login.html", status=401, nonce=fresh, error="密码不对", clerk=None)
            r.set_cookie(LOGIN_COOKIE, fresh, httponly=True, secure=True, samesite="strict", max_age=1800)
            return r
        token, _ = sessions.open()
        r = RedirectResponse("/", status_code=303, headers=_HEADERS)
        r.set_cookie(COOKIE, token, httponly=True, secure=True, samesite="strict", max_age=int(SESSION_TTL))
        r.delete_cookie(LOGIN_COOKIE)
        return r

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        s = clerk(request)
        form = await form_of(request)
        if s is not None and form is not None and csrf_ok(s, form):
            sessions.close(request.cookies.get(COOKIE))
        r = to_login()
        r.delete_cookie(COOKIE)
        return r

    @app.get("/")
    def worklist(request: Request) -> Response:
        s = clerk(request)
        if s is None:
            return to_login()
        rows = db.forwarded_filings()
        ratings = {site: rating_summary_of(db, site) for site in sorted(db.rating_counts())}
        return page(
            "list.html", clerk=s, rows=rows, catalog=catalog, reasons=RETURN_REASONS, ratings=ratings,
            satisfaction=SATISFACTION_TEXT, reason_text=REASON_TEXT, open_count=sum(
                r.progress in (Progress.FORWARDED, Progress.IN_PROGRESS) for r in rows
            ),
        )

    def forwarded(filing_id: str) -> FilingRow | None:
        if not re.fullmatch(FILING_ID_PATTERN, filing_id):
            return None
        f = db.filing(filing_id)
        return f if f is not None and f.handling == "forwarded" else None

    @app.get("/filings/{filing_id}")
    def detail(request: Request, filing_id: str) -> Response:
        s = clerk(request)
        if s is None:
            return to_login()
        f = forwarded(filing_id)
        if f is None:
            return message("没有这份办件", 404)
        service = catalog.get(f.service)
        return page(
            "detail.html", clerk=s, f=f, answers=answer_rows(catalog, f), reasons=RETURN_REASONS,
            title=service.info.title if service is not None else f.service,
        )

    @app.get("/attachments/{sha256}")
    def attachment(request: Request, sha256: str) -> Response:
        if clerk(request) is None:
            return to_login()
        found = db.attachment(sha256) if re.fullmatch(SHA256_PATTERN, sha256) else None
        if found is None:
            return message("没有这个附件", 404)
        media, data = found
        return Response(data, media_type=media, headers=_HEADERS)

    @app.post("/filings/{filing_id}/{action}")
    async def act(request: Request, filing_id: str, action: str) -> Response:
        s = clerk(request)
        if s is None:
            return to_login()
        form = await form_of(request)
        if form is None or not csrf_ok(s, form):
            return message("页面已过期，请刷新后再操作", 403)
        if action not in TRANSITIONS or forwarded(filing_id) is None:
            return message("没有这份办件", 404)
        allowed, to = TRANSITIONS[action]
        reason = None
        if action == "return":
            reason = form.get("reason", "")
            if reason not in RETURN_REASONS:
                return message("请选择退回原因", 422, back=f"/filings/{filing_id}")
            note = _CONTROL.sub("", form.get("note", "")).strip()[:100]
            if note:
                reason = f"{reason}：{note}"
        at = dt.datetime.fromtimestamp(clock(), tz).isoformat()
        if not db.move_filing(filing_id, allowed_from=tuple(map(str, allowed)), to=str(to), reason=reason, at=at):
            return message("这份办件的状态已经变了，不能这样操作", 409, back=f"/filings/{filing_id}")
        back = f"/filings/{filing_id}" if form.get("back") == "detail" else "/"
        return RedirectResponse(back, status_code=303, headers=_HEADERS)

    return app


__all__ = [
    "create_worklist_app", "set_clerk_password", "check_clerk_password", "rating_summary_of", "answer_rows",
    "STATUS_TEXT", "RETURN_REASONS", "TRANSITIONS",
]
