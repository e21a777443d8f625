"""Elders first, in the session: a prompt on every screen (values in words), 再听一遍, the countdown said once,
the idle attract prompt, elder mode doubling every timeout, the large-text question, the receipt verdicts and
请工作人员帮助 (the panel, its voice, the backend request and what offline means)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from api.enums import VerifyReason
from api.models import Verification
from devices.base import (
    CardInserted,
    CardReadOk,
    CardRemoved,
    CodeScanned,
    PinOutcome,
    PinResult,
    PrintOutcome,
    PrintResult,
)
from kiosk import session as S
from kiosk import view
from kiosk.i18n import tr
from tests.unit.test_session import CARD, RECEIPT_LINES, Pension
from tests.unit.test_session import Driver as PlainDriver
from tests.unit.test_session_filings import Driver as FilingDriver
from tests.unit.test_session_filings import _employment_to_review

DESK = S.HelpDesk((("张秀英", "13800001234"), ("李建国", "13900005678")), "0531-12345678")


class _Checks:
    """Every transition onto another screen must say something: records which screens were entered, and fails
    at once on one that was entered silently."""

    def __init__(self, **settings) -> None:
        self.entered: set[S.Screen] = set()
        super().__init__(**settings)

    def send(self, event, advance: float = 0.0):
        before = self.state.screen
        effects = super().send(event, advance)
        if self.state.screen is not before:
            spoken = [e for e in effects if isinstance(e, S.Speak)]
            assert spoken, f"{before.value} -> {self.state.screen.value} on {type(event).__name__}: silent"
            self.entered.add(self.state.screen)
        return effects


class Walker(_Checks, FilingDriver):
    pass


class PlainWalker(_Checks, PlainDriver):
    """No catalog: the card loss is the built-in one, with its confirmation screen."""


def _journeys() -> set[S.Screen]:
    seen: set[S.Screen] = set()
    # the pension: reading, pin, checking, menu, loading, pension, printing, take card, idle
    d = Walker().to_pension()
    d.send(S.Back())  # back to the menu
    d.send(S.Choose("pension_query"))
    d.result(S.PensionLoaded(Pension()))
    d.send(S.PrintRequested())
    d.result(S.ReceiptIssued("R1", "https://x/v", RECEIPT_LINES))
    d.result(PrintResult(PrintOutcome.PAPER_OUT))  # show the QR
    d.send(S.Finish())
    d.send(CardRemoved("r0"))
    seen |= d.entered
    # a wrong PIN, then back; a backend failure and back to the menu; the card loss
    d = PlainWalker().to_pin()
    d.enter_pin()
    d.result(PinResult(PinOutcome.WRONG, tries_left=2))
    d.send(S.Retry())
    d.enter_pin()
    d.result(PinResult(PinOutcome.OK))
    d.send(S.Choose("pension_query"))
    d.result(S.BackendFailed(S.BackendFailureKind.OFFLINE))
    d.send(S.Retry())  # back to the waiting screen
    d.result(S.BackendFailed(S.BackendFailureKind.OFFLINE))
    d.send(S.Back())
    d.send(S.Choose("card_loss"))
    d.send(S.Back())
    d.send(S.Choose("card_loss"))
    d.send(S.Confirm())
    d.result(S.CardLossFiled("F20250310-0A1B2C3D4E", "accepted", "https://x/v"))
    d.result(PrintResult(PrintOutcome.PRINTED))
    seen |= d.entered
    # scanning: a receipt
    d = Walker()
    d.send(S.StartScan())
    d.send(CodeScanned("https://x/v1/receipts/R1/verify?sig=x", "camera"))
    d.result(S.ReceiptChecked(Verification(genuine=True, reason=VerifyReason.OK)))
    d.send(S.Finish())
    seen |= d.entered
    # a filing through to the rating, and 我的办件
    d = _employment_to_review(Walker())
    d.send(S.Confirm())
    d.result(S.FilingSaved(d.effects_of(S.SubmitFiling)[-1].local_number, True))
    d.result(PrintResult(PrintOutcome.PRINTED))
    d.send(S.Finish())
    seen |= d.entered
    d = Walker().signed_in()
    d.send(S.Choose("my_filings"))
    d.result(S.MyFilingsLoaded(()))
    d.send(S.Back())
    seen |= d.entered
    return seen


def test_every_screen_speaks_when_it_appears():
    assert _journeys() == set(S.Screen)


def test_back_to_the_menu_speaks_the_menu_everywhere():
    for back_from in ("pension", "confirm", "error"):
        d = PlainDriver().to_menu()
        if back_from == "pension":
            d.send(S.Choose("pension_query"))
            d.result(S.PensionLoaded(Pension()))
        elif back_from == "confirm":
            d.send(S.Choose("card_loss"))
        else:
            d.send(S.Choose("pension_query"))
            d.result(S.BackendFailed(S.BackendFailureKind.SERVER_ERROR))
        fx = d.send(S.Back())
        assert d.state.screen is S.Screen.MENU
        assert [e.msgid for e in fx if isinstance(e, S.Speak)] == ["menu.title"], back_from


# --- values in words ----------------------------------------------------------------------------------------


def test_the_pension_is_said_in_words():
    d = FilingDriver().to_menu()
    d.send(S.Choose("pension_query"))
    fx = d.result(S.PensionLoaded(Pension()))
    [speak] = [e for e in fx if isinstance(e, S.Speak)]
    assert speak.msgid == "pension.voice.receiving.cert"
    said = tr("zh_CN", speak.msgid, **dict(speak.params))
    assert "每月领取二百三十八元五角" in said and "七千五百三十二元四角" in said
    assert "二〇二七年三月三十一日" in said and "238" not in said
    assert "累计缴费十五年" in said  # the years on screen too


def test_a_genuine_receipt_says_what_it_is_for_when_and_where_the_filing_stands():
    import datetime as dt

    from api.enums import Progress

    d = FilingDriver()
    d.send(CodeScanned("https://x/v1/receipts/R1/verify?sig=x", "scanner"))
    v = Verification(genuine=True, reason=VerifyReason.OK, title="就业登记", filing_status=Progress.FORWARDED,
                     received_at=dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8))))
    fx = d.result(S.ReceiptChecked(v))
    [speak] = [e for e in fx if isinstance(e, S.Speak)]
    said = tr("zh_CN", speak.msgid, **dict(speak.params))
    assert said == "这张回执是真的，是本系统出具的。就业登记，二〇二六年十二月一日办理。办理进度：已转乡镇。"
    assert d.send(S.Repeat()) == [speak]


def test_a_pension_not_yet_paid_says_the_balance_only():
    d = FilingDriver().to_menu()
    d.send(S.Choose("pension_query"))
    p = Pension().model_copy(update={"receiving": False, "monthly_amount": None, "certification_due": None,
                                     "account_balance": Decimal("100000.01")})
    fx = d.result(S.PensionLoaded(p))
    [speak] = [e for e in fx if isinstance(e, S.Speak)]
    assert speak.msgid == "pension.voice.saving" and dict(speak.params) == {"balance": "十万元零一分", "years": "十五"}


@pytest.mark.parametrize("tries, msgid, n", [(2, "error.pin_wrong.voice", "两"), (1, "error.pin_wrong.last.voice", None)])
def test_pin_tries_left_are_said(tries, msgid, n):
    d = FilingDriver().to_pin().enter_pin()
    fx = d.result(PinResult(PinOutcome.WRONG, tries_left=tries))
    [speak] = [e for e in fx if isinstance(e, S.Speak)]
    assert speak.msgid == msgid and dict(speak.params).get("n") == n


def test_the_card_loss_number_is_said_digit_by_digit():
    d = PlainDriver().to_menu()
    d.send(S.Choose("card_loss"))
    d.send(S.Confirm())
    d.result(S.CardLossFiled("F20250310-0A1B", "accepted", "https://x/v"))
    fx = d.result(PrintResult(PrintOutcome.PRINTED))
    [speak] = [e for e in fx if isinstance(e, S.Speak)]
    assert speak.msgid == "filed.voice" and dict(speak.params)["number"] == "F 二 〇 二 五 〇 三 一 〇，〇 A 一 B"


# --- receipt verdicts: tone and voice differ -----------------------------------------------------------------


@pytest.mark.parametrize("verification, tone, msgid", [
    (Verification(genuine=True, reason=VerifyReason.OK), "ok", "receipt_check.genuine.voice"),
    (Verification(genuine=False, reason=VerifyReason.BAD_SIGNATURE), "forged", "receipt_check.forged.voice"),
    (None, "forged", "receipt_check.forged.voice"),
])
def test_receipt_verdicts_have_their_own_tone_and_voice(verification, tone, msgid):
    d = FilingDriver()
    d.send(CodeScanned("https://x/v1/receipts/R1/verify?sig=x", "scanner"))
    fx = d.result(S.ReceiptChecked(verification))
    assert [e.msgid for e in fx if isinstance(e, S.Speak)] == [msgid]
    assert view.build(d.state, d.clock.t).tone == tone
    if tone == "forged":
        assert tr("zh_CN", msgid) == "这张回执无法确认是真的，请不要相信它，请找工作人员"


# --- 再听一遍 -----------------------------------------------------------------------------------------------------


def test_repeat_says_the_screens_last_prompt_again_and_forgets_it_at_the_end():
    d = FilingDriver().to_menu()
    d.send(S.Choose("pension_query"))
    d.result(S.PensionLoaded(Pension()))
    first = d.state.last_speak
    assert first is not None and first.msgid == "pension.voice.receiving.cert"
    d.send(S.Tick(), advance=5)
    assert d.send(S.Repeat()) == [first]
    d.send(S.Finish())
    assert d.state.last_speak == S.Speak("take_card.title")  # no figure of the last person is kept
    d.send(CardRemoved("r0"))
    assert d.send(S.Repeat()) == [S.Speak("idle.voice")]


def test_repeat_on_a_fresh_terminal_says_the_home_prompt():
    d = FilingDriver()
    assert d.state.last_speak is None
    assert d.send(S.Repeat()) == [S.Speak("idle.voice")]


def test_repeat_is_a_touch_and_the_countdown_is_not_what_it_repeats():
    d = FilingDriver(inactivity=60, warn=15).to_menu()
    fx = d.send(S.Tick(), advance=46)
    assert [e.msgid for e in fx if isinstance(e, S.Speak)] == ["countdown.voice"]
    assert d.send(S.Repeat()) == [S.Speak("menu.title")]
    assert d.state.countdown(d.clock.t) is None  # the touch continued


# --- the countdown and the attract prompt --------------------------------------------------------------------


def test_the_countdown_is_said_once_when_it_appears_and_again_after_a_touch():
    d = FilingDriver(inactivity=60, warn=15).to_menu()
    said = []
    for _ in range(60):
        said += [e for e in d.send(S.Tick(), advance=1) if isinstance(e, S.Speak)]
        if d.state.screen is not S.Screen.MENU:
            break
    counted = [e for e in said if e.msgid == "countdown.voice"]
    assert counted == [S.Speak("countdown.voice", (("n", "十五"),))]
    text = tr("zh_CN", "countdown.voice", n="十五")
    assert text == "还需要继续吗？还有十五秒返回首页，点一下屏幕就能继续"
    d = FilingDriver(inactivity=60, warn=15).to_menu()
    d.send(S.Tick(), advance=46)
    d.send(S.Touch())
    fx = d.send(S.Tick(), advance=46)
    assert [e.msgid for e in fx if isinstance(e, S.Speak)] == ["countdown.voice"]


def test_the_attract_prompt_comes_at_its_interval_only_while_idle_and_nobody_is_there():
    d = FilingDriver(attract=60)
    d.send(S.Tick(), advance=1)  # the first tick starts the interval
    spoken = lambda fx: [e.msgid for e in fx if isinstance(e, S.Speak)]  # noqa: E731
    assert spoken(d.send(S.Tick(), advance=59)) == []
    assert spoken(d.send(S.Tick(), advance=1)) == ["idle.attract"]
    assert spoken(d.send(S.Tick(), advance=30)) == []
    d.send(S.Touch())  # someone is there: a full interval again
    assert spoken(d.send(S.Tick(), advance=45)) == []
    assert spoken(d.send(S.Tick(), advance=15)) == ["idle.attract"]
    d.to_menu()  # never during a session
    for _ in range(5):
        assert "idle.attract" not in spoken(d.send(S.Tick(), advance=20))
    d.send(S.Finish())
    assert d.state.screen is S.Screen.TAKE_CARD
    assert "idle.attract" not in spoken(d.send(S.Tick(), advance=100))  # a card in the slot: someone is there


def test_the_attract_prompt_can_be_off():
    d = FilingDriver(attract=0)
    for _ in range(10):
        assert not [e for e in d.send(S.Tick(), advance=100) if isinstance(e, S.Speak)]


# --- elder mode doubles every timeout ------------------------------------------------------------------------


def test_elder_mode_doubles_every_timeout_and_switching_changes_them_at_once():
    d = FilingDriver(inactivity=60, pin=45, warn=15, take_card_reminder=15, elder_factor=2.0)
    assert d.state.elder_mode
    d.to_pin()
    assert d.state.deadline == d.clock.t + 90
    d.enter_pin().result(PinResult(PinOutcome.OK))
    assert d.state.deadline == d.clock.t + 120
    d.send(S.Tick(), advance=89)
    assert d.state.countdown(d.clock.t) is None  # the warning shows for the last 30 s
    d.send(S.Tick(), advance=2)
    assert d.state.countdown(d.clock.t) == 29
    d.send(S.ToggleElderMode())
    d.send(S.ConfirmShrink(True))  # standard type: standard times, from now
    assert not d.state.elder_mode and d.state.deadline == d.clock.t + 60
    d.send(S.ToggleElderMode())
    assert d.state.elder_mode and d.state.deadline == d.clock.t + 120
    d.send(S.Finish())
    assert d.state.remind_at == d.clock.t + 30


# --- the large-text question --------------------------------------------------------------------------------


def test_turning_large_text_off_asks_first_and_is_spoken():
    d = FilingDriver().to_menu()
    fx = d.send(S.ToggleElderMode())
    assert d.state.confirm_shrink and d.state.elder_mode
    assert [e.msgid for e in fx if isinstance(e, S.Speak)] == ["shrink.voice"]
    v = view.build(d.state, d.clock.t)
    assert v.confirm_shrink == {"title": "把字变小吗？", "body": "字变小以后，看起来会费力一些", "yes_label": "变小",
                                "no_label": "不变，保持大字"}
    assert d.send(S.Repeat()) == [S.Speak("shrink.voice")]
    d.send(S.Choose("pension_query"))  # the question covers the menu: its buttons are not there
    assert d.state.screen is S.Screen.MENU and d.state.confirm_shrink
    d.send(S.ConfirmShrink(False))
    assert d.state.elder_mode and not d.state.confirm_shrink
    assert view.build(d.state, d.clock.t).confirm_shrink is None
    d.send(S.ToggleElderMode())
    d.send(S.ConfirmShrink(True))
    assert not d.state.elder_mode and not d.state.confirm_shrink
    fx = d.send(S.ToggleElderMode())
    assert d.state.elder_mode and [e.msgid for e in fx if isinstance(e, S.Speak)] == ["elder.on.voice"]
    d.send(S.ConfirmShrink(True))  # no question open: nothing happens
    assert d.state.elder_mode


# --- 请工作人员帮助 -------------------------------------------------------------------------------------------------


def _desk_driver() -> FilingDriver:
    d = FilingDriver()
    d.state = replace(d.state, helpdesk=DESK)
    return d


def test_help_opens_the_panel_says_the_numbers_and_tells_the_backend():
    d = _desk_driver().to_pin()
    fx = d.send(S.AskHelp())
    [req] = [e for e in fx if isinstance(e, S.RequestHelp)]
    assert req == S.RequestHelp(d.state.sid, "pin")
    [speak] = [e for e in fx if isinstance(e, S.Speak)]
    said = tr("zh_CN", speak.msgid, **dict(speak.params))
    # a mobile number in its 3-4-4 groups, a landline at its hyphen
    assert "张秀英，电话一 三 八，〇 〇 〇 〇，一 二 三 四" in said and "服务站电话〇 五 三 一，一 二 三 四 五 六 七 八" in said
    v = view.build(d.state, d.clock.t)
    assert v.help == {"title": "请工作人员帮助", "lines": (("张秀英", "138 0000 1234"),
                                                    ("李建国", "139 0000 5678"),
                                                    ("服务站电话", "0531-12345678")),
                      "close_label": "关闭", "sent": "正在通知工作人员…", "sent_tone": "wait"}
    d.result(S.HelpRequested(True))
    assert view.build(d.state, d.clock.t).help["sent"] == "已通知工作人员，请稍等"
    assert view.build(d.state, d.clock.t).help["sent_tone"] == "ok"
    assert d.send(S.Repeat()) == [speak]  # the numbers again, for the one dialling
    d.send(S.KeyDigit("1"))  # the panel covers the keypad
    assert d.state.pin == ""
    d.send(S.Back())  # closes the panel only
    assert not d.state.help_open and d.state.screen is S.Screen.PIN
    fx = d.send(S.AskHelp())  # told already in this session: not again
    assert not [e for e in fx if isinstance(e, S.RequestHelp)] and d.state.help_open


def test_help_offline_still_shows_the_numbers_and_says_to_phone():
    d = _desk_driver()
    d.send(S.AskHelp())  # on the idle screen too
    fx = d.result(S.HelpRequested(False))
    # the notice cuts the numbers being read: they are said again after it
    assert [e.msgid for e in fx if isinstance(e, S.Speak)] == ["help.offline", "help.voice"]
    v = view.build(d.state, d.clock.t)
    assert v.help["sent"] == "网络不通，请直接拨打电话" and len(v.help["lines"]) == 3
    assert v.help["sent_tone"] == "warn"  # never the green of "told"
    d.send(S.Back())
    fx = d.send(S.AskHelp(), advance=30)  # a moment later: not asked again, the panel still says to phone
    assert not [e for e in fx if isinstance(e, S.RequestHelp)]
    assert view.build(d.state, d.clock.t).help["sent"] == "网络不通，请直接拨打电话"
    d.send(S.Back())
    fx = d.send(S.AskHelp(), advance=S.HELP_INTERVAL)  # two minutes on: the network may be back, try again
    assert [e for e in fx if isinstance(e, S.RequestHelp)]


def test_help_without_numbers_says_where_to_go_and_the_panel_closes_at_the_end():
    d = FilingDriver().to_menu()
    fx = d.send(S.AskHelp())
    assert [e.msgid for e in fx if isinstance(e, S.Speak)] == ["help.voice.none"]
    assert view.build(d.state, d.clock.t).help["lines"] == (("", "请到服务站窗口找工作人员"),)
    d.send(CardRemoved("r0"))
    assert not d.state.help_open and d.state.help_sent == ""
    d.result(S.HelpRequested(True))  # a late answer for the ended session: nothing shows
    assert view.build(d.state, d.clock.t).help is None


def test_a_help_request_in_flight_is_the_terminals_the_next_session_waits_for_its_answer():
    d = _desk_driver().to_menu()
    sid = d.state.sid
    d.send(S.AskHelp())
    d.send(CardRemoved("r0"))
    assert d.state.help_inflight and d.state.help_sent == ""  # the request is the terminal's; the panel was the person's
    d.send(CardInserted("r0"))
    d.result(CardReadOk(CARD))
    fx = d.send(S.AskHelp())
    assert not [e for e in fx if isinstance(e, S.RequestHelp)] and d.state.help_sent == "sending"
    fx = d.result(S.HelpRequested(False), sid=sid)  # nothing personal in it: it answers this panel too
    assert d.state.help_sent == "offline" and not d.state.help_inflight
    assert [e.msgid for e in fx if isinstance(e, S.Speak)] == ["help.offline", "help.voice"]


def test_help_is_never_asked_twice_while_a_request_is_on_its_way():
    d = _desk_driver()
    for _ in range(5):  # open and close the panel on the idle screen, again and again
        fx = d.send(S.AskHelp(), advance=1)
        d.send(S.Back())
    assert len([e for e in d.effects if isinstance(e, S.RequestHelp)]) == 1
    fx = d.send(S.AskHelp(), advance=S.HELP_INTERVAL)  # still no answer after two minutes: still waiting for it
    assert not [e for e in fx if isinstance(e, S.RequestHelp)] and d.state.help_sent == "sending"
    d.result(S.HelpRequested(True))
    assert view.build(d.state, d.clock.t).help["sent"] == "已通知工作人员，请稍等"
    d.send(S.Back())
    fx = d.send(S.AskHelp(), advance=1)  # answered, and two minutes have passed since it was sent
    assert [e for e in fx if isinstance(e, S.RequestHelp)]


def test_help_requests_are_at_most_one_per_terminal_every_two_minutes_across_sessions():
    d = _desk_driver().to_menu()
    d.send(S.AskHelp())
    d.result(S.HelpRequested(True))
    d.send(CardRemoved("r0"))  # the session's wipe keeps the terminal's last request
    assert d.state.help_at is not None and d.state.help_recorded
    d.send(CardInserted("r0"), advance=60)
    d.result(CardReadOk(CARD))
    fx = d.send(S.AskHelp())
    assert not [e for e in fx if isinstance(e, S.RequestHelp)]
    assert view.build(d.state, d.clock.t).help["sent"] == "已通知工作人员，请稍等"  # the staff were told a minute ago
    assert [e.msgid for e in fx if isinstance(e, S.Speak)] == ["help.voice"]  # the numbers are still said
    d.send(CardRemoved("r0"))
    fx = d.send(S.AskHelp(), advance=S.HELP_INTERVAL - 60)  # two minutes after the last request: asked again
    assert [e for e in fx if isinstance(e, S.RequestHelp)] == [S.RequestHelp(d.state.sid, "idle")]


def test_a_help_request_never_answered_does_not_block_help_for_ever():
    d = _desk_driver()
    d.send(S.AskHelp())
    d.send(S.Back())
    fx = d.send(S.AskHelp(), advance=S.HELP_STALE)
    assert [e for e in fx if isinstance(e, S.RequestHelp)]


def test_the_large_text_switch_does_nothing_while_help_is_open():
    d = _desk_driver().to_menu()
    d.send(S.AskHelp())
    assert d.send(S.ToggleElderMode()) == []
    d.send(S.Back())
    assert not d.state.confirm_shrink and view.build(d.state, d.clock.t).confirm_shrink is None
    assert d.state.elder_mode


# --- the common view fields on every screen ----------------------------------------------------------------


@pytest.mark.parametrize("screen", list(S.Screen))
@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_every_screen_has_repeat_and_help(screen, locale):
    st = replace(S.initial_state(locale=locale), screen=screen)
    v = view.build(st, 0)
    assert v.repeat_label == tr(locale, "btn.repeat") and v.help_label == tr(locale, "btn.help")
    assert v.help is None and v.confirm_shrink is None
    assert v.tone in {"info", "wait", "warn", "error", "ok", "forged"}
    # and 再听一遍 has something to say on it
    assert isinstance(S.screen_voice(st), S.Speak)



def test_the_certification_row_has_no_ascii_space_to_break_at():
    st = replace(S.initial_state(), screen=S.Screen.PENSION, person=S.Person.from_sscard(CARD), pension=Pension(),
                 pension_loaded=True)
    assert dict(view.build(st, 0).rows)["资格认证"] == "已认证（2027年3月31日前）"


def test_repeat_on_a_face_question_says_the_question_not_the_last_hint():
    d = FilingDriver().start("qualification_certification", strong=False)
    question = d.state.last_speak
    assert question is not None and question.msgid.startswith("form.voice")
    d.result(S.FaceHint("hold_still"))
    assert d.effects_of(S.Speak)[-1].msgid == "face.hint.hold_still"
    assert d.send(S.Repeat()) == [question]


def test_on_the_idle_screen_every_opening_of_help_is_a_new_request():
    d = _desk_driver()
    d.send(S.AskHelp())
    d.result(S.HelpRequested(True))
    d.send(S.Back())
    fx = d.send(S.AskHelp(), advance=3600)  # someone else, later
    assert [e for e in fx if isinstance(e, S.RequestHelp)]


# --- the next person starts with the configured language and type size ----------------------------------------


def test_a_passer_bys_choices_at_the_idle_screen_go_back_after_a_quiet_interval():
    d = FilingDriver()
    d.send(S.SetLocale("en"))
    d.send(S.ToggleElderMode())
    d.send(S.ConfirmShrink(True))
    assert (d.state.locale, d.state.elder_mode, d.state.screen) == ("en", False, S.Screen.IDLE)
    fx = d.send(S.Tick(), advance=d.state.settings.attract - 1)  # not yet a whole quiet interval
    assert (d.state.locale, d.state.elder_mode) == ("en", False) and not fx
    fx = d.send(S.Tick(), advance=2)  # nobody has touched it for a whole attract interval
    assert (d.state.locale, d.state.elder_mode) == ("zh_CN", True)
    assert [e.msgid for e in fx if isinstance(e, S.Speak)] == ["idle.attract"]


def test_a_scan_screen_left_to_time_out_goes_back_to_the_defaults_but_back_keeps_the_choice():
    d = FilingDriver()
    d.state = replace(d.state, features=frozenset({"camera"}))
    d.send(S.ToggleElderMode())
    d.send(S.ConfirmShrink(True))
    d.send(S.StartScan())
    assert d.state.screen is S.Screen.SCAN and not d.state.elder_mode
    d.send(S.Back())  # the same person, back to the idle screen: still their choice
    assert d.state.screen is S.Screen.IDLE and not d.state.elder_mode
    d.send(S.StartScan())
    d.send(S.Tick(), advance=d.state.limit("inactivity") + 1)  # then walked away
    assert d.state.screen is S.Screen.IDLE and d.state.elder_mode is True


def test_the_english_voice_leaves_a_chinese_service_title_out_of_a_genuine_receipt():
    import datetime as dt

    d = FilingDriver()
    d.send(S.SetLocale("en"))
    d.send(CodeScanned("https://x/v1/receipts/R1/verify?sig=x", "scanner"))
    v = Verification(genuine=True, reason=VerifyReason.OK, title="就业登记",
                     received_at=dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC))
    fx = d.result(S.ReceiptChecked(v))
    assert [e.msgid for e in fx if isinstance(e, S.Speak)] == ["receipt_check.genuine.voice"]
