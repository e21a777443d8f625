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
    Handling,
    Progress,
    RatingReason,
    ReceiptService,
    Satisfaction,
    ServiceLevel,
    VerifyReason,
)
from api.idnumber import is_valid as ssn_is_valid
from api.patterns import (
    FILING_ID_PATTERN,
    ID_PATTERN,
    LOCAL_NUMBER_PATTERN,
    MONEY_PATTERN,
    SERVICE_KEY_PATTERN,
    SHA256_PATTERN,
)

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
LocalNumber = Annotated[str, Field(pattern=LOCAL_NUMBER_PATTERN)]
ServiceKey = Annotated[str, Field(pattern=SERVICE_KEY_PATTERN)]
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN)]
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
    filing_status: Progress | None = Field(default=None, description="For a filing's receipt: where it stands")
    filing_reason: str | None = Field(default=None, description="Why it was returned, if it was")


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


# --- catalog (GET /v1/services) -----------------------------------------------------------------------------


class ServiceInfo(_Answer):
    """One service and what every station must publish about it (八公开), plus how the kiosk files it."""

    key: ServiceKey
    title: str = Field(min_length=1, max_length=64)
    description: str
    basis: str = Field(description="Policy basis (办理依据)")
    materials: list[str] = Field(description="Materials the resident needs (申请材料)")
    process: list[str] = Field(description="Steps (办理流程)")
    fee: str = Field(description="收费标准, usually 不收费")
    time_limit_days: int = Field(ge=0, le=365, description="Promised working days (办理时限); 0: on the spot")
    phone: str = Field(description="The service's enquiry phone (咨询电话)")
    supervision_phone: str = Field(description="监督电话")
    level: ServiceLevel
    handling: Handling
    online_only: bool = Field(description="Never tell the resident 'done' before the backend confirms it")
    form: dict[str, Any] = Field(
        description="JSON Schema 2020-12 of the answers, with UI hints (x-widget, x-order, x-prefill); "
        "validated by the kiosk and the backend with the same schema"
    )


class ServiceCatalog(_Answer):
    services: list[dict[str, Any]] = Field(
        description="ServiceInfo objects; a client checks each on its own, so one bad service hides only itself"
    )


# --- generic filings (POST /v1/filings) --------------------------------------------------------------------


class FilingPerson(_Request):
    """Who the filing is for, as the credential at the terminal told it (the certificate vouches for the
    terminal): a filing queued offline is sent long after its session, so it carries its person."""

    ssn: Ssn
    name: str = Field(min_length=1, max_length=64)
    credential: Credential


class FilingRequest(_Request):
    """A confirmed filing from the terminal's outbox. Idempotency-Key header required: a retry, a restart or a
    crash never files it twice. Attachment answers are SHA-256 digests of bytes uploaded first with
    PUT /v1/attachments/{sha256}; a missing one is 409 attachment_missing (upload, then send again)."""

    service: ServiceKey
    local_number: LocalNumber = Field(description="The number the terminal printed; the backend keeps it")
    person: FilingPerson
    answers: dict[str, Any] = Field(description="Validated against the service's form schema (422 names the field)")
    created_at: AwareDatetime = Field(description="When the resident confirmed it at the terminal")


class Filing(_Answer):
    """The backend's answer to a filing: its number, where it stands, and the receipt lines to print."""

    filing_id: FilingId
    local_number: LocalNumber | None = None
    service: ServiceKey
    title: str
    status: Progress
    handling: Handling
    due_date: dt.date = Field(description="Promised completion: time_limit_days working days after received_at")
    receipt_id: str
    verify_url: str = Field(description="Full https URL printed as the receipt's QR code")
    lines: list[Line] = Field(description="Label / value lines of the receipt (masked); print them as given")
    created_at: AwareDatetime
    received_at: AwareDatetime
    replayed: bool = Field(description="True when this idempotency key had already filed it")


class FilingSummary(_Answer):
    """One row of 我的办件 (no personal data beyond the masked name)."""

    filing_id: FilingId
    local_number: LocalNumber | None = None
    service: ServiceKey
    title: str
    status: Progress
    handling: Handling
    reason: str | None = Field(default=None, description="Why it was returned (status returned)")
    due_date: dt.date
    created_at: AwareDatetime
    updated_at: AwareDatetime


class FilingList(_Answer):
    filings: list[FilingSummary] = Field(description="The session person's filings, newest first")


class AttachmentStored(_Answer):
    sha256: Sha256
    size: int
    media_type: str
    replayed: bool = Field(description="True when these bytes were already stored")


class RatingRequest(_Request):
    """满意度评价 after a service. Idempotency-Key header required."""

    service: ServiceKey
    filing_ref: str | None = Field(default=None, max_length=64, description="filing_id or local_number, if any")
    satisfaction: Satisfaction
    reasons: list[RatingReason] = Field(default_factory=list, max_length=5, description="Only with dissatisfied")
    created_at: AwareDatetime


class RatingStored(_Answer):
    rating_id: str
    replayed: bool


class RatingSummary(_Answer):
    """Per station (the certificate's site): the satisfaction figure stations report."""

    site_id: str
    counts: dict[Satisfaction, int]
    reasons: dict[RatingReason, int]
    total: int
    satisfied_share: float = Field(description="(satisfied + basically_satisfied) / total; 0 when total is 0")


# --- help requests (请工作人员帮助) ----------------------------------------------------------------------------

HELP_SCREEN_PATTERN = r"^[a-z][a-z_]{0,31}$"


class HelpRequest(_Request):
    """Someone at the terminal pressed 请工作人员帮助. Nothing personal: the screen it was pressed on and when;
    the terminal and its site come from the certificate."""

    screen: str = Field(pattern=HELP_SCREEN_PATTERN, max_length=32, description="the kiosk screen, e.g. pin")
    created_at: AwareDatetime


class HelpRequestStored(_Answer):
    request_id: str


class HelpRequestRow(_Answer):
    request_id: str
    terminal_id: str
    site_id: str
    screen: str
    created_at: AwareDatetime = Field(description="the terminal's time")
    received_at: AwareDatetime = Field(description="the backend's time")


class HelpRequestList(_Answer):
    requests: list[HelpRequestRow] = Field(description="The county's recent help requests, newest first")


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


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    SessionOpen, PensionRequest, ReceiptRequest, CardLossRequest, FilingRequest, RatingRequest, HelpRequest,
)
ANSWER_MODELS: tuple[type[BaseModel], ...] = (
    ErrorBody, InvalidRequestBody, Health, SessionOpened, Pension, Receipt, Verification, CardLossFiling,
    FilingStatus, AuditLog, ServiceInfo, ServiceCatalog, Filing, FilingSummary, FilingList, AttachmentStored,
    RatingStored, RatingSummary, HelpRequestStored, HelpRequestRow, HelpRequestList,
)
DEMO_MODELS: tuple[type[BaseModel], ...] = (ECardResolveIn, DemoECardCode, Revoked)  # only with --demo

__all__ = [
    "API_VERSION", "Money", "Ssn", "TerminalId", "Line", "ErrorBody", "FieldProblem", "InvalidRequestBody", "Health",
    "SessionOpen", "Person", "SessionOpened", "PensionRequest", "Payment", "Pension", "ReceiptRequest", "Receipt",
    "Verification", "CardLossRequest", "CardLossFiling", "FilingStatus", "AuditEntry", "AuditLog",
    "ServiceInfo", "ServiceCatalog", "FilingPerson", "FilingRequest", "Filing", "FilingSummary", "FilingList",
    "AttachmentStored", "RatingRequest", "RatingStored", "RatingSummary", "LocalNumber", "ServiceKey", "Sha256",
    "ECardResolveIn", "ECardPerson", "DemoECardCode", "Revoked", "parse", "encode", "adapter",
    "REQUEST_MODELS", "ANSWER_MODELS", "DEMO_MODELS",
    "HelpRequest", "HelpRequestStored", "HelpRequestRow", "HelpRequestList", "HELP_SCREEN_PATTERN",
]
