"""The reference service catalog: backend/services/catalog.json (data, not code), checked once at start.

Each service is an api.models.ServiceInfo whose `form` is a JSON Schema 2020-12 with UI hints (docs/filings.md).
The backend validates answers with the very schema it serves (jsonschema, with the format checker for `date`),
so the kiosk and the backend speak one form language. A catalog that does not check out stops start-up: the
backend must never serve a form it cannot itself validate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry

from api.enums import Credential, ServiceLevel
from api.models import ServiceInfo

log = logging.getLogger("backend.catalog")

CATALOG_PATH = Path(__file__).resolve().parent / "services" / "catalog.json"

WIDGETS = frozenset(
    {"choice", "pick", "yesno", "date", "keypad", "document", "face", "signature", "prefill"}
)
# No remote $ref is ever fetched (the library's default registry would): a form refers only to itself.
_LOCAL_ONLY: Registry = Registry()
# Answers of these widgets are SHA-256 digests of bytes uploaded first (PUT /v1/attachments/{sha256}).
ATTACHMENT_MEDIA = {"document": "image/jpeg", "face": "image/jpeg", "signature": "image/png"}


class CatalogError(ValueError):
    """The catalog file cannot be served (bad JSON, a service that is not a ServiceInfo, a bad form)."""


@dataclass(frozen=True)
class Service:
    info: ServiceInfo
    raw: dict[str, Any]
    validator: Draft202012Validator

    @property
    def key(self) -> str:
        return self.info.key

    def widget(self, field: str) -> str | None:
        prop = self.info.form.get("properties", {}).get(field)
        return prop.get("x-widget") if isinstance(prop, dict) else None

    def attachments(self, answers: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
        """(field, digest, expected media type) of every attachment answer given."""
        for field, value in answers.items():
            widget = self.widget(field)
            if widget in ATTACHMENT_MEDIA and isinstance(value, str):
                yield field, value, ATTACHMENT_MEDIA[widget]

    def problems(self, answers: dict[str, Any]) -> list[dict[str, Any]]:
        """The fields the form refuses, as FieldProblem dicts: loc ["body", "answers", field] and the failing
        JSON Schema keyword. Never the value, and never a field name the form does not have (it is input).
        Never raises: a validator that breaks on these answers (start-up probes every form, but answers are
        input) refuses them as a whole, type "schema", so the filing is answered 422, not 500."""
        try:
            return self._problems(answers)
        except Exception as e:
            log.error("service %s: answers cannot be validated (%s)", self.key, type(e).__name__)
            return [{"loc": ["body", "answers"], "type": "schema"}]

    def _problems(self, answers: dict[str, Any]) -> list[dict[str, Any]]:
        out: dict[tuple[str, ...], str] = {}
        props = self.info.form.get("properties", {})
        for err in self.validator.iter_errors(answers):
            loc: tuple[str, ...]
            path = list(err.absolute_path)
            if path and isinstance(path[0], str) and path[0] in props:
                loc = ("body", "answers", path[0])
            elif err.validator == "required":
                missing = [f for f in self.info.form.get("required", []) if f not in answers]
                for f in missing:
                    out.setdefault(("body", "answers", f), "required")
                continue
            else:
                loc = ("body", "answers")
            out.setdefault(loc, _keyword(err))
        return [{"loc": list(loc), "type": kind} for loc, kind in out.items()]


def _keyword(err: ValidationError) -> str:
    # oneOf over {const, title} options fails as "oneOf": report that (the option list), not a sub-error.
    return str(err.validator)


class Catalog:
    """The services by key, the canonical JSON served by GET /v1/services and its strong ETag."""

    def __init__(self, services: list[Service]) -> None:
        self.services = {s.key: s for s in services}
        self.body = json.dumps(
            {"services": [s.raw for s in services]}, ensure_ascii=False, sort_keys=True, separators=(",", ":")
        ).encode("utf-8")
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'

    def get(self, key: str) -> Service | None:
        return self.services.get(key)

    def __iter__(self) -> Iterator[Service]:
        return iter(self.services.values())


def compile_service(raw: dict[str, Any]) -> Service:
    try:
        info = ServiceInfo.model_validate(raw)
    except ValueError as e:
        raise CatalogError(f"service {raw.get('key')!r}: {e}") from None
    form = info.form
    try:
        Draft202012Validator.check_schema(form)
    except Exception as e:  # SchemaError; check_schema may raise others on odd input
        raise CatalogError(f"service {info.key}: form is not JSON Schema 2020-12: {e}") from None
    if form.get("type") != "object" or form.get("additionalProperties") is not False:
        raise CatalogError(f"service {info.key}: a form is an object with additionalProperties false")
    props = form.get("properties", {})
    if sorted(form.get("x-order", [])) != sorted(props):
        raise CatalogError(f"service {info.key}: x-order must name every property once")
    for field, prop in props.items():
        if not isinstance(prop, dict) or prop.get("x-widget") not in WIDGETS:
            raise CatalogError(f"service {info.key}: field {field} has no known x-widget")
    validator = Draft202012Validator(form, format_checker=FormatChecker(), registry=_LOCAL_ONLY)
    _probe(info.key, validator, props)
    return Service(info, raw, validator)


def _probe(key: str, validator: Draft202012Validator, props: dict[str, Any]) -> None:
    """Run the validator once on every property (as the form sees it, so a $ref resolves against the whole
    form) and on the whole form: a $ref that does not resolve, a remote one, or a keyword the library trips
    over stops start-up here, instead of answering 500 to every filing of the service."""
    try:
        list(validator.iter_errors({}))
        samples = {field: _sample(prop) for field, prop in props.items()}
        for field, prop in props.items():
            question = validator.evolve(schema=prop)
            for value in (None, samples[field]):
                list(question.iter_errors(value))
        list(validator.iter_errors(samples))
    except Exception as e:
        raise CatalogError(f"service {key}: form cannot be validated ({type(e).__name__}: {str(e)[:200]})") from None


def _sample(prop: dict[str, Any]) -> Any:
    """One plausible answer of the property's type (what it is checked with at start)."""
    options = prop.get("oneOf")
    if isinstance(options, list) and options and isinstance(options[0], dict) and "const" in options[0]:
        return options[0]["const"]
    kind = prop.get("type")
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        low = prop.get("minimum")
        return int(low) if isinstance(low, int | float) and not isinstance(low, bool) else 0
    if prop.get("format") == "date":
        return "2000-01-01"
    return "0"


def load_catalog(path: str | os.PathLike[str] = CATALOG_PATH) -> Catalog:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CatalogError(f"catalog {path}: {e}") from None
    services = [compile_service(raw) for raw in data.get("services", [])]
    if len({s.key for s in services}) != len(services):
        raise CatalogError("catalog: duplicate service keys")
    return Catalog(services)


def level_of(credential: Credential | str) -> ServiceLevel:
    """The level a credential reaches: the ID card alone is id_card; card + PIN or the e-card is strong."""
    return ServiceLevel.ID_CARD if Credential(credential) is Credential.ID_CARD else ServiceLevel.STRONG


def reaches(credential: Credential | str, needed: ServiceLevel | str) -> bool:
    return ServiceLevel(needed) is ServiceLevel.ID_CARD or level_of(credential) is ServiceLevel.STRONG


__all__ = [
    "CATALOG_PATH", "WIDGETS", "ATTACHMENT_MEDIA", "CatalogError", "Service", "Catalog", "compile_service",
    "load_catalog", "level_of", "reaches",
]
