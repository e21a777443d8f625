"""Service forms: a catalog entry (api.models.ServiceInfo) compiled into questions asked one a screen.

Pure: no Kivy, no I/O. The form language is JSON Schema 2020-12 (validated with `jsonschema`, the same library the
backend uses) plus the UI hints of docs/filings.md (x-order, x-widget, x-prefill, x-date, x-amount, x-voice, x-en).
A service whose form cannot be used raises FormError here, so the kiosk hides that one service and keeps the rest.
Wrong answers come back as plain-words message ids (form.error.*), never as the validator's English.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from calendar import monthrange
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field  # Question has an attribute called `field`
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from pydantic import ValidationError as ModelError
from referencing import Registry

from api.enums import ServiceLevel
from api.idnumber import is_valid as id_is_valid
from api.models import ServiceInfo
from api.patterns import SHA256_PATTERN
from api.privacy import mask_id, mask_name
from kiosk.catalog import Level
from kiosk.i18n import tr
from kiosk.speech import spoken_amount, spoken_date, spoken_digits, spoken_figure, spoken_number

WIDGETS = frozenset({"choice", "pick", "yesno", "date", "keypad", "document", "face", "signature", "prefill"})
ATTACHMENTS = frozenset({"document", "face", "signature"})
PREFILLS = frozenset({"name", "id_number", "birth_date", "gender"})
MAX_CHOICES = 8  # more than fit as big buttons on one screen: use `pick`
DEFAULT_DATE_RANGE = ("-120y", "+10y")

log = logging.getLogger("kiosk.forms")

_FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER
# No remote $ref is ever fetched (the library's default registry would): a form refers only to itself.
_LOCAL_ONLY: Registry = Registry()
_RULE = re.compile(r"([+-]?)(\d{1,4})([ymd])")
# A mobile number as the national plan allots them (1 + 3..9 + nine digits): its refusal says "phone number".
_PHONE_HINT = re.compile(r"1(\[3|\[1-9\]|\\d\{10\}|\[0-9\]\{10\})")
_LEVELS = {ServiceLevel.ID_CARD: Level.ID_CARD, ServiceLevel.STRONG: Level.STRONG}


class FormError(ValueError):
    """A service whose form cannot be used: bad schema, unknown widget, x-order wrong, options without titles."""


# ------------------------------------------------------------------ compiled form


@dataclass(frozen=True)
class Option:
    value: Any
    title: str
    amount: Decimal | None = None  # x-amount: yuan per year, shown and spoken
    en: str | None = None
    # first letters of each character's readings (heteronyms: every reading), for the pinyin filter
    letters: tuple[frozenset[str], ...] = dc_field(default=(), compare=False, repr=False)

    def label(self, locale: str) -> str:
        return self.en if locale == "en" and self.en else self.title


@dataclass(frozen=True)
class Question:
    field: str
    widget: str
    title: str
    description: str = ""
    required: bool = False
    options: tuple[Option, ...] = ()
    prefill: str | None = None  # x-prefill: name | id_number | birth_date | gender
    pattern: str | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    max_length: int | None = None
    date_from: str | None = None  # x-date rules relative to today: "-100y", "+1y", "-6m", "0d"
    date_to: str | None = None
    kind: str = "string"  # the JSON type the answer has on the wire
    voice: str | None = None  # x-voice
    en_title: str | None = None
    en_description: str | None = None
    schema: Mapping[str, Any] = dc_field(default_factory=dict, compare=False, repr=False)
    # the whole form: a $ref in the question's schema ("#/$defs/..", "#/properties/..") resolves against it
    form_schema: Mapping[str, Any] | None = dc_field(default=None, compare=False, repr=False)

    @property
    def attachment(self) -> bool:
        return self.widget in ATTACHMENTS

    @property
    def asked(self) -> bool:
        """Prefilled answers are shown on the review screen, never asked."""
        return self.prefill is None

    def title_for(self, locale: str) -> str:
        return self.en_title if locale == "en" and self.en_title else self.title

    def description_for(self, locale: str) -> str:
        return self.en_description if locale == "en" and self.en_description else self.description

    def option(self, value: Any) -> Option | None:
        for o in self.options:
            if o.value == value and type(o.value) is type(value):
                return o
        return None

    @cached_property
    def validator(self) -> Draft202012Validator:
        root = _validator(self.form_schema if self.form_schema is not None else self.schema)
        return cast(Draft202012Validator, root.evolve(schema=dict(self.schema)))


def _validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(dict(schema), format_checker=_FORMAT_CHECKER, registry=_LOCAL_ONLY)


@dataclass(frozen=True)
class ServiceForm:
    info: ServiceInfo = dc_field(compare=False)
    questions: tuple[Question, ...]
    level: Level
    schema: Mapping[str, Any] = dc_field(default_factory=dict, compare=False, repr=False)
    en_title: str | None = None
    en_description: str | None = None

    @property
    def key(self) -> str:
        return self.info.key

    @property
    def title(self) -> str:
        return self.info.title

    def title_for(self, locale: str) -> str:
        return self.en_title if locale == "en" and self.en_title else self.info.title

    def description_for(self, locale: str) -> str:
        return self.en_description if locale == "en" and self.en_description else self.info.description

    def question(self, name: str) -> Question | None:
        for q in self.questions:
            if q.field == name:
                return q
        return None

    @property
    def asked(self) -> tuple[Question, ...]:
        return tuple(q for q in self.questions if q.asked)

    @cached_property
    def validator(self) -> Draft202012Validator:
        return _validator(self.schema)


# ------------------------------------------------------------------ compiling


def compile_service(raw: object) -> ServiceForm:
    """Check one catalog entry and compile its form, or raise FormError (and nothing else) saying why."""
    try:
        return _compile(raw)
    except FormError:
        raise
    except Exception as e:  # a catalog is data from the network: whatever breaks, only this service is hidden
        raise FormError(f"unusable service ({type(e).__name__}: {str(e)[:200]})") from e


def compile_catalog(raws: Iterable[object]) -> tuple[tuple[ServiceForm, ...], list[tuple[str, str]]]:
    """Every usable service, and (key, reason) for each one hidden. Duplicated keys: the first wins."""
    good: list[ServiceForm] = []
    bad: list[tuple[str, str]] = []
    seen: set[str] = set()
    for raw in raws:
        key = str(raw.get("key", "?"))[:64] if isinstance(raw, dict) else "?"
        try:
            form = compile_service(raw)
        except FormError as e:
            bad.append((key, str(e)))
            continue
        if form.key in seen:
            bad.append((key, "duplicate key"))
            continue
        seen.add(form.key)
        good.append(form)
    return tuple(good), bad


def _compile(raw: object) -> ServiceForm:
    if not isinstance(raw, dict):
        raise FormError("a service must be an object")
    try:
        info = ServiceInfo.model_validate(raw)
    except ModelError as e:
        raise FormError(f"not a ServiceInfo: {e.error_count()} problem(s), first at {_loc(e)}") from None
    form = info.form
    try:
        Draft202012Validator.check_schema(form, format_checker=_FORMAT_CHECKER)
    except Exception as e:  # SchemaError, or a regex/ref the checker itself trips over
        raise FormError(f"form is not a valid JSON Schema 2020-12: {getattr(e, 'message', str(e))[:200]}") from None
    if form.get("type") != "object" or form.get("additionalProperties") is not False:
        raise FormError('form must be {"type": "object", "additionalProperties": false, ...}')
    props = form.get("properties", {})
    if not isinstance(props, dict):
        raise FormError("form properties must be an object")
    order = form.get("x-order", list(props))
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(props) or len(order) != len(set(order)):
        raise FormError("x-order must list every property exactly once")
    required = form.get("required", [])
    if not all(r in props for r in required):
        raise FormError("required names a property that does not exist")
    questions = tuple(_question(name, props[name], name in required, form) for name in order)
    en = _dict(raw.get("x-en"))
    compiled = ServiceForm(
        info=info, questions=questions, level=_LEVELS[info.level], schema=form,
        en_title=_opt_str(en.get("title")), en_description=_opt_str(en.get("description")),
    )
    _probe(compiled)
    return compiled


def _probe(form: ServiceForm) -> None:
    """Run every validator once, so that a form the validator cannot use (a $ref that does not resolve, a
    remote one, a keyword that trips the library) is refused now, not when a resident answers."""
    try:
        list(form.validator.iter_errors({}))
        for q in form.questions:
            for value in (None, _sample(q)):
                list(q.validator.iter_errors(cast(Any, value)))
        list(form.validator.iter_errors(cast(Any, {q.field: _sample(q) for q in form.questions})))
    except Exception as e:
        raise FormError(f"form cannot be validated ({type(e).__name__}: {str(e)[:200]})") from None


def _sample(q: Question) -> object:
    """One plausible answer of the question's type (what it is checked with at compile time)."""
    if q.options:
        return q.options[0].value
    if q.kind == "boolean":
        return True
    if q.kind in ("integer", "number"):
        return int(q.minimum) if q.minimum is not None else 0
    if q.widget == "date":
        return "2000-01-01"
    return "0"


def _loc(e: ModelError) -> str:
    errs = e.errors()
    return ".".join(str(p) for p in errs[0]["loc"]) if errs else "?"


def _dict(v: object) -> dict:
    return v if isinstance(v, dict) else {}


def _opt_str(v: object) -> str | None:
    return v if isinstance(v, str) and v else None


def _question(name: str, p: object, required: bool, form: Mapping[str, Any]) -> Question:
    if not isinstance(p, dict):
        raise FormError(f"{name}: a property must be an object schema")
    widget = p.get("x-widget")
    if widget not in WIDGETS:
        raise FormError(f"{name}: unknown x-widget {widget!r}")
    title = p.get("title")
    if not isinstance(title, str) or not title.strip():
        raise FormError(f"{name}: every question needs a title")
    prefill = p.get("x-prefill")
    if prefill is not None and prefill not in PREFILLS:
        raise FormError(f"{name}: unknown x-prefill {prefill!r}")
    if widget == "prefill" and prefill is None:
        raise FormError(f"{name}: widget prefill needs x-prefill")
    kind = p.get("type", "string")
    options: tuple[Option, ...] = ()
    en = _dict(p.get("x-en"))
    if widget in ("choice", "pick"):
        options = _options(name, p, en)
        if widget == "choice" and len(options) > MAX_CHOICES:
            raise FormError(f"{name}: choice has {len(options)} options (at most {MAX_CHOICES}); use pick")
        kind = _kind_of(options)
    elif widget == "prefill" and "oneOf" in p:
        options = _options(name, p, en)  # a coded prefill (gender "1"/"2") is shown by its title
    elif widget == "yesno":
        if kind != "boolean":
            raise FormError(f"{name}: yesno needs type boolean")
    elif widget == "date":
        if kind != "string" or p.get("format") != "date":
            raise FormError(f"{name}: date needs type string and format date")
    elif widget == "keypad":
        if kind == "string":
            if not isinstance(p.get("pattern"), str):
                raise FormError(f"{name}: a keypad string needs a pattern (phone, digits)")
        elif kind != "integer":
            raise FormError(f"{name}: keypad needs a string with a pattern or an integer")
    elif widget in ATTACHMENTS:
        if kind != "string" or not isinstance(p.get("pattern"), str):
            raise FormError(f"{name}: {widget} needs a string with the SHA-256 digest pattern")
    if not isinstance(kind, str):
        raise FormError(f"{name}: type must be one JSON type")
    date_from, date_to = DEFAULT_DATE_RANGE
    if widget == "date" and "x-date" in p:
        rules = p["x-date"]
        if not isinstance(rules, dict):
            raise FormError(f"{name}: x-date must be an object")
        date_from, date_to = rules.get("from", date_from), rules.get("to", date_to)
        for r in (date_from, date_to):
            if not isinstance(r, str) or not _valid_rule(r):
                raise FormError(f"{name}: x-date rule {r!r} (use e.g. -100y, +1y, -6m, 0d)")
    voice = p.get("x-voice")
    return Question(
        field=name, widget=widget, title=title.strip(), description=_opt_str(p.get("description")) or "",
        required=required, options=options, prefill=prefill, pattern=_opt_str(p.get("pattern")),
        minimum=_num(p.get("minimum")), maximum=_num(p.get("maximum")), max_length=_int(p.get("maxLength")),
        date_from=date_from if widget == "date" else None, date_to=date_to if widget == "date" else None,
        kind=kind, voice=_opt_str(voice), en_title=_opt_str(en.get("title")),
        en_description=_opt_str(en.get("description")), schema=dict(p), form_schema=form,
    )


def _num(v: object) -> int | float | None:
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def _int(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _options(name: str, p: dict, en: dict) -> tuple[Option, ...]:
    one_of = p.get("oneOf")
    if not isinstance(one_of, list) or not one_of:
        raise FormError(f"{name}: choice and pick need oneOf of {{const, title}}")
    en_titles = _dict(en.get("options"))
    out: list[Option] = []
    seen: list[Any] = []
    for o in one_of:
        if not isinstance(o, dict) or "const" not in o or not isinstance(o.get("title"), str) or not o["title"].strip():
            raise FormError(f"{name}: every option needs a const and a title")
        value = o["const"]
        if any(value == s and type(value) is type(s) for s in seen):
            raise FormError(f"{name}: option {value!r} appears twice")
        seen.append(value)
        amount = None
        if "x-amount" in o:
            try:
                amount = Decimal(str(o["x-amount"]))
            except InvalidOperation:
                raise FormError(f"{name}: x-amount {o['x-amount']!r} is not an amount") from None
            if not amount.is_finite() or amount < 0:
                raise FormError(f"{name}: x-amount {o['x-amount']!r} is not an amount")
        title = o["title"].strip()
        out.append(Option(value, title, amount, _opt_str(en_titles.get(str(value))), _letters(title)))
    return tuple(out)


def _kind_of(options: tuple[Option, ...]) -> str:
    kinds = {type(o.value) for o in options}
    if kinds == {bool}:
        return "boolean"
    if kinds <= {int}:
        return "integer"
    return "string"


# ------------------------------------------------------------------ answers


def coerce(q: Question, raw: object) -> object:
    """The keypad gives digits as text: an integer question gets an int (the wire type), anything else as is."""
    if q.kind == "integer" and isinstance(raw, str) and raw.isascii() and raw.isdigit():
        return int(raw)
    return raw


def validate_answer(q: Question, value: object, today: dt.date | None = None) -> str | None:
    """None when the answer is acceptable, else a plain-words message id (form.error.*). Never raises: a
    validator that breaks (a form the compile-time probe did not catch) is form.error.invalid."""
    try:
        return _validate_answer(q, value, today)
    except Exception as e:
        log.error("question %s cannot be validated: %s", q.field, type(e).__name__)
        return "form.error.invalid"


def _validate_answer(q: Question, value: object, today: dt.date | None) -> str | None:
    if value is None or value == "":
        return "form.error.required" if q.required else None
    err = best_match(q.validator.iter_errors(cast(Any, value)))
    if err is not None:
        return _msgid(q, err)
    if q.widget == "date" and today is not None and isinstance(value, str):
        lo, hi = date_bounds(q, today)
        try:
            d = dt.date.fromisoformat(value)
        except ValueError:
            return "form.error.date"
        if not lo <= d <= hi:
            return "form.error.date_range"
    return None


def validate_all(form: ServiceForm, answers: Mapping[str, object]) -> dict[str, str]:
    """Every refused field of a whole filing -> its message id (the check before SubmitFiling). Never raises:
    a validator that breaks refuses the form as a whole ({"_form": "form.error.invalid"})."""
    try:
        return _validate_all(form, answers)
    except Exception as e:
        log.error("service %s cannot be validated: %s", form.key, type(e).__name__)
        return {"_form": "form.error.invalid"}


def _validate_all(form: ServiceForm, answers: Mapping[str, object]) -> dict[str, str]:
    present = {k: v for k, v in answers.items() if v is not None and v != ""}
    out: dict[str, str] = {}
    for err in form.validator.iter_errors(cast(Any, present)):
        if err.validator == "required" and not err.path:
            for name in err.validator_value:
                if name not in present:
                    out.setdefault(name, "form.error.required")
            continue
        name = str(err.path[0]) if err.path else "_form"
        q = form.question(name)
        if q is None:
            out.setdefault(name, "form.error.invalid")
            continue
        out.setdefault(name, _msgid(q, best_match([err]) or err))
    return out


def _msgid(q: Question, err: ValidationError) -> str:
    kw = err.validator
    if q.widget in ("choice", "pick", "yesno"):
        return "form.error.choice"
    if q.attachment:
        return "form.error.attachment"
    if kw == "format":
        return "form.error.date"
    if kw in ("minimum", "exclusiveMinimum"):
        return "form.error.minimum"
    if kw in ("maximum", "exclusiveMaximum"):
        return "form.error.maximum"
    if kw == "pattern":
        return "form.error.phone" if is_phone(q) else "form.error.digits"
    if kw in ("minLength", "maxLength"):
        return "form.error.length"
    if kw == "type":
        return "form.error.number" if q.kind in ("integer", "number") else "form.error.invalid"
    if kw in ("enum", "const", "oneOf", "anyOf"):
        return "form.error.choice"
    return "form.error.invalid"


def is_phone(q: Question) -> bool:
    """A mobile-number pattern (1 then 3-9 then nine digits): its refusal is worded "phone number"."""
    return bool(q.pattern and _PHONE_HINT.match(q.pattern.lstrip("^")))


def error_params(q: Question) -> dict[str, str]:
    """Values the error wording names (the bounds of a number)."""
    return {"min": _fmt(q.minimum), "max": _fmt(q.maximum)}


def spoken_error_params(q: Question, locale: str = "zh_CN") -> dict[str, str]:
    """The same values for the voice: 300000 -> 三十万 (the synthesiser reads the figure 300000 as 三百千)."""
    shown = error_params(q)
    if locale != "zh_CN":
        return shown
    out = {}
    for k, v in (("min", q.minimum), ("max", q.maximum)):
        try:
            out[k] = "" if v is None else spoken_figure(v)
        except ValueError:  # a bound too long to read out (a catalog's whim): the figure, never a crash
            out[k] = shown[k]
    return out


def _fmt(v: int | float | None) -> str:
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() else str(v)


# ------------------------------------------------------------------ prefill from the credential


def prefill_value(q: Question, person: object) -> object:
    """The value the credential gives for a prefilled question (None when it does not tell)."""
    name = getattr(person, "name", "") or ""
    number = (getattr(person, "id_number", "") or "").upper()
    if q.prefill == "name":
        return name or None
    if q.prefill == "id_number":
        return number or None
    if not id_is_valid(number):
        return None
    if q.prefill == "birth_date":
        return f"{number[6:10]}-{number[10:12]}-{number[12:14]}"
    if q.prefill == "gender":
        male = int(number[16]) % 2 == 1  # GB 11643: the 17th digit is odd for men
        return _gender_value(q, male)
    return None


_GENDER_WORDS = {True: ("male", "m", "1", "男"), False: ("female", "f", "2", "女")}


def _gender_value(q: Question, male: bool) -> object:
    """The gender in whatever coding the form's schema uses (options, GB/T 2261 digits or words)."""
    words = _GENDER_WORDS[male]
    for o in q.options:
        if str(o.value).lower() in words or o.title in words:
            return o.value
    if q.kind == "integer":
        return 1 if male else 2
    for w in words:  # the first the schema accepts: "male", "m", "1", "男"
        if q.validator.is_valid(w):
            return w
    return "男" if male else "女"


# ------------------------------------------------------------------ showing and saying an answer


def display_text(q: Question, value: object, locale: str = "zh_CN") -> str:
    """The answer as the review screen and the receipt show it: personal numbers masked, photos as words."""
    if value is None or value == "":
        return tr(locale, "form.unanswered")
    if q.attachment:
        return tr(locale, "form.signed" if q.widget == "signature" else "form.photographed")
    if q.prefill == "id_number" and isinstance(value, str):
        return mask_id(value)
    if q.prefill == "name" and isinstance(value, str):
        return mask_name(value)
    if q.options:
        o = q.option(value)
        if o is not None:
            if o.amount is not None and _amount_in(o.label(locale), o.amount) is None:
                return tr(locale, "form.option_amount", title=o.label(locale), amount=_money(o.amount))
            return o.label(locale)
    if q.widget == "yesno" or isinstance(value, bool):
        return tr(locale, "form.yes" if value else "form.no")
    if (q.widget == "date" or q.prefill == "birth_date") and isinstance(value, str):
        try:
            d = dt.date.fromisoformat(value)
        except ValueError:
            return value
        return tr(locale, "form.date", y=d.year, m=d.month, d=d.day)
    return str(value)


def receipt_text(q: Question, value: object) -> str:
    """An answer on a printed receipt: as on the review screen, a phone number masked too (139****5678)."""
    text = display_text(q, value, "zh_CN")
    if q.widget == "keypad" and is_phone(q) and len(text) == 11:
        return text[:3] + "****" + text[7:]
    return text


def spoken_text(q: Question, value: object, locale: str = "zh_CN") -> str:
    """The answer as the voice says it: dates and amounts in words, digits one by one."""
    if locale != "zh_CN" or value is None or value == "" or q.attachment or q.prefill in ("name", "id_number"):
        return display_text(q, value, locale)
    if q.options:
        o = q.option(value)
        if o is not None and o.amount is not None:
            said = _amount_in(o.title, o.amount)
            if said is not None:  # 每年500元 is said 每年五百元, once
                return o.title[:said.start()] + spoken_amount(o.amount) + o.title[said.end():]
            return tr(locale, "form.option_amount.voice", title=o.title, amount=spoken_amount(o.amount))
        if o is not None:
            return o.title
    if (q.widget == "date" or q.prefill == "birth_date") and isinstance(value, str):
        try:
            return spoken_date(dt.date.fromisoformat(value))
        except ValueError:
            return value
    if isinstance(value, bool):
        return tr(locale, "form.yes" if value else "form.no")
    if isinstance(value, int):
        return spoken_number(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return spoken_digits(value)
    return str(value)


def option_label(o: Option, locale: str) -> str:
    """A choice button: 每年 500 元 under the tier's name, where it has an amount."""
    if o.amount is None or _amount_in(o.label(locale), o.amount) is not None:
        return o.label(locale)  # 每年500元 needs no second 每年 500 元 under it
    return tr(locale, "form.option_amount.button", title=o.label(locale), amount=_money(o.amount))


_FIGURE = re.compile(r"(\d+(?:\.\d+)?)\s*元?")


def _amount_in(title: str, amount: Decimal) -> re.Match[str] | None:
    """Where an option's title states its own x-amount (每年500元 for 500.00), the figure and its 元; else None."""
    for m in _FIGURE.finditer(title):
        if Decimal(m.group(1)) == amount:
            return m
    return None


def _money(amount: Decimal) -> str:
    return str(amount.quantize(Decimal(1))) if amount == amount.to_integral_value() else f"{amount:.2f}"


# ------------------------------------------------------------------ dates


def _valid_rule(rule: str) -> bool:
    r = rule.strip()
    return r in ("0", "today") or bool(r) and _RULE.sub("", r) == "" and _RULE.search(r) is not None


def shift(today: dt.date, rule: str) -> dt.date:
    """today moved by a rule such as "-100y", "+1y", "-6m", "+10d" or "-1y+6m" (day clamped to the month)."""
    d = today
    for sign, n, unit in _RULE.findall(rule):
        k = -int(n) if sign == "-" else int(n)
        if unit == "d":
            d = d + dt.timedelta(days=k)
        else:
            months = d.year * 12 + (d.month - 1) + (k * 12 if unit == "y" else k)
            y, m = divmod(months, 12)
            y = min(max(y, dt.MINYEAR), dt.MAXYEAR)
            d = dt.date(y, m + 1, min(d.day, monthrange(y, m + 1)[1]))
    return d


def date_bounds(q: Question, today: dt.date) -> tuple[dt.date, dt.date]:
    lo = shift(today, q.date_from or DEFAULT_DATE_RANGE[0])
    hi = shift(today, q.date_to or DEFAULT_DATE_RANGE[1])
    return (lo, hi) if lo <= hi else (hi, lo)


def step_date(value: dt.date, part: str, delta: int, lo: dt.date, hi: dt.date) -> dt.date:
    """The date picker's steppers: year, month or day moved by delta, the day kept in its month, the result kept
    within the picker's bounds."""
    y, m, d = value.year, value.month, value.day
    if part == "year":
        y += delta
    elif part == "month":
        months = y * 12 + (m - 1) + delta
        y, m = divmod(months, 12)
        m += 1
    elif part == "day":
        last = monthrange(y, m)[1]
        d = (d - 1 + delta) % last + 1  # days wrap inside the month: 31 -> 1, as a dial does
    y = min(max(y, lo.year), hi.year)
    d = min(d, monthrange(y, m)[1])
    return min(max(dt.date(y, m, d), lo), hi)


# ------------------------------------------------------------------ pinyin initials


def _letters(text: str) -> tuple[frozenset[str], ...]:
    """Per character, the first letters of all its readings: 长 -> {C, Z}; latin letters and digits as they are."""
    from pypinyin import Style, pinyin

    out: list[frozenset[str]] = []
    for ch in text:
        if "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff":
            readings = pinyin(ch, style=Style.FIRST_LETTER, heteronym=True, errors="ignore")
            alts = frozenset(r[:1].upper() for r in (readings[0] if readings else []) if r[:1].isalpha())
            if alts:
                out.append(alts)
        elif ch.isascii() and ch.isalnum():
            out.append(frozenset({ch.upper()}))
    return tuple(out)


def pinyin_initials(text: str) -> str:
    """张庄村 -> ZZC: the first letter of each character's (phrase-aware) reading; latin letters kept."""
    from pypinyin import Style, lazy_pinyin

    out = []
    for part in lazy_pinyin(text, style=Style.FIRST_LETTER, errors=cast(Any, list)):  # other text: letter by letter
        c = part[:1].upper()
        if c.isascii() and c.isalnum():
            out.append(c)
    return "".join(out)


def _matches(o: Option, typed: str) -> bool:
    letters = o.letters or _letters(o.title)
    return len(letters) >= len(typed) and all(c in letters[i] for i, c in enumerate(typed))


def filter_options(options: Iterable[Option], initials: str) -> list[Option]:
    """The options whose title starts with these initial letters (Z -> 张庄村, 赵家庄…; ZZ -> 张庄村)."""
    typed = initials.upper()
    return [o for o in options if _matches(o, typed)]


def next_letters(options: Iterable[Option], initials: str) -> list[str]:
    """The letters that keep at least one option: the only letter buttons worth showing (no dead ends)."""
    typed = initials.upper()
    nxt: set[str] = set()
    for o in options:
        if _matches(o, typed):
            letters = o.letters or _letters(o.title)
            if len(letters) > len(typed):
                nxt |= letters[len(typed)]
    return sorted(nxt)


def is_digest(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(SHA256_PATTERN, value) is not None
