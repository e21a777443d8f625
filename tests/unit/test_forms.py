"""kiosk.forms: catalog entries compiled into questions, answers checked in plain words, prefill, pinyin, dates.

Property tests feed the compiler random valid and invalid schemas and answers: valid ones compile and pass,
invalid answers are refused with a message id that exists in both languages, and garbage never raises anything but
FormError.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import string
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk import forms as F
from kiosk.catalog import Level
from kiosk.i18n import catalog as i18n

CATALOG = Path(__file__).resolve().parents[1] / "fixtures" / "catalog.json"
TODAY = dt.date(2026, 12, 1)
SHA = "^[0-9a-f]{64}$"
PHONE = "^1[3-9][0-9]{9}$"


class Who:
    name = "王秀兰"
    id_number = "370102195203140527"


def raw_services() -> list[dict]:
    return json.loads(CATALOG.read_text(encoding="utf-8"))["services"]


def service(form: dict, **over) -> dict:
    base = copy.deepcopy(raw_services()[0])
    base.update(form=form, **over)
    return base


def form_of(props: dict, required=(), order=None) -> dict:
    f = {"type": "object", "additionalProperties": False, "properties": props, "required": list(required)}
    if order is not None:
        f["x-order"] = order
    return f


def one(prop: dict, required: bool = True) -> F.Question:
    return F.compile_service(service(form_of({"a": prop}, ["a"] if required else []))).questions[0]


# ------------------------------------------------------------------ the fixture catalog


def test_fixture_catalog_compiles_and_hides_the_broken_ones():
    good, bad = F.compile_catalog(raw_services())
    assert [f.key for f in good] == [
        "card_loss", "employment_registration", "resident_pension_enrolment", "qualification_certification",
        "startup_loan",
    ]
    assert dict(bad).keys() == {"broken_widget", "broken_schema"}
    assert "slider" in dict(bad)["broken_widget"]
    loan = next(f for f in good if f.key == "startup_loan")
    assert loan.level is Level.STRONG and loan.title == "创业担保贷款申请"
    assert {q.widget for f in good for q in f.questions} == F.WIDGETS
    assert [q.field for q in loan.asked] == ["amount", "licence", "signature", "phone"]
    card = good[0]
    assert card.title_for("en") == "Report a lost card" and card.question("phone").title_for("en") == "Phone number"


def test_duplicate_keys_keep_the_first():
    raws = raw_services()[:1] * 2
    good, bad = F.compile_catalog(raws)
    assert len(good) == 1 and bad == [("card_loss", "duplicate key")]


# ------------------------------------------------------------------ what makes a form unusable


YESNO = {"type": "boolean", "title": "是吗", "x-widget": "yesno"}


@pytest.mark.parametrize(
    "form, words",
    [
        (form_of({"a": {**YESNO, "x-widget": "slider"}}), "unknown x-widget"),
        (form_of({"a": {k: v for k, v in YESNO.items() if k != "x-widget"}}), "unknown x-widget"),
        (form_of({"a": YESNO, "b": YESNO}, order=["a"]), "x-order"),
        (form_of({"a": YESNO}, order=["a", "a"]), "x-order"),
        (form_of({"a": YESNO}, order=["a", "z"]), "x-order"),
        (form_of({"a": {"type": "string", "title": "选", "x-widget": "choice", "enum": ["x"]}}), "oneOf"),
        (form_of({"a": {"type": "string", "title": "选", "x-widget": "pick", "oneOf": [{"const": "x"}]}}), "title"),
        (form_of({"a": {"type": "string", "title": "选", "x-widget": "choice",
                        "oneOf": [{"const": str(i), "title": str(i)} for i in range(9)]}}), "at most 8"),
        (form_of({"a": {"type": "string", "title": "选", "x-widget": "choice",
                        "oneOf": [{"const": "x", "title": "甲"}, {"const": "x", "title": "乙"}]}}), "twice"),
        (form_of({"a": {"type": "string", "title": "选", "x-widget": "choice",
                        "oneOf": [{"const": "x", "title": "甲", "x-amount": "lots"}]}}), "x-amount"),
        (form_of({"a": {**YESNO, "type": "string"}}), "boolean"),
        (form_of({"a": {"type": "string", "title": "日", "x-widget": "date"}}), "format date"),
        (form_of({"a": {"type": "string", "format": "date", "title": "日", "x-widget": "date",
                        "x-date": {"from": "yesterday"}}}), "x-date"),
        (form_of({"a": {"type": "string", "title": "号", "x-widget": "keypad"}}), "pattern"),
        (form_of({"a": {"type": "number", "title": "号", "x-widget": "keypad"}}), "keypad"),
        (form_of({"a": {"type": "string", "title": "照", "x-widget": "document"}}), "SHA-256"),
        (form_of({"a": {"type": "string", "title": "名", "x-widget": "prefill"}}), "x-prefill"),
        (form_of({"a": {"type": "string", "title": "名", "x-widget": "prefill", "x-prefill": "address"}}), "x-prefill"),
        (form_of({"a": {**YESNO, "title": " "}}), "title"),
        (form_of({"a": YESNO}, required=["b"]), "required"),
        ({**form_of({"a": YESNO}), "additionalProperties": True}, "additionalProperties"),
        (form_of({"a": {**YESNO, "type": "boolen"}}), "JSON Schema"),
        (form_of({"a": {"type": "string", "pattern": "([", "title": "号", "x-widget": "keypad"}}), "JSON Schema"),
    ],
)
def test_unusable_forms_raise_form_error(form, words):
    with pytest.raises(F.FormError, match=words.replace("(", r"\(")):
        F.compile_service(service(form))


@pytest.mark.parametrize("broken", [None, [], "x", {"key": "a"}, {**raw_services()[0], "level": "root"}])
def test_a_bad_service_entry_is_a_form_error(broken):
    with pytest.raises(F.FormError):
        F.compile_service(broken)


# ------------------------------------------------------------------ answers in plain words


def test_each_failing_keyword_has_its_plain_words():
    phone = one({"type": "string", "pattern": PHONE, "title": "电话", "x-widget": "keypad"})
    digits = one({"type": "string", "pattern": "^[0-9]{6}$", "title": "邮编", "x-widget": "keypad"})
    amount = one({"type": "integer", "minimum": 1, "maximum": 30, "title": "万元", "x-widget": "keypad"})
    day = one({"type": "string", "format": "date", "title": "日", "x-widget": "date"})
    pick = one({"type": "string", "title": "选", "x-widget": "choice",
                "oneOf": [{"const": "a", "title": "甲"}, {"const": "b", "title": "乙"}]})
    photo = one({"type": "string", "pattern": SHA, "title": "照", "x-widget": "document"})
    cases = [
        (phone, None, "form.error.required"), (phone, "1234", "form.error.phone"), (phone, "13912345678", None),
        (digits, "12", "form.error.digits"), (amount, 0, "form.error.minimum"), (amount, 31, "form.error.maximum"),
        (amount, "5", "form.error.number"), (amount, F.coerce(amount, "5"), None), (day, "2026-02-30", "form.error.date"),
        (day, "2026-02-28", None), (pick, "c", "form.error.choice"), (pick, "a", None),
        (photo, "not-a-digest", "form.error.attachment"), (photo, "a" * 64, None),
    ]
    for q, value, want in cases:
        assert F.validate_answer(q, value) == want, (q.field, value)
    assert F.error_params(amount) == {"min": "1", "max": "30"}
    assert "{min}" in i18n("zh_CN")["form.error.minimum"]


def test_an_optional_question_may_stay_empty():
    q = one({"type": "string", "pattern": PHONE, "title": "电话", "x-widget": "keypad"}, required=False)
    assert F.validate_answer(q, None) is None and F.validate_answer(q, "") is None


def test_date_range_is_checked_when_today_is_known():
    q = one({"type": "string", "format": "date", "title": "日", "x-widget": "date", "x-date": {"from": "-1y", "to": "0d"}})
    assert F.date_bounds(q, TODAY) == (dt.date(2025, 12, 1), TODAY)
    assert F.validate_answer(q, "2026-12-02", TODAY) == "form.error.date_range"
    assert F.validate_answer(q, "2026-01-01", TODAY) is None


def test_validate_all_names_each_field():
    form = F.compile_service(raw_services()[1])
    errors = F.validate_all(form, {"name": "王秀兰", "id_number": "x", "kind": "nope", "contract": "yes", "phone": "1"})
    assert errors == {
        "start_date": "form.error.required", "village": "form.error.required", "kind": "form.error.choice",
        "contract": "form.error.choice", "phone": "form.error.phone",
    }
    assert F.validate_all(form, _valid_answers(form)) == {}
    assert F.validate_all(form, {"surprise": 1, **_valid_answers(form)}) == {"_form": "form.error.invalid"}


def _valid_answers(form: F.ServiceForm) -> dict:
    return {
        "name": "王秀兰", "id_number": Who.id_number, "gender": "2", "kind": "self", "start_date": "2026-01-01",
        "village": "v00", "contract": False, "phone": "13912345678",
    }


# ------------------------------------------------------------------ prefill, display, voice


@pytest.mark.parametrize(
    "prop, want",
    [
        ({"type": "string", "oneOf": [{"const": "1", "title": "男"}, {"const": "2", "title": "女"}]}, "2"),
        ({"type": "string", "oneOf": [{"const": "M", "title": "男"}, {"const": "F", "title": "女"}]}, "F"),
        ({"type": "string", "enum": ["male", "female"]}, "female"),
        ({"type": "integer"}, 2),
        ({"type": "string"}, "female"),
    ],
)
def test_gender_comes_from_the_id_number_in_the_forms_own_coding(prop, want):
    q = one({**prop, "title": "性别", "x-widget": "prefill", "x-prefill": "gender"})
    assert F.prefill_value(q, Who) == want


def test_prefill_from_the_credential():
    form = F.compile_service(raw_services()[2])
    values = {q.field: F.prefill_value(q, Who) for q in form.questions if q.prefill}
    assert values == {"name": "王秀兰", "id_number": Who.id_number, "birth_date": "1952-03-14"}

    class NoNumber:
        name, id_number = "李明", "12345"

    assert F.prefill_value(form.question("birth_date"), NoNumber) is None


def test_display_and_spoken_text():
    form = F.compile_service(raw_services()[2])
    tier, phone = form.question("tier"), form.question("phone")
    assert F.display_text(tier, "t500") == "500 元档"  # the title states the amount: not twice
    assert F.spoken_text(tier, "t500") == "五百元档"
    assert F.display_text(form.question("id_number"), Who.id_number) == "3701**********0527"
    assert F.display_text(form.question("name"), Who.name) == "王*兰"
    assert F.spoken_text(form.question("name"), Who.name) == "王*兰"  # never the full name aloud
    assert F.display_text(form.question("birth_date"), "1952-03-14") == "1952年3月14日"
    assert F.spoken_text(form.question("birth_date"), "1952-03-14") == "一九五二年三月十四日"
    assert F.spoken_text(phone, "13912345678") == "一 三 九 一 二 三 四 五 六 七 八"
    assert F.receipt_text(phone, "13912345678") == "139****5678"
    assert F.display_text(phone, None) == "没有填" and F.display_text(phone, None, "en") == "Not given"
    loan = F.compile_service(raw_services()[4])
    assert F.display_text(loan.question("licence"), "a" * 64) == "已拍照"
    assert F.display_text(loan.question("signature"), "a" * 64) == "已签名"
    assert F.spoken_text(loan.question("amount"), 25) == "二十五"
    yes = F.compile_service(raw_services()[1]).question("contract")
    assert (F.display_text(yes, True), F.display_text(yes, False, "en")) == ("是", "No")


# ------------------------------------------------------------------ pinyin initials


def test_pinyin_initials_and_filtering():
    form = F.compile_service(raw_services()[1])
    villages = form.question("village").options
    assert F.pinyin_initials("张庄村") == "ZZC" and F.pinyin_initials("黄河口村 3 组") == "HHKC3Z"
    assert [o.title for o in F.filter_options(villages, "zz")] == ["张庄村"]
    z = [o.title for o in F.filter_options(villages, "Z")]
    assert {"张庄村", "赵家庄", "周村", "朱家庄", "郑家洼"} <= set(z) and "李家村" not in z
    assert "长山村" in z and "长山村" in [o.title for o in F.filter_options(villages, "C")]  # 长: zhǎng or cháng
    assert len(F.filter_options(villages, "")) == len(villages)
    for typed in ("", "Z", "ZJ", "C"):
        for letter in F.next_letters(villages, typed):
            assert F.filter_options(villages, typed + letter), (typed, letter)  # no letter leads nowhere
    assert F.next_letters(villages, "ZZC") == []


# ------------------------------------------------------------------ dates


@pytest.mark.parametrize(
    "start, rule, want",
    [
        (dt.date(2026, 3, 31), "-1m", dt.date(2026, 2, 28)),
        (dt.date(2024, 2, 29), "+1y", dt.date(2025, 2, 28)),
        (dt.date(2026, 12, 1), "-100y", dt.date(1926, 12, 1)),
        (dt.date(2026, 12, 31), "+1m", dt.date(2027, 1, 31)),
        (dt.date(2026, 12, 1), "-1y+6m", dt.date(2026, 6, 1)),
        (dt.date(2026, 12, 1), "0d", dt.date(2026, 12, 1)),
        (dt.date(2026, 12, 1), "today", dt.date(2026, 12, 1)),
        (dt.date(2026, 12, 1), "+10d", dt.date(2026, 12, 11)),
    ],
)
def test_shift(start, rule, want):
    assert F.shift(start, rule) == want


def test_steppers_keep_the_day_in_its_month_and_the_date_in_bounds():
    lo, hi = dt.date(1926, 12, 1), dt.date(2027, 12, 1)
    assert F.step_date(dt.date(2026, 1, 31), "month", 1, lo, hi) == dt.date(2026, 2, 28)
    assert F.step_date(dt.date(2026, 1, 31), "day", 1, lo, hi) == dt.date(2026, 1, 1)  # a dial wraps
    assert F.step_date(dt.date(2020, 6, 1), "year", 10, lo, hi) == dt.date(2027, 6, 1)  # the last year there is
    assert F.step_date(dt.date(1930, 6, 1), "year", -10, lo, hi) == dt.date(1926, 12, 1)
    assert F.step_date(dt.date(2026, 12, 15), "month", 1, lo, hi) == dt.date(2027, 1, 15)


# ------------------------------------------------------------------ properties

TITLE = st.text(alphabet="张王李赵村庄家东西南北一二三甲乙ABC ", min_size=1, max_size=8).filter(lambda s: s.strip())
KEYPAD_PATTERNS = (PHONE, "^[0-9]{6}$", "^[0-9]{4,8}$", "^[1-9][0-9]{0,2}$")
RULES = ("-100y", "-5y", "-6m", "-30d", "0d", "+1m", "+1y", "+10d")


@st.composite
def question_schema(draw, name: str):
    widget = draw(st.sampled_from(sorted(F.WIDGETS)))
    prop: dict = {"title": draw(TITLE), "x-widget": widget}
    if draw(st.booleans()):
        prop["description"] = draw(TITLE)
    if widget in ("choice", "pick"):
        n = draw(st.integers(1, 8 if widget == "choice" else 30))
        values = draw(st.lists(st.text(string.ascii_lowercase, min_size=1, max_size=5), min_size=n, max_size=n,
                               unique=True))
        prop["type"] = "string"
        prop["oneOf"] = [{"const": v, "title": draw(TITLE)} for v in values]
        if widget == "choice" and draw(st.booleans()):
            for o in prop["oneOf"]:
                o["x-amount"] = f"{draw(st.integers(0, 100000))}.00"
    elif widget == "yesno":
        prop["type"] = "boolean"
    elif widget == "date":
        prop.update(type="string", format="date")
        if draw(st.booleans()):
            prop["x-date"] = {"from": draw(st.sampled_from(RULES[:5])), "to": draw(st.sampled_from(RULES[4:]))}
    elif widget == "keypad":
        if draw(st.booleans()):
            prop.update(type="string", pattern=draw(st.sampled_from(KEYPAD_PATTERNS)))
        else:
            lo = draw(st.integers(-5, 1000))
            prop.update(type="integer", minimum=lo, maximum=lo + draw(st.integers(0, 10000)))
    elif widget in F.ATTACHMENTS:
        prop.update(type="string", pattern=SHA)
    else:
        prop.update(type="string", **{"x-prefill": draw(st.sampled_from(["name", "id_number"]))})
    return prop


@st.composite
def valid_service(draw):
    names = draw(st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=6,
                          unique=True))
    props = {n: draw(question_schema(n)) for n in names}
    order = draw(st.permutations(names))
    required = [n for n in names if draw(st.booleans())]
    return service(form_of(props, required, order))


def answer_for(q: F.Question):
    """A strategy of valid answers for a compiled question."""
    if q.options:
        return st.sampled_from([o.value for o in q.options])
    if q.widget == "yesno":
        return st.booleans()
    if q.widget == "date":
        lo, hi = F.date_bounds(q, TODAY)
        return st.dates(lo, hi).map(dt.date.isoformat)
    if q.widget == "keypad" and q.kind == "integer":
        return st.integers(int(q.minimum), int(q.maximum))
    if q.widget == "keypad":
        return st.from_regex(q.pattern.replace("[0-9]", "[0-9]"), fullmatch=True).filter(lambda s: s.isascii())
    if q.attachment:
        return st.binary(min_size=1, max_size=20).map(lambda b: hashlib.sha256(b).hexdigest())
    return st.just(F.prefill_value(q, Who))


def wrong_answer_for(q: F.Question):
    """A strategy of answers the question must refuse."""
    if q.options:
        consts = {o.value for o in q.options}
        return st.text(string.ascii_uppercase + "!?", min_size=1, max_size=6).filter(lambda v: v not in consts)
    if q.widget == "yesno":
        return st.sampled_from(["yes", 1, "是", []])
    if q.widget == "date":
        return st.sampled_from(["2026-02-30", "20261201", "明天", "2026-13-01"])
    if q.widget == "keypad" and q.kind == "integer":
        return st.one_of(st.integers(int(q.maximum) + 1, int(q.maximum) + 10**6),
                         st.integers(int(q.minimum) - 10**6, int(q.minimum) - 1))
    if q.widget == "keypad":
        return st.text("abcxyz-", min_size=1, max_size=12)
    if q.attachment:
        return st.text("ghijk", min_size=1, max_size=64)
    return st.just(12345)  # a prefill string refuses a number


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=valid_service(), data=st.data())
def test_random_valid_schemas_compile_and_random_valid_answers_pass(raw, data):
    form = F.compile_service(raw)
    assert [q.field for q in form.questions] == raw["form"]["x-order"]
    answers = {}
    for q in form.questions:
        value = data.draw(answer_for(q), label=q.field)
        assert F.validate_answer(q, value, TODAY) is None, (q.widget, value)
        answers[q.field] = value
    assert F.validate_all(form, answers) == {}
    for q in form.questions:  # showing and saying any valid answer never fails
        assert isinstance(F.display_text(q, answers[q.field]), str)
        assert isinstance(F.spoken_text(q, answers[q.field]), str)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=valid_service(), data=st.data())
def test_random_invalid_answers_are_refused_with_words(raw, data):
    form = F.compile_service(raw)
    zh, en = i18n("zh_CN"), i18n("en")
    for q in form.questions:
        value = data.draw(wrong_answer_for(q), label=q.field)
        msgid = F.validate_answer(q, value, TODAY)
        assert msgid is not None and msgid.startswith("form.error."), (q.widget, value)
        assert msgid in zh and msgid in en
        assert F.validate_all(form, {q.field: value})[q.field].startswith("form.error.")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=6),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
    max_leaves=20,
)
KEYS = ["type", "properties", "x-order", "x-widget", "oneOf", "const", "title", "pattern", "format", "required",
        "x-date", "x-amount", "x-prefill", "minimum", "maximum", "additionalProperties", "$ref", "$defs", "items"]


@st.composite
def mutated_service(draw):
    raw = copy.deepcopy(draw(st.sampled_from(raw_services())))
    for _ in range(draw(st.integers(1, 4))):
        # walk to a random dict inside the service and replace or add a key with garbage
        node = raw
        for _ in range(draw(st.integers(0, 4))):
            kids = [v for v in node.values() if isinstance(v, dict)] if isinstance(node, dict) else []
            if not kids:
                break
            node = draw(st.sampled_from(kids))
        key = draw(st.sampled_from(KEYS + list(node)))
        if draw(st.integers(0, 4)) == 0:
            node.pop(key, None)
        else:
            node[key] = draw(JSON)
    return raw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(mutated_service(), JSON, st.builds(service, JSON)))
def test_garbage_never_raises_anything_but_form_error(raw):
    try:
        form = F.compile_service(raw)
    except F.FormError:
        return
    for q in form.questions:  # what compiled must be usable: checking any answer returns words or None
        for value in (None, "", "x", 0, True, [1], {"a": 1}):
            out = F.validate_answer(q, value, TODAY)
            assert out is None or out.startswith("form.error.")
        F.display_text(q, "x")
        F.spoken_text(q, "x")


def test_amounts_are_decimals():
    form = F.compile_service(raw_services()[2])
    assert form.question("tier").options[0].amount == Decimal("100.00")


# ------------------------------------------------------------------ $ref: resolved against the whole form


def test_a_ref_in_a_question_resolves_against_the_whole_form():
    form = form_of({
        "phone": {"$ref": "#/$defs/phone", "type": "string", "pattern": PHONE, "title": "电话", "x-widget": "keypad"},
        "other": {"$ref": "#/properties/__digits", "type": "string", "pattern": "^[0-9]+$", "title": "号",
                  "x-widget": "keypad"},
        "__digits": {"type": "string", "pattern": "^[0-9]{6}$", "title": "邮编", "x-widget": "keypad"},
    }, required=["phone"])
    form["$defs"] = {"phone": {"type": "string", "minLength": 11}}
    compiled = F.compile_service(service(form))
    phone, other = compiled.question("phone"), compiled.question("other")
    assert F.validate_answer(phone, "13912345678") is None
    assert F.validate_answer(phone, "1391234") == "form.error.length"  # the referenced minLength applies
    assert F.validate_answer(other, "123456") is None
    assert F.validate_answer(other, "123") == "form.error.digits"  # the referenced {6} applies
    assert F.validate_all(compiled, {"phone": "13912345678", "other": "123456"}) == {}


@pytest.mark.parametrize("ref", ["#/$defs/nope", "#/properties/nope", "https://example.invalid/s.json",
                                 "other.json#/x"])
def test_a_form_whose_ref_does_not_resolve_is_hidden_not_a_crash(ref):
    raws = raw_services()
    bad = copy.deepcopy(raws[1])
    name = next(n for n, p in bad["form"]["properties"].items() if p.get("x-widget") == "keypad")
    bad["form"]["properties"][name]["$ref"] = ref
    good, hidden = F.compile_catalog([bad, raws[0]])
    assert [g.key for g in good] == [raws[0]["key"]]
    assert hidden[0][0] == bad["key"] and "cannot be validated" in hidden[0][1]


def test_a_ref_deep_in_an_option_is_probed_too():
    prop = {"type": "string", "title": "选", "x-widget": "choice",
            "oneOf": [{"const": "a", "title": "甲"}, {"const": "b", "title": "乙", "$ref": "#/$defs/missing"}]}
    with pytest.raises(F.FormError, match="cannot be validated"):
        F.compile_service(service(form_of({"a": prop}, ["a"])))


def test_a_validator_that_breaks_after_compiling_is_form_error_invalid_not_a_crash():
    import dataclasses

    form = F.compile_service(raw_services()[1])
    q = form.asked[0]
    broken_q = dataclasses.replace(q, schema={**q.schema, "$ref": "#/$defs/gone"})
    assert F.validate_answer(broken_q, "x") == "form.error.invalid"
    broken_form = dataclasses.replace(form, schema={**form.schema, "$ref": "#/$defs/gone"})
    assert F.validate_all(broken_form, _valid_answers(form)) == {"_form": "form.error.invalid"}
