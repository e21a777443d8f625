import logging

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
