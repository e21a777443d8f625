"""Closed sets of values on the wire. Both sides compare against these, never against bare strings."""

from __future__ import annotations

from enum import StrEnum


class Credential(StrEnum):
    """How the resident proved who they are at the terminal."""

    SSCARD_PIN = "sscard_pin"  # social-security card + PIN
    ID_CARD = "id_card"  # resident ID card read by the terminal
    ECARD = "ecard"  # electronic social-security card QR code


class ErrorCode(StrEnum):
    """Every stable error code the backend answers (the `code` of an error body)."""

    INVALID_REQUEST = "invalid_request"
    BODY_TOO_LARGE = "body_too_large"
    CERTIFICATE_REQUIRED = "certificate_required"
    CERTIFICATE_REVOKED = "certificate_revoked"
    TOKEN_REQUIRED = "token_required"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    WRONG_TERMINAL = "wrong_terminal"
    PERSON_MISMATCH = "person_mismatch"
    RATE_LIMITED = "rate_limited"
    IDEMPOTENCY_KEY_REQUIRED = "idempotency_key_required"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    INVALID_SSN = "invalid_ssn"
    NO_RECORD = "no_record"
    NO_CARD = "no_card"
    UNKNOWN_FILING = "unknown_filing"
    NOTHING_TO_VOUCH = "nothing_to_vouch"
    ECARD_UNKNOWN = "ecard_unknown"
    ECARD_EXPIRED = "ecard_expired"
    ECARD_REVOKED = "ecard_revoked"
    UNKNOWN_PERSONA = "unknown_persona"  # demo endpoints only
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    GONE = "gone"
    HTTP_ERROR = "http_error"  # any other HTTP-level refusal
    SERVER_ERROR = "server_error"
    OFFLINE = "offline"


class FilingType(StrEnum):
    CARD_LOSS = "card_loss"


class FilingState(StrEnum):
    ACCEPTED = "accepted"  # this request filed it
    ALREADY_REPORTED = "already_reported"  # an earlier filing already did; nothing new was filed


class CardStatus(StrEnum):
    TEMPORARILY_SUSPENDED = "temporarily_suspended"


class VerifyReason(StrEnum):
    OK = "ok"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_RECEIPT = "unknown_receipt"


class ReceiptService(StrEnum):
    """Services a terminal may ask a receipt for (POST /v1/receipts)."""

    PENSION_QUERY = "pension_query"


class AuditAction(StrEnum):
    """What a terminal did with a person's data (rows of GET /v1/audit)."""

    SESSION_OPENED = "session_opened"
    SESSION_CLOSED = "session_closed"
    PENSION_READ = "pension_read"
    RECEIPT_ISSUED = "receipt_issued"
    CARD_LOSS_FILED = "card_loss_filed"
    FILING_READ = "filing_read"
    AUDIT_READ = "audit_read"
