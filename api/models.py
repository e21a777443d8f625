"""Every request and answer body of the kiosk API (backend/openapi.json is generated from these).

Request models forbid unknown fields: a terminal cannot slip in who it is (`terminal_id`) or anything else the
backend decides itself. Money travels as a decimal string ("238.50") and is a `Decimal` in the model: no float
ever touches it. Clients parse answers with `parse(Model, raw_bytes)` (strict, raises pydantic.ValidationError).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from api.enums import (
    AuditAction,
    CardStatus,
    Credential,
    ErrorCode,
    FilingState,
    FilingType,
    ReceiptService,
    VerifyReason,
)
from api.idnumber import is_valid as ssn_is_valid
from api.patterns import FILING_ID_PATTERN, ID_PATTERN, MONEY_PATTERN, SERVICE_KEY_PATTERN

API_VERSION = "1"

# --- field types ---------------------------------------------------------------------------------------


_CENT = Decimal("0.01")
_MONEY_RE = re.compile(MONEY_PATTERN)


def _bad_money() -> PydanticCustomError:
    return PydanticCustomError("money", 'amount must be a decimal string such as "238.50"')


def _money_in(value: Any) -> Decimal:
    # Only the wire form (a decimal string) or an exact Decimal with whole cents: never a float.
    if isinstance(value, str) and _MONEY_RE.fullmatch(value):
        return Decimal(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.quantize(_CENT):
        return value.quantize(_CENT)
    raise _bad_money()


Money = Annotated[
    Decimal,
    BeforeValidator(_money_in),
    PlainSerializer(lambda d: f"{d:.2f}", return_type=str),
    WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN, "description": "Yuan, two decimals"}),
]
"""Yuan as a Decimal in Python, a two-decimal string on the wire."""


def _ssn_in(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("invalid_ssn", "ID number must be a string")
    v = value.upper()
    if not ssn_is_valid(v):
        raise PydanticCustomError("invalid_ssn", "ID number check digit does not match")
    return v


Ssn = Annotated[
    str,
    BeforeValidator(_ssn_in),
    WithJsonSchema(
        {"type": "string", "pattern": r"^\d{17}[\dXx]$", "description": "GB 11643 ID number (check digit verified)"}
    ),
]
"""An 18-character citizen ID number with a valid check digit, upper-case X."""

TerminalId = Annotated[str, Field(pattern=ID_PATTERN)]
FilingId = Annotated[str, Field(pattern=FILING_ID_PATTERN)]
Line = tuple[str, str]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Answer(BaseModel):
    pass


# --- errors ----------------------------------------------------------------------------------------------


class ErrorBody(_Answer):
    code: ErrorCode = Field(description="Stable machine-readable error code")
    message: str = Field(description="Human-readable explanation (Simplified Chinese)")


class FieldProblem(_Answer):
    loc: list[str]
    type: str


class InvalidRequestBody(ErrorBody):
    fields: list[FieldProblem] = Field(description="Where and what; the input itself is never echoed")


# --- health --------------------------------------------------------------------------------------------


class Health(_Answer):
    status: str = Field(pattern="^ok$")
    api_version: str
    time: AwareDatetime


# --- sessions --------------------------------------------------------------------------------------------


class SessionOpen(_Request):
    """Open a session for one resident. sscard_pin / id_card: `ssn` (and optionally `name`) as read from the
    credential; ecard: `code`, the scanned QR text. Fields that do not belong to the credential are refused."""

    credential: Credential
    ssn: Ssn | None = None
    name: str | None = Field(default=None, min_length=1, max_length=64)
    code: str | None = Field(default=None, min_length=1, max_length=512)

    @model_validator(mode="after")
    def _fits_credential(self) -> SessionOpen:
        if self.credential is Credential.ECARD:
            if self.code is None:
                raise PydanticCustomError("missing", "ecard needs the scanned code")
            if self.ssn is not None or self.name is not None:
                raise PydanticCustomError("extra_forbidden", "ecard carries only the code")
        else:
            if self.ssn is None:
                raise PydanticCustomError("missing", "this credential needs the ID number")
            if self.code is not None:
                raise PydanticCustomError("extra_forbidden", "code belongs to ecard only")
        return self


class Person(_Answer):
    name: str
    ssn: str


class SessionOpened(_Answer):
    token: str = Field(description="Bearer token; valid only from the terminal that opened it")
    expires_at: AwareDatetime
    credential: Credential
    person: Person = Field(description="The record on file (id_card / sscard_pin without one: as given)")


# --- pension ---------------------------------------------------------------------------------------------


class PensionRequest(_Request):
    ssn: Ssn | None = Field(default=None, description="Optional; must be the session's person")


class Payment(_Answer):
    month: str = Field(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")
    amount: Money
    status: str


class Pension(_Answer):
    insurance_type: str
    status: str
    contribution_tier: str
    years_contributed: int
    account_balance: Money
    receiving: bool
    monthly_amount: Money | None = None
    payments: list[Payment] = Field(description="Last 12 monthly payments, newest first (empty if not receiving)")
    certification_status: str = Field(description="待遇资格认证 status")
    certification_due: dt.date | None


# --- receipts --------------------------------------------------------------------------------------------


class ReceiptRequest(_Request):
    """Ask for a receipt of what the backend recorded in this session (it writes the lines itself)."""

    service: ReceiptService
    created_at: AwareDatetime = Field(description="When the terminal asked (within 5 minutes ahead, 30 days back)")


class Receipt(_Answer):
    receipt_id: str
    verify_url: str = Field(description="Full https URL printed as the receipt's QR code")
    service: str = Field(pattern=SERVICE_KEY_PATTERN)
    title: str = Field(default="", description="Receipt heading, chosen by the backend")
    terminal_id: str
    site_id: str
    created_at: AwareDatetime
    received_at: AwareDatetime
    replayed: bool = Field(description="True when this idempotency key had already created the receipt")
    lines: list[Line] = Field(description="Label / value lines recorded by the backend; print them as given")


class Verification(_Answer):
    genuine: bool
    reason: VerifyReason
    receipt_id: str | None = None
    service: str | None = None
    title: str | None = None
    name_masked: str | None = None
    id_masked: str | None = None
    created_at: AwareDatetime | None = Field(default=None, description="When the terminal says it served the resident")
    received_at: AwareDatetime | None = Field(
        default=None, description="When the backend recorded the receipt (its own clock: the time to trust)"
    )
    site_id: str | None = None
    terminal_id: str | None = None


# --- filings ---------------------------------------------------------------------------------------------


class CardLossRequest(_Request):
    """Person, credential and terminal come from the session and the certificate, never from the body."""

    created_at: AwareDatetime = Field(description="When the terminal accepted the filing")


class CardLossFiling(_Answer):
    filing_id: FilingId
    status: FilingState = Field(
        description="accepted: this request filed it; already_reported: the card was already suspended by "
        "filing_id (an earlier report), nothing new was filed"
    )
    card_status: CardStatus
    receipt_id: str
    verify_url: str = Field(description="Full https URL printed as the receipt's QR code")
    lines: list[Line] = Field(description="Label / value lines recorded on the receipt, to print")
    created_at: AwareDatetime = Field(description="When the terminal accepted the filing (of filing_id)")
    received_at: AwareDatetime = Field(description="When the backend recorded the filing (of filing_id)")
    replayed: bool = Field(description="True when this idempotency key had already been answered")


class FilingStatus(_Answer):
    filing_id: FilingId
    type: FilingType
    status: FilingState
    created_at: AwareDatetime


# --- audit ------------------------------------------------------------------------------------------------


class AuditEntry(_Answer):
    time: AwareDatetime
    terminal_id: str
    site_id: str
    credential: Credential
    action: AuditAction


class AuditLog(_Answer):
    entries: list[AuditEntry] = Field(description="Every access to this person's data, newest first")


# --- e-card (old route) and demo ----------------------------------------------------------------------


class ECardResolveIn(_Request):
    code: str = Field(min_length=1, max_length=512)


class ECardPerson(_Answer):
    name: str
    ssn: str


class DemoECardCode(_Answer):
    code: str
    expires_at: AwareDatetime
    ttl_seconds: int


class Revoked(_Answer):
    revoked: bool


# --- parsing / encoding for clients ----------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


@cache
def adapter(model: type[M]) -> TypeAdapter[M]:
    """One TypeAdapter per model (building one is not free)."""
    return TypeAdapter(model)


def parse(model: type[M], raw: bytes | str) -> M:
    """Parse an answer body strictly (no type coercion beyond what JSON itself cannot express).
    Raises pydantic.ValidationError on anything that is not exactly the documented shape."""
    return adapter(model).validate_json(raw, strict=True)


def encode(body: BaseModel) -> bytes:
    """A request body as JSON bytes (unset optional fields left out)."""
    return body.model_dump_json(exclude_none=True).encode("utf-8")


REQUEST_MODELS: tuple[type[BaseModel], ...] = (SessionOpen, PensionRequest, ReceiptRequest, CardLossRequest)
ANSWER_MODELS: tuple[type[BaseModel], ...] = (
    ErrorBody, InvalidRequestBody, Health, SessionOpened, Pension, Receipt, Verification, CardLossFiling,
    FilingStatus, AuditLog,
)
DEMO_MODELS: tuple[type[BaseModel], ...] = (ECardResolveIn, DemoECardCode, Revoked)  # only with --demo

__all__ = [
    "API_VERSION", "Money", "Ssn", "TerminalId", "Line", "ErrorBody", "FieldProblem", "InvalidRequestBody", "Health",
    "SessionOpen", "Person", "SessionOpened", "PensionRequest", "Payment", "Pension", "ReceiptRequest", "Receipt",
    "Verification", "CardLossRequest", "CardLossFiling", "FilingStatus", "AuditEntry", "AuditLog",
    "ECardResolveIn", "ECardPerson", "DemoECardCode", "Revoked", "parse", "encode", "adapter",
    "REQUEST_MODELS", "ANSWER_MODELS", "DEMO_MODELS",
]
