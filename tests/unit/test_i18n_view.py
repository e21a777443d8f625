import re
import string
from dataclasses import replace

import pytest

from kiosk import session as S
from kiosk import view
from kiosk.i18n import LOCALES, catalog, tr


def _fields(text):
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_locales_have_the_same_ids_and_placeholders():
    zh, en = catalog("zh_CN"), catalog("en")
    assert zh.keys() == en.keys()
    for k in zh:
        assert zh[k].strip() and en[k].strip(), k
        assert _fields(zh[k]) == _fields(en[k]), k


def test_english_has_no_chinese_left_and_chinese_is_chinese():
    han = re.compile(r"[\u4e00-\u9fff]")
    for k, v in catalog("en").items():
        if k != "app.other_locale":
            assert not han.search(v), k
    assert han.search(tr("zh_CN", "idle.title"))


def test_missing_id_falls_back_visibly():
    assert tr("en", "no.such.id") == "no.such.id"
    assert tr("xx", "idle.title") == tr("zh_CN", "idle.title")


@pytest.mark.parametrize("screen", list(S.Screen))
@pytest.mark.parametrize("locale", LOCALES)
def test_every_screen_has_a_view_with_words(screen, locale):
    st = replace(S.initial_state(), screen=screen, locale=locale, fault=S.Fault.PIN_WRONG, tries_left=2)
    v = view.build(st, 0.0)
    assert v.title and v.title != screen.value
    if screen in (S.Screen.MENU, S.Screen.PENSION, S.Screen.ERROR, S.Screen.SHOW_QR):
        assert v.buttons, "a screen a person must leave has a way out"


@pytest.mark.parametrize("fault", list(S.Fault))
def test_every_fault_has_a_title_body_and_a_way_on(fault):
    st = replace(S.initial_state(), screen=S.Screen.ERROR, fault=fault)
    v = view.build(st, 0.0)
    assert v.title and v.body and v.buttons and v.tone == "error"
    assert "error." not in v.title


def test_wrong_pin_tells_tries_left_and_warns_on_the_last():
    st = replace(S.initial_state(), screen=S.Screen.ERROR, fault=S.Fault.PIN_WRONG, tries_left=2)
    assert "2" in view.build(st, 0).body
    st = replace(st, tries_left=1)
    assert "最后" in view.build(st, 0).body


def test_countdown_text():
    st = replace(S.initial_state(), screen=S.Screen.MENU, deadline=100.0)
    assert view.build(st, 50).countdown == ""
    assert view.build(st, 90).countdown == "还有 10 秒返回首页，点屏幕继续"


def test_idle_offers_only_what_the_terminal_has():
    bare = S.initial_state(features=frozenset())
    v = view.build(bare, 0)
    assert v.body == "芯片朝上，插入下方读卡口" and [b.label for b in v.buttons] == ["English"]
    assert S.transition(bare, S.StartScan(), 0)[0].screen is S.Screen.IDLE  # no camera: nothing to start
    full = S.initial_state(features=frozenset({"idcard", "scan", "camera"}))
    v = view.build(full, 0)
    assert "身份证" in v.body and "电子社保卡" in v.body and v.buttons[0].event == S.StartScan()


def test_pension_and_receipt_check_render_the_api_models():
    import datetime as dt
    from decimal import Decimal

    from api.enums import Credential, VerifyReason
    from api.models import Payment, Pension, Verification

    p = Pension(
        insurance_type="城乡居民基本养老保险", status="领取中", contribution_tier="每年500元档", years_contributed=15,
        account_balance=Decimal("7532.40"), receiving=True, monthly_amount=Decimal("238.50"),
        payments=[Payment(month="2025-02", amount=Decimal("238.50"), status="已发放")],
        certification_status="已认证", certification_due=dt.date(2027, 3, 31),
    )
    person = S.Person("王秀兰", "370102195203140527", Credential.SSCARD_PIN)
    st = replace(S.initial_state(), screen=S.Screen.PENSION, person=person, pension=p, pension_loaded=True)
    v = view.build(st, 0)
    rows = dict(v.rows)
    assert rows["每月领取"] == "238.50 元" and rows["个人账户余额"] == "7532.40 元"
    assert v.payments == (("2025-02", "238.50 元"),) and v.body == "王*兰"
    when = dt.datetime(2025, 3, 10, 17, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    ok = Verification(genuine=True, reason=VerifyReason.OK, receipt_id="R1", service="pension_query",
                      title="养老金查询", name_masked="王*兰", id_masked="3701**********0527", created_at=when,
                      site_id="370102-001", terminal_id="T-1")
    v = view.build(replace(S.initial_state(), screen=S.Screen.RECEIPT_CHECK, checked=ok), 0)
    assert "2025-03-10 17:30" in dict(v.rows).values() and "王*兰" in dict(v.rows).values()
    bad = Verification(genuine=False, reason=VerifyReason.BAD_SIGNATURE)
    assert view.build(replace(S.initial_state(), screen=S.Screen.RECEIPT_CHECK, checked=bad), 0).tone == "forged"


def test_a_scanned_filing_receipt_says_where_the_filing_stands():
    from api.enums import Progress, VerifyReason
    from api.models import Verification

    def rows(**kw):
        v = Verification(genuine=True, reason=VerifyReason.OK, receipt_id="R1", service="public_welfare_job",
                         title="公益性岗位申请", name_masked="李*国", **kw)
        return dict(view.build(replace(S.initial_state(), screen=S.Screen.RECEIPT_CHECK, checked=v), 0).rows)

    assert rows(filing_status=Progress.FORWARDED)["办理进度"] == "已转乡镇"
    assert rows(filing_status=Progress.RETURNED, filing_reason="材料不全")["办理进度"] == "已退回：材料不全"
    assert "办理进度" not in rows()  # a pension receipt has no progress
