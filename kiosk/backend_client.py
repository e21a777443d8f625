"""Client of the kiosk backend API (see backend/openapi.json; bodies are the models of api/models.py).

Every call returns a value: an api model parsed strictly, or a BackendFailure whose kind is a closed set the
session can turn into a screen. Mutual TLS with a pinned CA. Personal calls carry the bearer token of a backend
session (POST /v1/sessions); no ID number ever goes into a URL.

Transport rules, each bounded whatever the server does:
- a total deadline per call, retries and waits included: a watchdog shuts the socket down when it passes, so a
  server dripping one byte every few seconds is cut at the deadline, not kept alive by the per-read timeout;
- an answer larger than max_answer bytes (after decompression) is read no further;
- retries (with backoff) only where a repeat is harmless: GETs, DELETE, and POSTs that carry an
  Idempotency-Key; any method after a connection that never opened; any method after 429 (nothing was done);
- Retry-After is honoured up to retry_after_cap seconds, and never past the deadline.
Nothing here logs an ID number, a name or a token: log lines name the route, never a body.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar, overload
from urllib.parse import quote, urlsplit

import pydantic
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from api.enums import Credential, ErrorCode, ReceiptService
from api.models import (
    AttachmentStored,
    CardLossFiling,
    CardLossRequest,
    ErrorBody,
    Filing,
    FilingList,
    FilingRequest,
    FilingSummary,
    Health,
    HelpRequest,
    HelpRequestList,
    HelpRequestStored,
    InvalidRequestBody,
    Pension,
    PensionRequest,
    RatingRequest,
    RatingStored,
    Receipt,
    ReceiptRequest,
    ServiceCatalog,
    SessionOpen,
    SessionOpened,
    Verification,
    encode,
    parse,
)
from api.patterns import SHA256_PATTERN

log = logging.getLogger("kiosk.backend")

M = TypeVar("M", bound=pydantic.BaseModel)

MAX_ANSWER = 1 << 20  # 1 MiB: the largest real answer (a pension with 12 payments) is ~2 KiB
MAX_ATTACHMENT = 300 * 1024  # the backend refuses larger attachments (docs/filings.md)
ATTACHMENT_TYPES = frozenset({"image/jpeg", "image/png"})
RETRY_AFTER_CAP = 5.0
DEADLINE = 15.0
# An upload's deadline grows with its size: a village uplink may carry no more than ~64 kbit/s (8 KB/s).
UPLOAD_FLOOR = 8 * 1024  # bytes per second
UPLOAD_DEADLINE_CAP = 180.0

# A receipt id and signature as the backend makes them; anything longer or odder is not ours.
_RECEIPT_ID = r"[A-Za-z0-9-]{1,64}"
_SIG = r"[A-Za-z0-9_-]{8,128}"


class FailureKind(enum.StrEnum):
    OFFLINE = "offline"  # no connection (refused, unreachable, DNS, TLS handshake refused)
    TIMEOUT = "timeout"  # connected, but no full answer within the read timeout or the call's deadline
    SERVER_ERROR = "server_error"  # 5xx
    NOT_FOUND = "not_found"  # 404 (e.g. code "no_record", "no_card"), and ecard_unknown
    REJECTED = "rejected"  # any other 4xx (e.g. "ecard_expired", "idempotency_conflict", "nothing_to_vouch")
    SESSION_REFUSED = "session_refused"  # 401/403: no, unknown, expired or foreign token; person mismatch
    RATE_LIMITED = "rate_limited"  # 429, still after waiting as long as the server asked (up to the cap)
    BAD_RESPONSE = "bad_response"  # 2xx that is not the documented shape, or too large


@dataclass(frozen=True)
class BackendFailure:
    kind: FailureKind
    code: str | None = None  # the server's ErrorCode, or a client-side one ("tls_error", "foreign_url", ...)
    status: int | None = None  # HTTP status when there was a response
    message: str = ""  # for logs and technicians; never holds personal data
    # Retry-After of a 429 / 503 in seconds, as the server asked (not capped): an outbox waits this long
    retry_after: float | None = None
    # The answers a 422 (or 409) names: each FieldProblem whose loc is ["body", "answers", <name>, ...]
    fields: tuple[str, ...] = ()


# --- transport: a watchdog per call that can cut the socket ----------------------------------------------

_local = threading.local()


class _Watchdog:
    """Shuts down every connection a call touches when the call's deadline passes."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._conns: list[Any] = []
        self.fired = False
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True

    def watch(self, conn: Any) -> None:
        with self._lock:
            self._conns.append(conn)
            fired = self.fired
        if fired:
            _cut(conn)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            conns = list(self._conns)
        for conn in conns:
            _cut(conn)

    def __enter__(self) -> _Watchdog:
        _local.watchdog = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _local.watchdog = None


def _cut(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is None:
        return
    try:
        # The plain socket's shutdown: a blocked read in the calling thread returns at once (TLS included).
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _WatchedPool:
    def _get_conn(self, timeout: float | None = None):  # type: ignore[no-untyped-def]
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        watchdog = getattr(_local, "watchdog", None)
        if watchdog is not None:
            watchdog.watch(conn)
        return conn


class _WatchedHTTPPool(_WatchedPool, HTTPConnectionPool):
    pass


class _WatchedHTTPSPool(_WatchedPool, HTTPSConnectionPool):
    pass


class _Adapter(HTTPAdapter):
    """No retries of its own (the client's loop decides, deadline-aware); pools whose connections a watchdog
    can cut."""

    def __init__(self) -> None:
        super().__init__(max_retries=Retry(0, read=False, redirect=0))

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _TooLarge(Exception):
    pass


_RETRY_STATUSES = frozenset({500, 502, 503, 504})


class BackendClient:
    def __init__(
        self,
        base_url: str,
        ca_path: str | Path | None,
        client_cert: str | Path | None,
        client_key: str | Path | None,
        connect_timeout: float = 3.05,
        read_timeout: float = 8,
        allow_insecure: bool = False,
        *,
        retries: int = 2,
        backoff_factor: float = 0.3,
        deadline: float = DEADLINE,
        max_answer: int = MAX_ANSWER,
        retry_after_cap: float = RETRY_AFTER_CAP,
        receipt_base_url: str | None = None,
    ) -> None:
        """Raises ValueError when the configuration is unsafe or incomplete (checked once, at startup).

        allow_insecure (dev mode only) permits http:// and ca_path=None (no server verification).
        client_cert/client_key may be None before enrolment; the backend then refuses the TLS handshake.
        receipt_base_url: the origin printed in receipt QR codes (default: base_url); a scanned receipt is ours
        only when it is exactly {receipt_base_url}/v1/receipts/{id}/verify?sig={sig}.
        """
        parts = urlsplit(base_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"backend URL must be https://host[:port]: {base_url!r}")
        if parts.query or parts.fragment:
            raise ValueError("backend URL must not carry a query or fragment")
        if parts.scheme == "http" and not allow_insecure:
            raise ValueError("plain http:// backend URL refused: use https:// (http only in dev mode)")
        if ca_path is None or ca_path is False:
            if not allow_insecure:
                raise ValueError("ca_path is required: server certificate verification cannot be disabled")
            verify: str | bool = False
        else:
            if not Path(ca_path).is_file():
                raise ValueError(f"CA file not found: {ca_path}")
            verify = str(ca_path)
        if (client_cert is None) != (client_key is None):
            raise ValueError("client_cert and client_key must be given together")
        cert: tuple[str, str] | None = None
        if client_cert is not None and client_key is not None:
            for p in (client_cert, client_key):
                if not Path(p).is_file():
                    raise ValueError(f"client certificate file not found: {p}")
            cert = (str(client_cert), str(client_key))
        if connect_timeout <= 0 or read_timeout <= 0 or deadline <= 0:
            raise ValueError("timeouts must be positive")
        if max_answer <= 0 or retries < 0 or retry_after_cap < 0:
            raise ValueError("max_answer must be positive, retries and retry_after_cap not negative")

        self.base_url = base_url.rstrip("/")
        rb = (receipt_base_url or self.base_url).rstrip("/")
        rparts = urlsplit(rb)
        if rparts.scheme not in ("https", "http") or not rparts.hostname or rparts.query or rparts.fragment:
            raise ValueError(f"receipt_base_url must be https://host[:port][/path]: {receipt_base_url!r}")
        self.receipt_base_url = rb
        self._receipt_url = re.compile(re.escape(rb) + rf"/v1/receipts/({_RECEIPT_ID})/verify\?sig=({_SIG})")
        self.timeout = (float(connect_timeout), float(read_timeout))
        self.deadline = float(deadline)
        self.max_answer = int(max_answer)
        self.retries = int(retries)
        self.backoff_factor = float(backoff_factor)
        self.retry_after_cap = float(retry_after_cap)
        # The library parses Retry-After (seconds or an HTTP date) and caps it.
        self._retry_after = Retry(0, retry_after_max=max(0, int(retry_after_cap + 0.999)))
        self._sleep: Callable[[float], None] = time.sleep  # tests record the waits instead
        self.session = requests.Session()
        self.session.verify = verify
        self.session.cert = cert
        self.session.trust_env = False  # no proxies or CA bundles from the environment
        # identity: answers are small, and an uncompressed body is what the size cap counts
        self.session.headers.update(
            {"Accept": "application/json", "Accept-Encoding": "identity", "User-Agent": "village-kiosk/1"}
        )
        self.session.mount("https://", _Adapter())
        self.session.mount("http://", _Adapter())
        if verify is False:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            log.warning("backend client in insecure dev mode: server certificate NOT verified")

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> BackendClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- API --------------------------------------------------------------------------------------

    def health(self) -> bool:
        got = self._call("GET", "/v1/health", Health)
        return isinstance(got, Health) and got.status == "ok"

    def open_session(
        self, credential: Credential, *, ssn: str | None = None, name: str | None = None, code: str | None = None,
    ) -> SessionOpened | BackendFailure:
        """Open a backend session: sscard_pin (after card + PIN) and id_card with the ID number read from the
        credential, ecard with the scanned code (the answer names the person). ecard_unknown is NOT_FOUND,
        ecard_expired / ecard_revoked REJECTED; a bad request body is REJECTED code invalid_request."""
        body = None
        for given in dict.fromkeys((name or None, None)):  # a name the contract cannot carry is left out
            try:
                body = SessionOpen(credential=Credential(credential), ssn=ssn, name=given, code=code)
                break
            except (pydantic.ValidationError, ValueError):
                continue
        if body is None:
            return BackendFailure(FailureKind.REJECTED, code="invalid_request", message="not sent: bad body")
        return self._call("POST", "/v1/sessions", SessionOpened, body=encode(body))

    def close_session(self, token: str) -> BackendFailure | None:
        """End the backend session (its token is dead after). None when done."""
        got = self._call("DELETE", "/v1/sessions/current", None, token=token)
        return got if isinstance(got, BackendFailure) else None

    def pension(self, token: str) -> Pension | BackendFailure:
        """The token's person (no ID number in the URL). NOT_FOUND code no_record: no pension record."""
        return self._call("POST", "/v1/pension", Pension, body=encode(PensionRequest()), token=token)

    def create_receipt(
        self, token: str, *, idempotency_key: str, service: ReceiptService | str, created_at: dt.datetime,
    ) -> Receipt | BackendFailure:
        """The backend writes the receipt from what it answered in this session; print its lines as given.
        Safe to repeat with the same key and body. REJECTED code nothing_to_vouch: nothing answered yet."""
        try:
            body = ReceiptRequest(service=ReceiptService(service), created_at=created_at)
        except (pydantic.ValidationError, ValueError):
            return BackendFailure(FailureKind.REJECTED, code="invalid_request", message="not sent: bad body")
        return self._call(
            "POST", "/v1/receipts", Receipt, body=encode(body), token=token,
            headers={"Idempotency-Key": idempotency_key},
        )

    def report_card_loss(
        self, token: str, *, idempotency_key: str, created_at: dt.datetime,
    ) -> CardLossFiling | BackendFailure:
        """社保卡临时挂失 for the token's person. Safe to repeat with the same key and body. A card already
        suspended answers status already_reported (not a failure). NOT_FOUND code no_card: no card on file."""
        try:
            body = CardLossRequest(created_at=created_at)
        except pydantic.ValidationError:
            return BackendFailure(FailureKind.REJECTED, code="invalid_request", message="not sent: bad body")
        return self._call(
            "POST", "/v1/filings/card-loss", CardLossFiling, body=encode(body), token=token,
            headers={"Idempotency-Key": idempotency_key},
        )

    def filing_status(self, token: str, filing_id: str) -> FilingSummary | BackendFailure:
        """One filing of the token's person, by filing_id or local number. NOT_FOUND code unknown_filing."""
        return self._call("GET", f"/v1/filings/{quote(filing_id, safe='')}", FilingSummary, token=token,
                          route="/v1/filings/{filing_id}")

    filing = filing_status  # the name the outbox side uses

    def is_our_receipt(self, url: str) -> bool:
        return self._receipt_url.fullmatch(url) is not None

    def verify_receipt(self, url: str) -> Verification | BackendFailure:
        """Check a scanned receipt QR URL. Only a URL exactly of our receipt form is fetched, and from our own
        mTLS backend (same path), never from the URL's host: REJECTED code foreign_url otherwise."""
        m = self._receipt_url.fullmatch(url)
        if m is None:
            return BackendFailure(FailureKind.REJECTED, code="foreign_url", message="not one of our receipt URLs")
        receipt_id, sig = m.groups()
        return self._call("GET", f"/v1/receipts/{receipt_id}/verify?sig={sig}", Verification,
                          route="/v1/receipts/{id}/verify")

    # --- catalog, filings, attachments, ratings (docs/filings.md) -----------------------------------------

    def services(self, etag: str | None = None) -> tuple[ServiceCatalog | None, str | None] | BackendFailure:
        """The service catalog and its ETag. With `etag` (the cached one) the server may answer 304: then
        (None, etag) — keep the cached catalog."""
        meta: dict[str, Any] = {}
        hdrs = {"If-None-Match": etag} if etag else None
        got = self._call("GET", "/v1/services", ServiceCatalog, headers=hdrs, meta=meta)
        if isinstance(got, BackendFailure):
            return got
        if meta.get("status") == 304:
            return None, etag
        return got, meta.get("etag")

    def put_attachment(self, digest: str, data: bytes, media_type: str) -> AttachmentStored | BackendFailure:
        """Upload an attachment named by its SHA-256 (hex). Safe to repeat: the same bytes again are 200
        replayed. Bytes that do not match the digest, a type other than JPEG/PNG or more than 300 KB are
        not sent (REJECTED code attachment_invalid)."""
        if (
            re.fullmatch(SHA256_PATTERN, digest) is None
            or media_type not in ATTACHMENT_TYPES
            or len(data) > MAX_ATTACHMENT
            or hashlib.sha256(data).hexdigest() != digest
        ):
            return BackendFailure(FailureKind.REJECTED, code=ErrorCode.ATTACHMENT_INVALID.value,
                                  message="not sent: digest, type or size refused")
        # The kernel takes the bytes long before the link has carried them: the answer then comes only when the
        # last byte arrived, so the wait for it (the read timeout) is the upload's whole deadline too.
        deadline = self.upload_deadline(len(data))
        return self._call("PUT", f"/v1/attachments/{digest}", AttachmentStored, body=bytes(data),
                          headers={"Content-Type": media_type}, route="/v1/attachments/{sha256}",
                          deadline=deadline, read_timeout=max(self.timeout[1], deadline))

    def upload_deadline(self, size: int) -> float:
        """The total deadline of an upload of `size` bytes: the call's own, plus the time the bytes take at
        UPLOAD_FLOOR, capped (a 300 KB photo: 15 + 37.5 s)."""
        return max(self.deadline, min(UPLOAD_DEADLINE_CAP, self.deadline + size / UPLOAD_FLOOR))

    def submit_filing(self, body: FilingRequest, idempotency_key: str) -> Filing | BackendFailure:
        """POST /v1/filings. Safe to repeat with the same key and body (the answer then says replayed).
        409 attachment_missing: upload the attachment, then send again."""
        return self._call("POST", "/v1/filings", Filing, body=encode(body),
                          headers={"Idempotency-Key": idempotency_key})

    def submit_rating(self, body: RatingRequest, idempotency_key: str) -> RatingStored | BackendFailure:
        """POST /v1/ratings. Safe to repeat with the same key and body."""
        return self._call("POST", "/v1/ratings", RatingStored, body=encode(body),
                          headers={"Idempotency-Key": idempotency_key})

    def request_help(self, screen: str, created_at: dt.datetime) -> HelpRequestStored | BackendFailure:
        """POST /v1/help-requests: 请工作人员帮助 was pressed on `screen` (terminal certificate only, no person)."""
        return self._call("POST", "/v1/help-requests", HelpRequestStored,
                          body=encode(HelpRequest(screen=screen, created_at=created_at)))

    def help_requests(self, limit: int = 50) -> HelpRequestList | BackendFailure:
        """GET /v1/help-requests: the county's recent help requests, newest first."""
        return self._call("GET", f"/v1/help-requests?limit={int(limit)}", HelpRequestList,
                          route="/v1/help-requests")

    def my_filings(self, token: str) -> FilingList | BackendFailure:
        """The token's person's filings, newest first (我的办件)."""
        return self._call("GET", "/v1/filings", FilingList, token=token)

    # --- transport ------------------------------------------------------------------------------------

    @overload
    def _call(
        self, method: str, path: str, model: type[M], *, body: bytes | None = None, token: str | None = None,
        headers: Mapping[str, str] | None = None, route: str | None = None, meta: dict[str, Any] | None = None,
        deadline: float | None = None, read_timeout: float | None = None,
    ) -> M | BackendFailure: ...

    @overload
    def _call(
        self, method: str, path: str, model: None, *, body: bytes | None = None, token: str | None = None,
        headers: Mapping[str, str] | None = None, route: str | None = None, meta: dict[str, Any] | None = None,
        deadline: float | None = None, read_timeout: float | None = None,
    ) -> BackendFailure | None: ...

    def _call(
        self,
        method: str,
        path: str,
        model: type[M] | None,
        *,
        body: bytes | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        route: str | None = None,
        meta: dict[str, Any] | None = None,
        deadline: float | None = None,
        read_timeout: float | None = None,
    ) -> M | BackendFailure | None:
        """A parsed answer (None for a 204 when model is None), or a BackendFailure. `route` is what gets logged.
        meta (when given) receives the last answer's "status" and "etag"; a 304 is then None, not a failure.
        deadline, read_timeout: this call's total seconds and per-read timeout (default: the client's)."""
        route = route or path
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")  # an attachment PUT names its own type
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        # A repeat is harmless when the server treats it as one request: reads, DELETE, PUT (an attachment
        # named by its digest), idempotency keys.
        idempotent = method in ("GET", "HEAD", "DELETE", "PUT") or "Idempotency-Key" in hdrs
        started = time.monotonic()
        ends = started + (self.deadline if deadline is None else deadline)
        attempt = 0
        while True:
            attempt += 1
            got, resp_status, wait = self._attempt(
                method, path, model, body, hdrs, ends, idempotent, attempt, meta, read_timeout)
            retry_left = attempt <= self.retries
            if wait is None or not retry_left:
                break
            remaining = ends - time.monotonic()
            if wait >= remaining:
                break  # waiting would pass the deadline: give the answer we have
            self._sleep(wait)
        elapsed = (time.monotonic() - started) * 1000
        if isinstance(got, BackendFailure):
            log.info("%s %s -> %s %s (%s) in %.0f ms, %d attempt(s)", method, route, resp_status or "-",
                     got.kind.value, got.code, elapsed, attempt)
        else:
            log.info("%s %s -> %s in %.0f ms", method, route, resp_status, elapsed)
        return got

    def _attempt(
        self, method: str, path: str, model: type[M] | None, body: bytes | None, hdrs: dict[str, str],
        deadline: float, idempotent: bool, attempt: int, meta: dict[str, Any] | None = None,
        read_timeout: float | None = None,
    ) -> tuple[Any, int | None, float | None]:
        """One request: (result, status, seconds to wait before a retry or None: no retry)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return BackendFailure(FailureKind.TIMEOUT, code="deadline", message="call deadline passed"), None, None
        backoff = min(2.0, self.backoff_factor * (2 ** (attempt - 1)))
        read = self.timeout[1] if read_timeout is None else read_timeout
        timeout = (min(self.timeout[0], remaining), min(read, remaining))
        with _Watchdog(remaining) as dog:
            try:
                resp = self.session.request(
                    method, self.base_url + path, data=body, headers=hdrs, timeout=timeout,
                    allow_redirects=False, stream=True,
                )
            except requests.exceptions.RequestException as exc:
                failure = _failure_from_exception(exc)
                if dog.fired:
                    return BackendFailure(FailureKind.TIMEOUT, code="deadline", message=failure.message), None, None
                # A connection that never opened sent nothing: any method may try again.
                never_sent = _never_sent(exc)
                again = failure.kind in (FailureKind.OFFLINE, FailureKind.TIMEOUT) and (idempotent or never_sent)
                if failure.code == "tls_error":
                    again = False  # a repeat will not change a certificate
                return failure, None, (backoff if again else None)
            with resp:
                status = resp.status_code
                try:
                    raw = _read_capped(resp, self.max_answer)
                except _TooLarge:
                    return BackendFailure(FailureKind.BAD_RESPONSE, code="too_large", status=status,
                                          message=f"answer over {self.max_answer} bytes"), status, None
                except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                    # a cut socket may surface as any of these, depending on where the read was
                    failure = (_failure_from_exception(exc) if isinstance(exc, requests.exceptions.RequestException)
                               else BackendFailure(FailureKind.OFFLINE, code="connection_error",
                                                   message=type(exc).__name__))
                    if dog.fired:
                        failure = BackendFailure(FailureKind.TIMEOUT, code="deadline", message=failure.message)
                        return failure, status, None
                    return failure, status, (backoff if idempotent else None)
        if meta is not None:
            meta["status"] = status
            meta["etag"] = resp.headers.get("ETag")
            if status == 304:
                return None, status, None
        if 200 <= status < 300:
            if model is None:
                return None, status, None
            try:
                return parse(model, raw), status, None
            except pydantic.ValidationError as exc:
                code = "not_json" if any(e["type"] == "json_invalid" for e in exc.errors()) else "bad_shape"
                return BackendFailure(FailureKind.BAD_RESPONSE, code=code, status=status,
                                      message=f"{exc.error_count()} problem(s)"), status, None
        failure = _failure_from_status(status, raw)
        if status in (429, 503):
            asked_raw = self._asked_wait(resp, capped=False)
            if asked_raw is not None:
                failure = replace(failure, retry_after=asked_raw)
        if status == 429:
            # Nothing was done: any method may wait as the server asks (capped) and try again.
            asked = self._asked_wait(resp)
            wait = min(self.retry_after_cap, asked if asked is not None else backoff)
            return failure, status, wait
        if status in _RETRY_STATUSES and idempotent:
            asked = self._asked_wait(resp) if status == 503 else None
            return failure, status, min(self.retry_after_cap, asked if asked is not None else backoff)
        return failure, status, None

    def _asked_wait(self, resp: requests.Response, *, capped: bool = True) -> float | None:
        """Retry-After in seconds (a number or an HTTP date), capped unless capped=False (then as asked, up to
        urllib3's own 6 h limit); None when absent or unreadable."""
        value = resp.headers.get("Retry-After")
        if value is None:
            return None
        try:
            if not capped:
                return max(0.0, Retry(0).parse_retry_after(value))
            return min(self.retry_after_cap, max(0.0, self._retry_after.parse_retry_after(value)))
        except (urllib3.exceptions.InvalidHeader, ValueError, OverflowError):
            return None


def _never_sent(exc: requests.exceptions.RequestException) -> bool:
    """The connection never opened, so the server saw nothing: a repeat is harmless for any method."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _read_capped(resp: requests.Response, cap: int) -> bytes:
    declared = resp.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.iter_content(16 * 1024):
        size += len(chunk)
        if size > cap:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _failure_from_status(status: int, raw: bytes) -> BackendFailure:
    code: str | None = None
    fields: tuple[str, ...] = ()
    try:
        err = parse(InvalidRequestBody, raw)
        code = err.code.value
        # the answers named (the outbox keeps them, so the resident is taken back to those questions)
        fields = tuple(dict.fromkeys(p.loc[2] for p in err.fields if len(p.loc) > 2 and p.loc[:2] == ["body", "answers"]))
    except pydantic.ValidationError:
        try:
            code = parse(ErrorBody, raw).code.value
        except pydantic.ValidationError:
            pass
    if status in (401, 403):
        kind = FailureKind.SESSION_REFUSED
    elif status == 429:
        kind = FailureKind.RATE_LIMITED
    elif status == 404 or code == ErrorCode.ECARD_UNKNOWN:
        kind = FailureKind.NOT_FOUND
    elif 400 <= status < 500:
        kind = FailureKind.REJECTED
    elif status >= 500:
        kind = FailureKind.SERVER_ERROR
    else:  # 1xx/3xx: we never follow redirects, and the API has none
        kind = FailureKind.BAD_RESPONSE
    return BackendFailure(kind, code=code, status=status, message=f"HTTP {status}", fields=fields)


def _failure_from_exception(exc: requests.exceptions.RequestException) -> BackendFailure:
    # Messages carry exception class names only: str(exc) holds the URL.
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    name = type(reason or exc).__name__
    if isinstance(exc, requests.exceptions.SSLError) or isinstance(reason, urllib3.exceptions.SSLError):
        # Kept as "offline" so the person is told to try later; the code tells a technician it is TLS.
        return BackendFailure(FailureKind.OFFLINE, code="tls_error", message=name)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return BackendFailure(FailureKind.OFFLINE, code="connect_timeout", message=name)
    if isinstance(exc, requests.exceptions.ReadTimeout) or isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        return BackendFailure(FailureKind.TIMEOUT, code="read_timeout", message=name)
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return BackendFailure(FailureKind.BAD_RESPONSE, code="decoding_error", message=name)
    return BackendFailure(FailureKind.OFFLINE, code="connection_error", message=name)
