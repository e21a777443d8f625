"""Client of the kiosk backend API (see backend/openapi.json).

Every call returns a value: a typed result or a BackendFailure whose kind is a closed set the session can
turn into a screen. Mutual TLS with a pinned CA; (connect, read) timeouts on every call; urllib3 retries
with backoff only where a repeat is harmless (GETs, and the POSTs that carry an Idempotency-Key: /v1/receipts and
/v1/filings/card-loss).
Nothing here logs an ID number or a name: log lines name the route template, never the real path.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger("kiosk.backend")


class _RedactPensionPath(logging.Filter):
    """urllib3 logs request lines at DEBUG; /v1/pension/{ssn} would put an ID number in the log."""

    _PATH = re.compile(r"/v1/pension/[^\s\"?#]+")

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "/v1/pension/" in msg:
            record.msg, record.args = self._PATH.sub("/v1/pension/{ssn}", msg), None
        return True


_urllib3_log = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(f, _RedactPensionPath) for f in _urllib3_log.filters):
    _urllib3_log.addFilter(_RedactPensionPath())

_RETRY_STATUSES = frozenset({500, 502, 503, 504})


class FailureKind(enum.StrEnum):
    OFFLINE = "offline"  # no connection (refused, unreachable, DNS, TLS handshake refused)
    TIMEOUT = "timeout"  # connected, but no answer within the read timeout
    SERVER_ERROR = "server_error"  # 5xx
    NOT_FOUND = "not_found"  # 404 (e.g. code "no_record", "ecard_unknown")
    REJECTED = "rejected"  # any other 4xx (e.g. "ecard_expired", "idempotency_conflict")
    BAD_RESPONSE = "bad_response"  # 2xx that does not parse as the documented shape


@dataclass(frozen=True)
class BackendFailure:
    kind: FailureKind
    code: str | None = None  # the server's stable error code, or a client-side one ("tls_error", "foreign_url")
    status: int | None = None  # HTTP status when there was a response
    message: str = ""  # for logs and technicians; never holds personal data


@dataclass(frozen=True)
class Payment:
    month: str  # YYYY-MM
    amount: Decimal
    status: str


@dataclass(frozen=True)
class PensionStatus:
    insurance_type: str
    status: str
    contribution_tier: str
    years_contributed: int
    account_balance: Decimal
    receiving: bool
    monthly_amount: Decimal | None
    payments: tuple[Payment, ...]  # newest first
    certification_status: str
    certification_due: dt.date | None


@dataclass(frozen=True)
class ReceiptRecord:
    receipt_id: str
    verify_url: str
    service: str
    terminal_id: str
    site_id: str
    created_at: dt.datetime
    received_at: dt.datetime
    replayed: bool  # the backend had already created this receipt for the same idempotency key


@dataclass(frozen=True)
class ReceiptVerification:
    genuine: bool
    reason: str  # ok | bad_signature | unknown_receipt
    receipt_id: str | None
    service: str | None
    title: str | None
    name_masked: str | None
    id_masked: str | None
    created_at: dt.datetime | None
    site_id: str | None
    terminal_id: str | None


@dataclass(frozen=True)
class FilingRecord:
    filing_id: str
    status: str  # accepted (this call filed it) | already_reported (an earlier filing had; its ids are given)
    card_status: str  # temporarily_suspended
    receipt_id: str
    verify_url: str
    created_at: dt.datetime
    received_at: dt.datetime
    replayed: bool  # the backend had already answered this idempotency key
    lines: tuple[tuple[str, str], ...] = ()  # label / value lines the backend recorded on the receipt


@dataclass(frozen=True)
class FilingStatus:
    filing_id: str
    type: str  # card_loss
    status: str  # accepted
    created_at: dt.datetime


@dataclass(frozen=True)
class ECardPerson:
    name: str = field(repr=False)
    ssn: str = field(repr=False)


def _retry(methods: frozenset[str], retries: int, backoff_factor: float) -> Retry:
    return Retry(
        total=retries,
        connect=retries,
        read=retries,  # urllib3 only retries read errors for allowed_methods
        status=retries,
        other=0,  # TLS and protocol surprises: fail at once, a repeat will not help
        redirect=0,
        allowed_methods=methods,
        status_forcelist=_RETRY_STATUSES,
        backoff_factor=backoff_factor,
        backoff_max=2.0,
        raise_on_status=False,  # hand back the last 5xx so it becomes server_error
        respect_retry_after_header=True,
    )


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
    ) -> None:
        """Raises ValueError when the configuration is unsafe or incomplete (checked once, at startup).

        allow_insecure (dev mode only) permits http:// and ca_path=None (no server verification).
        client_cert/client_key may be None before enrolment; the backend then refuses the TLS handshake.
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
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("timeouts must be positive")

        self.base_url = base_url.rstrip("/")
        self.timeout = (float(connect_timeout), float(read_timeout))
        self.session = requests.Session()
        self.session.verify = verify
        self.session.cert = cert
        self.session.trust_env = False  # no proxies or CA bundles from the environment
        self.session.headers.update({"Accept": "application/json", "User-Agent": "village-kiosk/1"})
        safe = HTTPAdapter(max_retries=_retry(frozenset({"GET", "HEAD"}), retries, backoff_factor))
        receipts = HTTPAdapter(max_retries=_retry(frozenset({"GET", "HEAD", "POST"}), retries, backoff_factor))
        self.session.mount(self.base_url + "/", safe)
        # Longest prefix wins in requests: these POSTs may retry, their Idempotency-Key makes it safe.
        self.session.mount(self.base_url + "/v1/receipts", receipts)
        self.session.mount(self.base_url + "/v1/filings/card-loss", receipts)
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
        got = self._call("GET", "/v1/health", "/v1/health")
        if isinstance(got, BackendFailure):
            return False
        return isinstance(got, Mapping) and got.get("status") == "ok"

    def pension(self, ssn: str) -> PensionStatus | BackendFailure:
        got = self._call("GET", f"/v1/pension/{quote(ssn, safe='')}", "/v1/pension/{ssn}")
        return got if isinstance(got, BackendFailure) else _parse(_pension, got)

    def create_receipt(
        self,
        *,
        idempotency_key: str,
        terminal_id: str,
        site_id: str,
        service: str,
        ssn: str,
        summary: Mapping[str, Any],
        created_at: dt.datetime | str,
        name: str | None = None,
    ) -> ReceiptRecord | BackendFailure:
        """Safe to call again with the same idempotency_key and body: the backend returns the same receipt."""
        body: dict[str, Any] = {
            "terminal_id": terminal_id,
            "site_id": site_id,
            "service": service,
            "ssn": ssn,
            "summary": dict(summary),
            "created_at": created_at.isoformat() if isinstance(created_at, dt.datetime) else created_at,
        }
        if name is not None:
            body["name"] = name
        got = self._call(
            "POST", "/v1/receipts", "/v1/receipts", json=body, headers={"Idempotency-Key": idempotency_key}
        )
        return got if isinstance(got, BackendFailure) else _parse(_receipt, got)

    def report_card_loss(
        self,
        *,
        idempotency_key: str,
        terminal_id: str,
        site_id: str,
        ssn: str,
        credential: str,
        created_at: dt.datetime | str,
        name: str | None = None,
    ) -> FilingRecord | BackendFailure:
        """社保卡临时挂失. credential: id_card | sscard_pin | ecard. Safe to repeat with the same key and body.
        A card already suspended answers status already_reported (not a failure). Failures worth knowing:
        NOT_FOUND code no_card (no card for this person), REJECTED code idempotency_conflict / invalid_request."""
        body: dict[str, Any] = {
            "terminal_id": terminal_id,
            "site_id": site_id,
            "ssn": ssn,
            "credential": credential,
            "created_at": created_at.isoformat() if isinstance(created_at, dt.datetime) else created_at,
        }
        if name is not None:
            body["name"] = name
        got = self._call(
            "POST", "/v1/filings/card-loss", "/v1/filings/card-loss", json=body,
            headers={"Idempotency-Key": idempotency_key},
        )
        return got if isinstance(got, BackendFailure) else _parse(_filing_record, got)

    def filing_status(self, filing_id: str) -> FilingStatus | BackendFailure:
        """NOT_FOUND code unknown_filing when the backend has no such filing."""
        got = self._call("GET", f"/v1/filings/{quote(filing_id, safe='')}", "/v1/filings/{filing_id}")
        return got if isinstance(got, BackendFailure) else _parse(_filing_status, got)

    def verify_receipt(self, url: str) -> ReceiptVerification | BackendFailure:
        """Check a receipt QR URL; only URLs on this backend are fetched (the client cert goes nowhere else)."""
        prefix = self.base_url + "/v1/receipts/"
        if not url.startswith(prefix):
            return BackendFailure(FailureKind.REJECTED, code="foreign_url", message="URL is not on this backend")
        got = self._call("GET", url[len(self.base_url):], "/v1/receipts/{id}/verify")
        return got if isinstance(got, BackendFailure) else _parse(_verification, got)

    def resolve_ecard(self, code: str) -> ECardPerson | BackendFailure:
        got = self._call("POST", "/v1/ecard/resolve", "/v1/ecard/resolve", json={"code": code})
        return got if isinstance(got, BackendFailure) else _parse(_ecard_person, got)

    # --- transport ------------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        route: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Decoded JSON of a 2xx answer, or a BackendFailure. `route` (a template) is what gets logged."""
        started = time.monotonic()
        try:
            resp = self.session.request(
                method,
                self.base_url + path,
                json=json,
                headers=dict(headers or {}),
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.RequestException as exc:
            failure = _failure_from_exception(exc)
            log.info("%s %s -> %s (%s) in %.0f ms", method, route, failure.kind.value, failure.code,
                     (time.monotonic() - started) * 1000)
            return failure
        with resp:
            elapsed = (time.monotonic() - started) * 1000
            if 200 <= resp.status_code < 300:
                try:
                    data = resp.json()
                except ValueError:
                    log.info("%s %s -> %d unparseable in %.0f ms", method, route, resp.status_code, elapsed)
                    return BackendFailure(FailureKind.BAD_RESPONSE, code="not_json", status=resp.status_code)
                log.info("%s %s -> %d in %.0f ms", method, route, resp.status_code, elapsed)
                return data
            failure = _failure_from_response(resp)
            log.info("%s %s -> %d %s in %.0f ms", method, route, resp.status_code, failure.code, elapsed)
            return failure


def _failure_from_response(resp: requests.Response) -> BackendFailure:
    code: str | None = None
    try:
        body = resp.json()
        if isinstance(body, dict) and isinstance(body.get("code"), str):
            code = body["code"][:64]
    except ValueError:
        pass
    status = resp.status_code
    if status == 404:
        kind = FailureKind.NOT_FOUND
    elif 400 <= status < 500:
        kind = FailureKind.REJECTED
    elif status >= 500:
        kind = FailureKind.SERVER_ERROR
    else:  # 1xx/3xx: we never follow redirects, and the API has none
        kind = FailureKind.BAD_RESPONSE
    return BackendFailure(kind, code=code, status=status, message=f"HTTP {status}")


def _failure_from_exception(exc: requests.exceptions.RequestException) -> BackendFailure:
    # Messages carry exception class names only: str(exc) holds the URL, and URLs may hold an ID number.
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    name = type(reason or exc).__name__
    if isinstance(exc, requests.exceptions.SSLError) or isinstance(reason, urllib3.exceptions.SSLError):
        # Kept as "offline" so queued filings stay queued; the code tells a technician it is TLS.
        return BackendFailure(FailureKind.OFFLINE, code="tls_error", message=name)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return BackendFailure(FailureKind.OFFLINE, code="connect_timeout", message=name)
    if isinstance(exc, requests.exceptions.ReadTimeout) or isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        return BackendFailure(FailureKind.TIMEOUT, code="read_timeout", message=name)
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return BackendFailure(FailureKind.BAD_RESPONSE, code="decoding_error", message=name)
    return BackendFailure(FailureKind.OFFLINE, code="connection_error", message=name)


# --- parsing (strict: anything off the documented shape is bad_response) ----------------------------------


def _parse(fn: Any, data: Any) -> Any:
    try:
        return fn(data)
    except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as exc:
        return BackendFailure(FailureKind.BAD_RESPONSE, code="bad_shape", message=type(exc).__name__)


def _obj(d: Any) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise TypeError("object expected")
    return d


def _s(d: Mapping[str, Any], key: str) -> str:
    v = d[key]
    if not isinstance(v, str):
        raise TypeError(key)
    return v


def _opt_s(d: Mapping[str, Any], key: str) -> str | None:
    v = d.get(key)
    return None if v is None else _s(d, key)


def _b(d: Mapping[str, Any], key: str) -> bool:
    v = d[key]
    if not isinstance(v, bool):
        raise TypeError(key)
    return v


def _i(d: Mapping[str, Any], key: str) -> int:
    v = d[key]
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(key)
    return v


def _money(d: Mapping[str, Any], key: str) -> Decimal:
    v = Decimal(_s(d, key))
    if not v.is_finite():
        raise ValueError(key)
    return v


def _dt(d: Mapping[str, Any], key: str) -> dt.datetime:
    v = dt.datetime.fromisoformat(_s(d, key))
    if v.tzinfo is None:
        raise ValueError(key)
    return v


def _pension(data: Any) -> PensionStatus:
    d = _obj(data)
    payments = d["payments"]
    if not isinstance(payments, list):
        raise TypeError("payments")
    return PensionStatus(
        insurance_type=_s(d, "insurance_type"),
        status=_s(d, "status"),
        contribution_tier=_s(d, "contribution_tier"),
        years_contributed=_i(d, "years_contributed"),
        account_balance=_money(d, "account_balance"),
        receiving=_b(d, "receiving"),
        monthly_amount=None if d.get("monthly_amount") is None else _money(d, "monthly_amount"),
        payments=tuple(
            Payment(month=_s(_obj(p), "month"), amount=_money(p, "amount"), status=_s(p, "status")) for p in payments
        ),
        certification_status=_s(d, "certification_status"),
        certification_due=None if d.get("certification_due") is None else dt.date.fromisoformat(
            _s(d, "certification_due")
        ),
    )


def _receipt(data: Any) -> ReceiptRecord:
    d = _obj(data)
    return ReceiptRecord(
        receipt_id=_s(d, "receipt_id"),
        verify_url=_s(d, "verify_url"),
        service=_s(d, "service"),
        terminal_id=_s(d, "terminal_id"),
        site_id=_s(d, "site_id"),
        created_at=_dt(d, "created_at"),
        received_at=_dt(d, "received_at"),
        replayed=_b(d, "replayed"),
    )


def _filing_record(data: Any) -> FilingRecord:
    d = _obj(data)
    raw_lines = d.get("lines", [])
    if not isinstance(raw_lines, list):
        raise TypeError("lines")
    lines = []
    for line in raw_lines:
        if not (isinstance(line, list) and len(line) == 2 and all(isinstance(x, str) for x in line)):
            raise TypeError("lines")
        lines.append((line[0], line[1]))
    return FilingRecord(
        filing_id=_s(d, "filing_id"),
        status=_s(d, "status"),
        card_status=_s(d, "card_status"),
        receipt_id=_s(d, "receipt_id"),
        verify_url=_s(d, "verify_url"),
        created_at=_dt(d, "created_at"),
        received_at=_dt(d, "received_at"),
        replayed=_b(d, "replayed"),
        lines=tuple(lines),
    )


def _filing_status(data: Any) -> FilingStatus:
    d = _obj(data)
    return FilingStatus(
        filing_id=_s(d, "filing_id"),
        type=_s(d, "type"),
        status=_s(d, "status"),
        created_at=_dt(d, "created_at"),
    )


def _verification(data: Any) -> ReceiptVerification:
    d = _obj(data)
    return ReceiptVerification(
        genuine=_b(d, "genuine"),
        reason=_s(d, "reason"),
        receipt_id=_opt_s(d, "receipt_id"),
        service=_opt_s(d, "service"),
        title=_opt_s(d, "title"),
        name_masked=_opt_s(d, "name_masked"),
        id_masked=_opt_s(d, "id_masked"),
        created_at=None if d.get("created_at") is None else _dt(d, "created_at"),
        site_id=_opt_s(d, "site_id"),
        terminal_id=_opt_s(d, "terminal_id"),
    )


def _ecard_person(data: Any) -> ECardPerson:
    d = _obj(data)
    return ECardPerson(name=_s(d, "name"), ssn=_s(d, "ssn"))
