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
    UNKNOWN_SERVICE = "unknown_service"
    LEVEL_TOO_LOW = "level_too_low"  # the credential used does not reach the service's level
    ATTACHMENT_MISSING = "attachment_missing"  # a filing names an attachment not uploaded yet: upload, then retry
    ATTACHMENT_INVALID = "attachment_invalid"  # wrong type, too large, or the bytes do not match the digest


class FilingType(StrEnum):
    CARD_LOSS = "card_loss"


class ServiceLevel(StrEnum):
    """The credential level a service needs (the kiosk's catalog.Level on the wire)."""

    ID_CARD = "id_card"  # the resident ID card alone is enough
    STRONG = "strong"  # social-security card + PIN, or the electronic social-security card


class Handling(StrEnum):
    DIRECT = "direct"  # the village station decides it
    FORWARDED = "forwarded"  # goes to the township's worklist (上下联办)


class Progress(StrEnum):
    """Where a filing stands (我的办件)."""

    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    FORWARDED = "forwarded"
    DONE = "done"
    RETURNED = "returned"  # with a reason


class Satisfaction(StrEnum):
    SATISFIED = "satisfied"  # 满意
    BASICALLY = "basically_satisfied"  # 基本满意
    DISSATISFIED = "dissatisfied"  # 不满意


class RatingReason(StrEnum):
    """Reason buttons under 不满意 (no typing)."""

    TOO_SLOW = "too_slow"  # 办得太慢
    HARD_TO_USE = "hard_to_use"  # 机器不好用
    NOT_CLEAR = "not_clear"  # 说得不清楚
    NOT_SOLVED = "not_solved"  # 事情没办成
    STAFF = "staff"  # 工作人员态度


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
    FILING_FILED = "filing_filed"
    FILINGS_LISTED = "filings_listed"
    FILING_READ = "filing_read"
    AUDIT_READ = "audit_read"
