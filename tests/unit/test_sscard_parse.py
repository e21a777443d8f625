"""Pure parts of the social-security card driver: APDUs, T=0 follow-ups, records, fields."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.base import CardFault, PinOutcome, PinResult
from devices.sscard import (
    EF05_FIELDS,
    EF06_FIELDS,
    SELECT_SSSE,
    RecordError,
    ResponseLost,
    build_card_data,
    build_read_record,
    build_verify,
    decode_bcd_date,
    decode_ef05,
    decode_ef06,
    identity_of,
    parse_record,
    pin_result,
    t0_exchange,
)
from sim.personas import load_personas
from sim.vcard import SSCardChip, build_files

pytestmark = pytest.mark.timeout(60)


def test_select_apdu_is_the_documented_bytes():
    assert SELECT_SSSE.hex().upper() == "00A404000F7378312E73682EC9E7BBE1B1A3D5CF"


@pytest.mark.parametrize(
    ("tag", "sfi", "expected"),
    [(0x08, 6, "00B2083014"), (0x09, 6, "00B2093020"), (0x4E, 6, "00B24E3016"), (0x01, 5, "00B2012812")],
)
def test_read_record_addresses_by_tag_with_sfi(tag, sfi, expected):
    assert build_read_record(tag, sfi).hex().upper() == expected


def test_verify_packs_pin_as_bcd():
    assert build_verify("123456").hex().upper() == "0020000003123456"
    assert build_verify("12345").hex().upper() == "002000000312345F"
    for bad in ("12a456", "123", "１２３４５６", ""):
        with pytest.raises(ValueError):
            build_verify(bad)


def test_parse_record():
    assert parse_record(bytes([0x08, 3]) + b"abc", 0x08) == b"abc"
    with pytest.raises(RecordError):
        parse_record(bytes([0x09, 3]) + b"abc", 0x08)  # wrong tag
    with pytest.raises(RecordError):
        parse_record(bytes([0x08, 4]) + b"abc", 0x08)  # truncated
    with pytest.raises(RecordError):
        parse_record(b"\x08", 0x08)


def test_dates():
    assert decode_bcd_date(bytes.fromhex("19520314")) == date(1952, 3, 14)
    assert decode_bcd_date(b"\0\0\0\0") is None
    for bad in ("19521314", "1952031A", "195203"):
        with pytest.raises(RecordError):
            decode_bcd_date(bytes.fromhex(bad))


def _decoded(p: dict, padded: bool = True):
    files = build_files(p, padded)
    return decode_ef05(files[5]), decode_ef06(files[6])


@pytest.mark.parametrize("p", load_personas(), ids=lambda p: p["key"])
@pytest.mark.parametrize("padded", [True, False])
def test_every_persona_round_trips(p, padded):
    data = build_card_data(*_decoded(p, padded))
    assert data.name == p["name"]
    assert data.ssn == p["ssn"]
    assert data.card_number == p["card_number"]
    assert data.card_version == p["version"]
    assert data.birth_date == date.fromisoformat(p["birth_date"])
    assert data.expiry_date == date.fromisoformat(p["expiry_date"])
    assert data.region_code == p["card_id"][:6]
    assert data.gender == p["gender"] and data.nation == p["nation"]
    assert data.birth_place == p["birth_place"]


def test_name_extension_is_appended_even_when_a_character_is_split():
    name = "阿依古丽·买买提依明·艾𠮷尔江"
    raw = name.encode("gb18030")
    assert len(raw) > 30
    fields = decode_ef06({0x08: b"650102198008080224", 0x09: raw[:30], 0x4E: raw[30:].ljust(20, b"\0")})
    assert fields["name"] == name


def test_bad_check_digit_is_invalid_data():
    ef05, ef06 = _decoded(load_personas()[0])
    ef06["ssn"] = ef06["ssn"][:-1] + ("0" if ef06["ssn"][-1] != "0" else "1")
    with pytest.raises(RecordError):
        build_card_data(ef05, ef06)


def test_missing_required_record_is_an_error():
    files = build_files(load_personas()[0])
    del files[6][0x09]
    with pytest.raises(RecordError):
        decode_ef06(files[6])


# ---------------------------------------------------------------- T=0 follow-ups


def _chip_transmit(style):
    chip = SSCardChip(load_personas()[0], t0_style=style)
    sent: list[bytes] = []

    def transmit(apdu: bytes) -> bytes:
        sent.append(apdu)
        return chip.process(apdu)

    return transmit, sent


@pytest.mark.parametrize("style", [None, "61", "6C"])
def test_t0_exchange_against_the_chip(style):
    transmit, sent = _chip_transmit(style)
    _data, sw = t0_exchange(transmit, SELECT_SSSE)
    assert sw == 0x9000
    data, sw = t0_exchange(transmit, build_read_record(0x09, 6))
    assert sw == 0x9000
    assert decode_ef06({0x08: b"370102195203140527", 0x09: parse_record(data, 0x09)})["name"] == "王秀兰"
    if style == "61":
        assert any(a[:2] == b"\x00\xc0" for a in sent)
    if style == "6C":
        assert sent[-1] == bytes.fromhex("00B2093008")  # repeated with the card's Le


def test_t0_get_response_with_nothing_pending_is_a_lost_response():
    # 61 08 announced, then the card (reset or swapped) has nothing: not data, not a status to act on
    answers = iter([bytes.fromhex("6108"), bytes.fromhex("6985")])
    with pytest.raises(ResponseLost):
        t0_exchange(lambda _apdu: next(answers), build_read_record(0x08, 6))


def test_pin_result_maps_the_cards_answers():
    assert pin_result(0x9000) == PinResult(PinOutcome.OK)
    assert pin_result(0x63C2) == PinResult(PinOutcome.WRONG, tries_left=2)
    assert pin_result(0x63C0) == PinResult(PinOutcome.BLOCKED, tries_left=0)
    assert pin_result(0x6983) == PinResult(PinOutcome.BLOCKED, tries_left=0)
    assert pin_result(0x6982) == PinResult(PinOutcome.FAILED, fault=CardFault.NEEDS_SAM)
    assert pin_result(0x6986) == PinResult(PinOutcome.FAILED, fault=CardFault.UNREADABLE)


def test_identity_is_card_id_card_number_and_id_number():
    p = load_personas()[0]
    files = build_files(p)
    data = build_card_data(decode_ef05(files[5]), decode_ef06(files[6]))
    assert identity_of(data) == (p["card_id"].upper(), p["card_number"], p["ssn"])


# ---------------------------------------------------------------- properties: no crash, no hang

_documented = (RecordError,)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 255))
def test_parse_record_never_crashes(resp, tag):
    try:
        value = parse_record(resp, tag)
    except _documented:
        return
    assert resp[0] == tag and len(value) == resp[1]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(EF05_FIELDS)), st.none() | st.binary(max_size=20)))
def test_decode_ef05_never_crashes(records):
    try:
        decode_ef05(records)
    except _documented:
        pass


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(EF06_FIELDS)), st.none() | st.binary(max_size=34)))
def test_decode_ef06_and_build_never_crash(records):
    try:
        build_card_data(
            {
                "card_id": "",
                "card_type": "",
                "card_version": "",
                "init_org": "",
                "issue_date": None,
                "expiry_date": None,
                "card_number": "",
            },
            decode_ef06(records),
        )
    except _documented:
        pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(load_personas()), st.data())
def test_mutated_records_never_crash(p, data):
    files = build_files(p)
    sfi = data.draw(st.sampled_from([5, 6]))
    tag = data.draw(st.sampled_from(sorted(files[sfi])))
    raw = bytearray(bytes([tag, len(files[sfi][tag])]) + files[sfi][tag])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        files[sfi][tag] = parse_record(bytes(raw), tag)
        build_card_data(decode_ef05(files[5]), decode_ef06(files[6]))
    except _documented:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=40), st.binary(min_size=4, max_size=8))
def test_t0_exchange_never_hangs_on_any_answers(answers, apdu):
    calls = []

    def transmit(_apdu: bytes) -> bytes:
        calls.append(_apdu)
        return answers[min(len(calls) - 1, len(answers) - 1)]  # repeats the last answer for ever

    try:
        t0_exchange(transmit, apdu)
    except _documented:
        pass
    assert len(calls) <= 17  # one command + at most 16 follow-ups


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([None, "61", "6C"]))
def test_twin_chip_answers_any_apdu_with_a_status_word(apdu, style):
    chip = SSCardChip(load_personas()[0], t0_style=style)
    chip.process(SELECT_SSSE)
    answer = chip.process(apdu)
    assert len(answer) >= 2
