"""Patterns both sides check: what a terminal id, site id, idempotency key and filing id may look like."""

from __future__ import annotations

# Terminal and site ids appear in certificates, URLs-free log lines and receipts: plain ASCII, bounded.
ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:-]{8,128}$"
FILING_ID_PATTERN = r"^[A-Za-z0-9-]{1,64}$"
SERVICE_KEY_PATTERN = r"^[a-z0-9_]{1,64}$"
MONEY_PATTERN = r"^-?\d+\.\d{2}$"
LOCAL_NUMBER_PATTERN = r"^L[0-9]{8}-[0-9A-Z]{6}$"  # offline receipt number: L + YYYYMMDD + "-" + 6 random base32
SHA256_PATTERN = r"^[0-9a-f]{64}$"  # attachments are named by the SHA-256 of their bytes
