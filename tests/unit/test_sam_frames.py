"""SAM framing and the three text-block layouts: exact bytes, resync, and no crash on any input."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.idnumber import check_digit
from devices import sam_frames as sf
from devices.nations import NATIONS, card_face_name, nation_name
from sim.idcard_twin import card_from_persona, load_personas

PERSONAS = load_personas()


# ------------------------------------------------------------------------------------ frames


@pytest.mark.parametrize(
    "cmd, hexframe",
    [
        (sf.SAM_STATUS, "aaaaaa9669000311ffed"),
        (sf.SAM_ID, "aaaaaa9669000312ffee"),
        (sf.FIND_CARD, "aaaaaa96690003200122"),
        (sf.SELECT_CARD, "aaaaaa96690003200221"),
        (sf.READ_TEXT_PHOTO, "aaaaaa96690003300132"),
        (sf.READ_TEXT_PHOTO_FP, "aaaaaa96690003301023"),
    ],
)
def test_command_frames_match_protocols_md(cmd, hexframe):
    assert sf.build_command(*cmd).hex() == hexframe


def test_response_round_trip_and_split_at_every_byte():
    frame = sf.build_response(0, 0, 0x9F, b"\x00\x00\x00\x00")
    assert frame[5:7] == b"\x00\x08"  # LEN counts SW1..CHK
    for cut in range(len(frame) + 1):
        p = sf.FrameParser()
        items = p.feed(frame[:cut]) + p.feed(frame[cut:])
        assert items == [frame[7:-1]]
        assert sf.parse_response(items[0]) == (0, 0, 0x9F, b"\x00" * 4)


def test_garbage_partial_preamble_and_two_frames_in_one_chunk():
    a = sf.build_response(0, 0, 0x90)
    b = sf.build_response(0, 0, 0x80)
    p = sf.FrameParser()
    assert p.feed(b"\x01\x02\xaa\xaa" + a + b"\x96" + b) == [a[7:-1], b[7:-1]]
    assert p.dropped == 5


def test_bad_checksum_is_reported_then_next_frame_found():
    good = sf.build_response(0, 0, 0x90)
    bad = good[:-1] + bytes([good[-1] ^ 1])
    p = sf.FrameParser()
    assert p.feed(bad + good) == [sf.BadFrame("checksum"), good[7:-1]]


def test_absurd_length_resyncs_without_waiting():
    good = sf.build_response(0, 0, 0x90)
    p = sf.FrameParser()
    assert p.feed(sf.PREAMBLE + b"\xff\xff" + good) == [sf.BadFrame("length"), good[7:-1]]
    assert p.feed(sf.PREAMBLE + b"\x00\x01") == [sf.BadFrame("length")]


def test_buffer_stays_bounded_on_endless_noise():
    p = sf.FrameParser()
    for _ in range(50):
        p.feed(bytes(range(0x00, 0xA0)) * 20)
    assert p.buffered <= 4
    p.feed(b"\xaa\xaa\xaa")
    assert p.buffered == 3  # a partial preamble is kept for the next read


def test_parse_response_too_short():
    with pytest.raises(sf.FrameError):
        sf.parse_response(b"\x00\x00")


# ------------------------------------------------------------------------------------ nations


def test_gb3304_full_order():
    assert len(NATIONS) == 58
    assert [NATIONS[i] for i in (1, 24, 25, 26, 32, 33, 34, 56)] == [
        "汉族", "拉祜族", "水族", "东乡族", "仫佬族", "羌族", "布朗族", "基诺族"
    ]
    assert sorted(NATIONS) == list(range(1, 57)) + [97, 98]
    assert nation_name(97) == "其他" and nation_name(98) == "外国血统中国籍人士"
    assert card_face_name(5) == "维吾尔" and card_face_name(None) == "" and nation_name(57) == ""


# ------------------------------------------------------------------------------------ text block


@pytest.mark.parametrize("key", sorted(k for k in PERSONAS if k != "foreign_2023"))
def test_every_persona_round_trips(key):
    card = card_from_persona(PERSONAS[key])
    text = sf.encode_text(card)
    assert len(text) == 256
    photo = bytes(range(256)) * 4
    got = sf.decode_read_response(sf.encode_read_data(text, photo))
    assert got == dataclasses.replace(card, photo_wlt=photo)


def test_card_type_markers_and_fields():
    foreign = sf.encode_text(card_from_persona(PERSONAS["foreign"]))
    hk = sf.encode_text(card_from_persona(PERSONAS["hk"]))
    elder = sf.encode_text(card_from_persona(PERSONAS["elder"]))
    assert foreign[248:250] == b"I\x00" and hk[248:250] == b"J\x00" and elder[248:250] == b" \x00"
    assert foreign[122:152].decode("utf-16-le") == "USA110085071201"  # fills the 30 bytes exactly
    assert hk[220:238].decode("utf-16-le") == "H60123456" and hk[238:242].decode("utf-16-le") == "01"
    assert elder[204:208].decode("utf-16-le") == "长期"
    e = sf.decode_text(elder)
    assert e.valid_to == sf.LONG_TERM and e.long_term and not e.is_expired(date(2099, 1, 1))
    assert e.nation_face == "汉" and e.gender_name == "女"
    x = sf.decode_text(sf.encode_text(card_from_persona(PERSONAS["x_ending"])))
    assert x.id_number.endswith("X")
    assert sf.decode_text(sf.encode_text(card_from_persona(PERSONAS["shui"]))).nation_name == "水族"


def test_repr_leaks_no_personal_data():
    card = card_from_persona(PERSONAS["elder"])
    assert "王秀兰" not in repr(card) and "370102" not in repr(card) and "泉城路" not in repr(card)


def test_expiry_is_strictly_before_today():
    card = card_from_persona(PERSONAS["expired"])  # valid to 2019-07-01
    assert not card.is_expired(date(2019, 7, 1))
    assert card.is_expired(date(2019, 7, 2))


def test_foreign_2023_number_is_unreadable_not_guessed():
    text = sf.encode_text(card_from_persona(PERSONAS["foreign_2023"]))
    with pytest.raises(sf.DecodeError) as e:
        sf.decode_text(text)
    assert e.value.fault == "unreadable"


def _with(key, **changes):
    return sf.encode_text(dataclasses.replace(card_from_persona(PERSONAS[key]), **changes))


@pytest.mark.parametrize(
    "key, changes, why",
    [
        ("elder", {"id_number": "370102195203140528"}, "GB 11643"),
        ("elder", {"id_number": "370102195203150520"[:17] + check_digit("37010219520315052")}, "disagree"),
        ("hk", {"id_number": "810000199408230014"}, "GB 11643"),
        ("hk", {"id_number": "370102195203140527", "birth_date": date(1952, 3, 14)}, "81/82/83"),
        ("elder", {"gender": "3"}, "gender"),
        ("elder", {"nation": 57}, "nation"),
        ("elder", {"name": ""}, "empty name"),
        ("x_ending", {"valid_to": date(2010, 1, 1)}, "before"),
        ("foreign", {"nationality": "U1"}, "nationality"),
    ],
)
def test_invalid_data(key, changes, why):
    with pytest.raises(sf.DecodeError) as e:
        sf.decode_text(_with(key, **changes))
    assert e.value.fault == "invalid_data" and why in e.value.detail


def test_bad_dates_and_lengths():
    elder = bytearray(_with("elder"))
    elder[36:52] = "19520230".encode("utf-16-le")
    with pytest.raises(sf.DecodeError, match="real date"):
        sf.decode_text(bytes(elder))
    with pytest.raises(sf.DecodeError) as e:
        sf.decode_text(b"\x20\x00" * 100)
    assert e.value.fault == "unreadable"
    good = sf.encode_read_data(_with("elder"), b"\x00" * 1024)
    for broken in (good[:-1], good[:3], b"\x00\xff" + good[2:]):
        with pytest.raises(sf.DecodeError) as e:
            sf.decode_read_response(broken)
        assert e.value.fault == "unreadable"


def test_no_wlt_decoder_never_claims_to_decode():
    decoder: sf.WltDecoder = sf.NoWltDecoder()
    assert decoder.decode(b"\x00" * 1024) is None


# ------------------------------------------------------------------------------------ properties

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_parser_never_raises_and_stays_bounded(chunks):
    p = sf.FrameParser(max_len=512)
    for c in chunks:
        for item in p.feed(c):
            assert isinstance(item, bytes | sf.BadFrame)
        assert p.buffered <= 7 + 512 + len(c)
    # every buffered byte would be part of a frame still possible
    assert p.buffered < 7 + 512


@FAST
@given(
    st.binary(max_size=200).map(lambda b: b.replace(b"\xaa", b"")),
    st.binary(min_size=2, max_size=300),  # LEN ≥ 3: CMD PARA CHK at least
    st.integers(0, 2000),
)
def test_any_payload_survives_leading_noise_and_any_split(noise, payload, cut):
    frame = sf.build_frame(payload)
    stream = noise + frame
    cut %= len(stream) + 1
    p = sf.FrameParser()
    items = [i for i in p.feed(stream[:cut]) + p.feed(stream[cut:]) if isinstance(i, bytes)]
    assert items == [frame[7:-1]]


@FAST
@given(st.data())
def test_mutated_frames_never_crash(data):
    key = data.draw(st.sampled_from(sorted(PERSONAS)))
    text = sf.encode_text(card_from_persona(PERSONAS[key]))
    frame = bytearray(sf.build_response(0, 0, 0x90, sf.encode_read_data(text, b"\x00" * 1024)))
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "drop", "insert"]))
        i = data.draw(st.integers(0, len(frame) - 1))
        if op == "flip":
            frame[i] ^= data.draw(st.integers(1, 255))
        elif op == "drop":
            del frame[i]
        else:
            frame[i:i] = data.draw(st.binary(min_size=1, max_size=4))
    p = sf.FrameParser()
    for item in p.feed(bytes(frame)):
        if isinstance(item, bytes):
            try:
                r = sf.parse_response(item)
                sf.decode_read_response(r.data)
            except sf.SamError:
                pass


@FAST
@given(st.binary(min_size=256, max_size=256))
def test_random_text_blocks_raise_only_decode_error(text):
    try:
        card = sf.decode_text(text)
    except sf.DecodeError as e:
        assert e.fault in ("unreadable", "invalid_data")
    else:
        assert isinstance(card, sf.IdCardData)


@FAST
@given(st.data())
def test_mutated_text_blocks_raise_only_decode_error(data):
    key = data.draw(st.sampled_from(sorted(PERSONAS)))
    text = bytearray(sf.encode_text(card_from_persona(PERSONAS[key])))
    for _ in range(data.draw(st.integers(1, 6))):
        text[data.draw(st.integers(0, 255))] = data.draw(st.integers(0, 255))
    try:
        sf.decode_text(bytes(text))
    except sf.DecodeError:
        pass


@FAST
@given(st.binary(max_size=1400), st.booleans())
def test_random_read_data_raises_only_sam_error(data, fp):
    try:
        sf.decode_read_response(data, fingerprint=fp)
    except sf.SamError:
        pass
