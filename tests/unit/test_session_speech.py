"""What the session says, checked against the real catalog (backend/services/catalog.json): refused answers with
their bounds in words, a tier said once, the service page read out, the filing's voice in the resident's language
and after a failed print, 我的办件 offline, and the configured type size and language back after each session."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from devices.base import CardInserted, CardReadOk, CardRemoved, PrintOutcome, PrintResult
from devices.idcard import IdCardPlaced, IdCardRemoved
from kiosk import forms as F
from kiosk import session as S
from kiosk import view
from kiosk.i18n import tr
from tests.unit.test_session import CARD
from tests.unit.test_session_filings import Driver as FixtureDriver
from tests.unit.test_session_filings import _employment_to_review
from tests.unit.test_session_identity import ID

REAL_CATALOG = Path(__file__).resolve().parents[2] / "backend" / "services" / "catalog.json"


def real_services() -> tuple[F.ServiceForm, ...]:
    good, bad = F.compile_catalog(json.loads(REAL_CATALOG.read_text(encoding="utf-8"))["services"])
    assert not bad
    return good


class Driver(FixtureDriver):
    """The filings driver on the catalog the backend really serves."""

    def __init__(self, **settings) -> None:
        super().__init__(**settings)
        self.send(S.CatalogLoaded(real_services()))

    def answer_until(self, field: str) -> None:
        """Answer every question before `field` with something acceptable (first options, a mobile number)."""
        while self.field != field:
            q = S._question(self.state)
            assert q is not None
            if q.options:
                self.send(S.Answer(q.options[0].value))
            elif q.widget == "keypad":
                self.type_digits("13912345678")
            else:
                raise AssertionError(f"no canned answer for {q.field} ({q.widget})")


def said(speak: S.Speak, locale: str = "zh_CN") -> str:
    return tr(locale, speak.msgid, **dict(speak.params))


# --- S1: the bounds of a refused number, in words ------------------------------------------------------------


def test_a_loan_amount_out_of_bounds_is_said_in_words_and_shown_in_figures():
    d = Driver().start("business_loan")
    d.answer_until("amount")
    d.type_digits("5000")
    assert d.state.form_error == "form.error.minimum"
    speak = d.effects_of(S.Speak)[-1]
    assert dict(speak.params) == {"min": "一万", "max": "三十万"}
    assert said(speak) == "数字太小了，最少是 一万"
    assert "最少是 10000" in d.view().extra["error"]  # the screen keeps the figure
    for _ in range(4):
        d.send(S.KeyBackspace())
    d.type_digits("400000")
    assert d.state.form_error == "form.error.maximum"
    assert said(d.effects_of(S.Speak)[-1]) == "数字太大了，最多是 三十万"
    assert "最多是 300000" in d.view().extra["error"]


def test_a_refused_number_in_english_keeps_its_figures():
    d = Driver()
    d.state = replace(d.state, locale="en")
    d.start("business_loan")
    d.answer_until("amount")
    d.type_digits("5000")
    assert said(d.effects_of(S.Speak)[-1], "en") == tr("en", "form.error.minimum", min="10000")


def test_spoken_error_params_read_decimals_and_leave_missing_bounds_empty():
    q = F.Question(field="x", widget="keypad", title="x", kind="number", minimum=1.5, maximum=None)
    assert F.spoken_error_params(q) == {"min": "一点五", "max": ""}
    assert F.error_params(q) == {"min": "1.5", "max": ""}
    huge = F.Question(field="x", widget="keypad", title="x", kind="integer", minimum=0, maximum=10**20)
    assert F.spoken_error_params(huge) == {"min": "零", "max": str(10**20)}  # too long to read: the figure


# --- S8: a tier whose name states its amount ------------------------------------------------------------------


def test_the_real_tier_is_said_once_in_words_and_shown_once():
    d = Driver().start("pension_enrolment")
    d.answer_until("tier")
    labels = [b.label for b in d.view().extra["choices"]]
    assert labels[3] == "每年500元"  # not 每年500元 and 每年 500 元 under it
    d.send(S.Answer("t500"))
    d.send(S.Back())
    assert d.field == "tier"
    speak = d.effects_of(S.Speak)[-1]
    assert dict(speak.params)["answer"] == "每年五百元"
    tier = d.state.form.question("tier")
    assert F.display_text(tier, "t500") == "每年500元"


def test_a_tier_named_without_its_amount_still_says_the_amount():
    o = F.Option("basic", "基础档", F.Decimal("200.00"))
    q = F.Question(field="tier", widget="choice", title="档次", options=(o,))
    assert F.spoken_text(q, "basic") == "基础档，每年二百元"
    assert F.option_label(o, "zh_CN") == "基础档\n每年 200 元"


# --- S7: the service page, read out ---------------------------------------------------------------------------


def test_the_service_page_reads_materials_time_limit_fee_and_phones_as_one_prompt():
    d = Driver().signed_in()
    d.send(S.Choose("business_loan"))
    speak = d.effects_of(S.Speak)[-1]
    text = said(speak)
    assert text.startswith("创业担保贷款申请。自主创业的人员可以申请创业担保贷款")
    assert "申请材料：本人居民身份证、营业执照、经营场所照片。" in text
    assert "办理时限：十五 个工作日。" in text and "收费：不收费。" in text
    assert "咨询电话一 二 三 三 三，监督电话〇 〇 〇 〇，一 二 三 四 五 六 七" in text
    assert text.endswith("看完后请点开始办理") and "。。" not in text
    assert d.send(S.Repeat()) == [speak]  # 再听一遍 says all of it again


def test_the_service_page_voice_says_two_working_days_and_on_the_spot():
    form = next(f for f in real_services() if f.key == "card_loss")
    st = replace(S.initial_state(), screen=S.Screen.SERVICE_INFO, form=form)
    text = said(S.screen_voice(st))
    assert "办理时限：当场办结。" in text and "这项业务需要联网才能办成。" in text
    two = replace(form, info=form.info.model_copy(update={"time_limit_days": 2}))
    assert "办理时限：两 个工作日" in said(S.screen_voice(replace(st, form=two)))


def test_a_mobile_service_phone_is_read_in_groups():
    form = next(f for f in real_services() if f.key == "card_loss")
    form = replace(form, info=form.info.model_copy(update={"phone": "13800001234"}))
    st = replace(S.initial_state(), screen=S.Screen.SERVICE_INFO, form=form)
    assert "咨询电话一 三 八，〇 〇 〇 〇，一 二 三 四" in said(S.screen_voice(st))


def test_the_english_service_page_leaves_out_the_chinese_only_rows():
    form = next(f for f in real_services() if f.key == "business_loan")
    st = replace(S.initial_state(locale="en"), screen=S.Screen.SERVICE_INFO, form=form)
    text = said(S.screen_voice(st), "en")
    assert text.startswith("Business start-up guaranteed loan.")
    assert "Time limit: 15 working days." in text and "Phone 1 2 3 3 3; supervision line 0 0 0 0, 1 2 3 4 5 6 7." in text
    assert "Materials" not in text and "Fee" not in text  # those rows are Chinese only in the catalog


# --- S4 / S5: the filing's voice ------------------------------------------------------------------------------


def _filed(d: FixtureDriver, *, queued: bool, printed: bool) -> S.Speak:
    d.send(S.Confirm())
    [sub] = d.effects_of(S.SubmitFiling)
    if queued:
        d.result(S.FilingSaved(sub.local_number, True, None))
    else:
        from tests.unit.test_session_filings import WALL, Filing, Handling, Progress

        filing = Filing(
            filing_id="F20261201-0001", local_number=sub.local_number, service=sub.service, title="就业登记",
            status=Progress.RECEIVED, handling=Handling.DIRECT, due_date=WALL.date(), receipt_id="R1",
            verify_url="https://example.test/v", lines=[("事项", "就业登记")], created_at=WALL, received_at=WALL,
            replayed=False,
        )
        d.result(S.FilingSaved(sub.local_number, False, filing))
    d.result(PrintResult(PrintOutcome.PRINTED if printed else PrintOutcome.PAPER_OUT))
    assert d.state.screen is S.Screen.FILED
    return d.effects_of(S.Speak)[-1]


@pytest.mark.parametrize("queued", [False, True])
def test_a_receipt_that_did_not_print_is_not_said_to_be_taken(queued):
    d = _employment_to_review(FixtureDriver())
    speak = _filed(d, queued=queued, printed=False)
    text = said(speak)
    assert "回执没有打印出来，请记下屏幕上的编号" in text and "请取走回执" not in text and "保管好回执" not in text
    assert d.send(S.Repeat()) == [speak]
    assert S.screen_voice(d.state) == speak


@pytest.mark.parametrize("queued", [False, True])
def test_a_printed_receipt_is_still_said_to_be_taken(queued):
    text = said(_filed(_employment_to_review(FixtureDriver()), queued=queued, printed=True))
    assert "回执没有打印出来" not in text and ("请取走回执" in text or "请保管好回执" in text)


def test_the_english_filing_voice_reads_the_number_in_english():
    d = _employment_to_review(FixtureDriver())
    d.state = replace(d.state, locale="en")
    speak = _filed(d, queued=False, printed=True)
    assert dict(speak.params)["number"] == "F 2 0 2 6 1 2 0 1, 0 0 0 1"  # the hyphen is a pause, not "minus"
    assert not any("\u3007" <= ch <= "\u9fff" for ch in said(speak, "en"))


def test_the_english_not_done_voice_uses_the_english_title_and_digits():
    d = FixtureDriver()
    d.state = replace(d.state, locale="en")
    d.start("card_loss", strong=False)
    d.send(S.Answer("lost"))
    d.type_digits("13912345678")
    speak = _filed(d, queued=True, printed=True)
    assert speak.msgid == "filed.not_done.voice"
    text = said(speak, "en")
    assert not any("\u3007" <= ch <= "\u9fff" for ch in text), text


# --- S3: 我的办件 offline -------------------------------------------------------------------------------------


def test_my_filings_offline_with_nothing_local_says_the_network_is_down_not_none():
    d = FixtureDriver().signed_in()
    d.send(S.Choose("my_filings"))
    fx = d.result(S.MyFilingsLoaded((), offline=True))
    [speak] = [e for e in fx if isinstance(e, S.Speak)]
    assert speak == S.Speak("my_filings.offline.none")
    assert said(speak).startswith("网络不通") and "没有办件" not in said(speak)
    assert d.view().body == tr("zh_CN", "my_filings.offline.none")
    assert S.screen_voice(d.state) == speak


def test_my_filings_offline_with_local_rows_says_they_are_only_this_terminals():
    d = FixtureDriver().signed_in()
    d.send(S.Choose("my_filings"))
    row = S.FilingRow("L20261201-ABCDEF", None, "employment_registration", "就业登记", "received", queued=True)
    fx = d.result(S.MyFilingsLoaded((row,), offline=True))
    assert [e.msgid for e in fx if isinstance(e, S.Speak)] == ["my_filings.offline.voice"]
    assert said(fx[-1]) == "网络不通，只查到本机还没上传的一件办件。就业登记，待上传。"


# --- S2: the configured type size and language come back after a session -------------------------------------


def test_large_text_turned_off_is_back_for_the_next_resident():
    d = FixtureDriver().to_menu()
    d.send(S.ToggleElderMode())
    d.send(S.ConfirmShrink(True))
    assert not d.state.elder_mode
    d.send(CardRemoved("r0"))
    assert d.state.screen is S.Screen.IDLE and d.state.elder_mode
    assert view.build(d.state, d.clock.t).elder_mode


@pytest.mark.parametrize("end", ["finish", "timeout", "idcard"])
def test_every_way_a_session_ends_restores_the_configured_mode_and_language(end):
    d = FixtureDriver()
    d.send(S.SetLocale("en"))  # chosen on the idle screen by this resident
    d.send(IdCardPlaced(ID))
    d.send(S.ToggleElderMode())
    d.send(S.ConfirmShrink(True))
    assert (d.state.locale, d.state.elder_mode) == ("en", False)
    if end == "finish":
        d.send(S.Finish())
        assert d.state.screen is S.Screen.TAKE_CARD
        assert (d.state.locale, d.state.elder_mode) == ("en", False)  # still theirs while they take the card
        d.send(IdCardRemoved())
    elif end == "timeout":
        d.send(S.Tick(), advance=3600)
        assert d.state.screen is S.Screen.TAKE_CARD
        d.send(IdCardRemoved())
    else:
        d.send(IdCardRemoved())
    assert d.state.screen is S.Screen.IDLE
    assert (d.state.locale, d.state.elder_mode) == ("zh_CN", True)


def test_a_terminal_configured_for_standard_type_goes_back_to_standard():
    st = S.initial_state(elder_mode=False, locale="en")
    d = FixtureDriver()
    d.state = replace(d.state, elder_mode=False, locale="en", default_elder_mode=st.default_elder_mode,
                      default_locale=st.default_locale)
    d.to_menu()
    d.send(S.ToggleElderMode())  # large text on, for this resident only
    assert d.state.elder_mode
    d.send(CardRemoved("r0"))
    assert (d.state.locale, d.state.elder_mode) == ("en", False)


def test_a_choice_made_on_the_idle_screen_holds_for_the_session_it_starts():
    d = FixtureDriver()
    d.send(S.SetLocale("en"))
    d.send(S.ToggleElderMode())
    d.send(S.ConfirmShrink(True))
    d.send(CardInserted("r0"))
    d.result(CardReadOk(CARD))
    assert d.state.screen is S.Screen.PIN and (d.state.locale, d.state.elder_mode) == ("en", False)


def test_scanning_from_the_idle_screen_and_backing_out_keeps_the_choice():
    d = FixtureDriver()
    d.send(S.SetLocale("en"))
    d.send(S.StartScan())
    d.send(S.Back())
    assert d.state.screen is S.Screen.IDLE and d.state.locale == "en"


def test_english_numbers_pause_at_their_groups():
    desk = S.HelpDesk((("Zhang", "13800001234"),), "0531-12345678")
    st = replace(S.initial_state(locale="en"), helpdesk=desk)
    fx = S.transition(st, S.AskHelp(), 0.0)[1]
    [speak] = [e for e in fx if isinstance(e, S.Speak)]
    text = said(speak, "en")
    assert "1 3 8, 0 0 0 0, 1 2 3 4" in text and "0 5 3 1, 1 2 3 4 5 6 7 8" in text
