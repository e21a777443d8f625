import logging
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from api.idnumber import check_digit, is_valid
from kiosk.logs import RedactingFilter, redact


def test_id_numbers_are_masked_including_x():
    assert redact("ssn=370102195203140527 ok") == "ssn=3701**********0527 ok"
    assert redact("id 32058319710520104X.") == "id 3205**********104X."


def test_han_names_are_removed_and_pins_dropped():
    out = redact("card of 王秀兰 read; PIN=123456; name 阿依古丽·买买提依明·艾𠮷尔江")
    assert "王" not in out and "123456" not in out and "𠮷" not in out and "阿依" not in out


def test_other_numbers_survive():
    assert redact("took 118 ms, port 35963, receipt R-20261123-0001") == (
        "took 118 ms, port 35963, receipt R-20261123-0001"
    )


def test_filter_redacts_args_and_exceptions(tmp_path):
    path = tmp_path / "log.txt"
    h = logging.FileHandler(path, encoding="utf-8")
    h.addFilter(RedactingFilter())
    log = logging.getLogger("t.redact")
    log.addHandler(h)
    try:
        log.warning("holder %s id %s", "王秀兰", "370102195203140527")
        try:
            raise ValueError("bad 370102195203140527")
        except ValueError:
            log.exception("failed for %s", "李建国")
    finally:
        log.removeHandler(h)
        h.close()
    text = path.read_text(encoding="utf-8")
    assert "370102195203140527" not in text and "王秀兰" not in text and "李建国" not in text
    assert "3701**********0527" in text and "ValueError" in text


def test_the_log_guard_knows_the_demo_people():
    from tests.conftest import SECRETS

    assert any(len(s) == 18 for s in SECRETS) and "王秀兰" in SECRETS and "123456" in SECRETS


def test_redaction_covers_foreign_numbers_glued_ids_and_worded_pins():
    out = redact("foreign USA110075061001; path %2F370102195203140527; PIN is 123456")
    assert "110075061001" not in out and "195203140527" not in out and "123456" not in out


# ------------------------------------------------------------------ ID numbers in every shape


def test_old_15_digit_id_numbers_are_masked():
    assert redact("old card 370102520314052 read") == "old card 3701*******4052 read"


def test_id_number_glued_to_a_trailing_letter_is_masked():
    out = redact("lookup id370102195203140527x done")
    assert "195203140527" not in out and out == "lookup id3701**********0527x done"


def test_id_number_glued_to_letters_after_a_colon_is_masked():
    out = redact("ID:370102195203140527abc")
    assert out == "ID:3701**********0527abc"


def test_id_number_with_check_x_glued_to_letters_is_masked():
    assert redact("no=32058319710520104Xyz") == "no=3205**********104Xyz"


def test_id_number_glued_to_other_digits_is_masked():
    out = redact("trace 99370102195203140527123")
    assert "370102195203140527" not in out and "3701**********0527" in out


def test_long_numbers_without_an_id_inside_survive():
    """Over-redaction is possible (a 19-digit number may hold a valid ID by chance); these hold none."""
    assert redact("bank 6217000010012345678") == "bank 6217000010012345678"  # no window is a valid ID
    assert redact("16 digits 1234567890123456") == "16 digits 1234567890123456"


def _id(prefix17: str) -> str:
    return prefix17 + check_digit(prefix17)


ids = st.builds(
    lambda area, born, seq: _id(f"{area}{born:%Y%m%d}{seq:03d}"),
    st.integers(110000, 659999).map(str),
    st.dates(date(1900, 1, 1), date(2026, 12, 31)),
    st.integers(0, 999),
)


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=40), ids, st.text(max_size=40))
def test_no_valid_id_number_survives_in_any_surrounding_text(before, number, after):
    assert is_valid(number)
    out = redact(before + number + after)
    assert number not in out
    assert number.lower() not in out


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789Xx -:=", max_size=30), ids, st.text(alphabet="0123456789Xx -:=", max_size=30))
def test_no_valid_id_number_survives_among_digits(before, number, after):
    assert number not in redact(before + number + after)


# ------------------------------------------------------------------ names in Latin letters


def test_latin_name_as_key_equals_value_is_redacted():
    assert redact("signed in name=ZHANG San level=2") == "signed in name=<redacted> level=2"


def test_latin_name_in_a_python_dict_repr_is_redacted():
    assert redact("{'name': 'ZHANG San', 'gender': 'M'}") == "{'name': '<redacted>', 'gender': 'M'}"


def test_latin_name_in_json_is_redacted():
    assert redact('{"english_name": "MUSTERMANN, ERIKA", "nationality": "DEU"}') == (
        '{"english_name": "<redacted>", "nationality": "DEU"}'
    )


def test_latin_name_in_a_dataclass_repr_is_redacted():
    out = redact("IdCardData(card_type='foreign_permanent', english_name='ZHANG SAN', gender='1')")
    assert "ZHANG" not in out and "english_name='<redacted>'" in out and "gender='1'" in out


def test_latin_name_after_the_word_holder_is_redacted():
    assert redact("holder ZHANG San signed in") == "holder <redacted> signed in"


def test_name_like_keys_in_other_spellings_are_redacted():
    out = redact("holderName=ZHANG San, status=ok; surname: Mustermann; names=['LI Si', 'WANG Wu']")
    assert all(s not in out for s in ("ZHANG", "Mustermann", "LI Si", "WANG"))
    assert "status=ok" in out


def test_keys_that_name_things_keep_their_values():
    text = "reader_name='Virtual PCD 00 00' filename=/var/log/kiosk.log hostname=kiosk-1 logger name kiosk.app"
    assert redact(text) == text


# ------------------------------------------------------------------ PINs with spaces or dashes


def test_pin_digits_split_by_spaces_are_redacted():
    assert redact("keypad 1 2 3 4 5 6 entered") == "keypad <redacted> entered"


def test_pin_digits_split_by_a_dash_are_redacted():
    assert redact("typed 123-456 on pad") == "typed <redacted> on pad"


def test_pin_key_with_spaced_digits_is_redacted():
    out = redact("pin=1 2 3 4 5 6")
    assert out == "pin=<redacted>" and "1 2 3" not in out


def test_dates_times_receipt_ids_and_addresses_keep_their_digits():
    text = "2026-12-01 10:04:12,123 took 118 ms receipt R-20261123-0001 at 127.0.0.1:8443 tries 3 2 1"
    assert redact(text) == text
