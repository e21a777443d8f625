"""Filings through the session: catalog services, one question a screen, review, submit, receipt, rating, 我的办件.

Whole flows with the fixture catalog (tests/fixtures/catalog.json), a fixed seed and a fixed wall clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from api.enums import Handling, Progress
from api.models import Filing
from api.patterns import IDEMPOTENCY_KEY_PATTERN, LOCAL_NUMBER_PATTERN
from devices.base import CardRemoved, PrintOutcome, PrintResult
from devices.idcard import IdCardPlaced, IdCardRemoved
from kiosk import forms as F
from kiosk import session as S
from kiosk import view
from kiosk.catalog import Level
from kiosk.i18n import tr
from tests.unit.test_session import Driver as _Driver
from tests.unit.test_session_identity import ID

CATALOG = Path(__file__).resolve().parents[1] / "fixtures" / "catalog.json"
TZ = dt.timezone(dt.timedelta(hours=8))
WALL = dt.datetime(2026, 12, 1, 9, 30, tzinfo=TZ)  # a Tuesday
JPEG = b"\xff\xd8\xff\xe0fake-jpeg-bytes\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\nfake-png"


def services() -> tuple[F.ServiceForm, ...]:
    good, bad = F.compile_catalog(json.loads(CATALOG.read_text(encoding="utf-8"))["services"])
    assert {k for k, _ in bad} == {"broken_widget", "broken_schema"}
    return good


class Driver(_Driver):
    def __init__(self, **settings) -> None:
        super().__init__(**settings)
        self.state = replace(self.state, seed=b"fixed-seed")
        self.send(S.CatalogLoaded(services()))
        self.send(S.WallTime(WALL))

    def view(self):
        return view.build(self.state, self.clock.t)

    def signed_in(self, strong: bool = True):
        if strong:
            self.to_menu()
            assert self.state.level is Level.STRONG
        else:
            self.send(IdCardPlaced(ID))
        assert self.state.screen is S.Screen.MENU
        return self

    def start(self, key: str, strong: bool = True):
        self.signed_in(strong)
        self.send(S.Choose(key))
        assert self.state.screen is S.Screen.SERVICE_INFO
        self.send(S.Start())
        return self

    @property
    def field(self) -> str:
        q = S._question(self.state)
        assert q is not None and self.state.screen is S.Screen.FORM
        return q.field

    def type_digits(self, digits: str):
        for d in digits:
            self.send(S.KeyDigit(d))
        self.send(S.Next())

    def spoken(self) -> list[str]:
        return [e.msgid for e in self.effects_of(S.Speak)]


def _employment_to_review(d: Driver) -> Driver:
    d.start("employment_registration")
    assert d.field == "kind"
    d.send(S.Answer("self"))
    assert d.field == "start_date"
    d.send(S.Step("year", -1))
    d.send(S.Step("month", 1))
    d.send(S.Next())
    assert d.field == "village"
    d.send(S.Letter("Z"))
    d.send(S.Letter("Z"))
    assert [b.label for b in d.view().extra["choices"]] == ["张庄村"]
    d.send(S.Answer("v00"))
    assert d.field == "contract"
    d.send(S.Answer(True))
    assert d.field == "phone"
    d.type_digits("13912345678")
    assert d.state.screen is S.Screen.REVIEW
    return d


def test_menu_offers_the_catalog_by_level_and_my_filings():
    d = Driver().signed_in(strong=False)
    keys = [b.event.service for b in d.view().buttons if isinstance(b.event, S.Choose)]
    # the ID card reaches every id_card service; the strong-only loan is not offered, nor the pension query
    assert keys == ["card_loss", "employment_registration", "resident_pension_enrolment",
                    "qualification_certification", "my_filings"]
    d.send(S.Choose("startup_loan"))
    assert d.state.screen is S.Screen.MENU
    d = Driver().signed_in(strong=True)
    keys = [b.event.service for b in d.view().buttons if isinstance(b.event, S.Choose)]
    assert keys[0] == "pension_query" and "startup_loan" in keys and keys[-1] == "my_filings"


def test_service_page_is_read_aloud_and_shows_the_eight_publications():
    d = Driver().signed_in()
    d.send(S.Choose("startup_loan"))
    [speak] = [e for e in d.effects if isinstance(e, S.Speak)][-1:]
    assert speak.msgid == "service_info.voice" and dict(speak.params)["title"] == "创业担保贷款申请"
    v = d.view()
    labels = [label for label, _ in v.rows]
    for want in ("办理依据", "申请材料", "办理流程", "收费标准", "办理时限", "办理方式", "咨询电话", "监督电话"):
        assert want in labels
    assert dict(v.rows)["办理时限"] == "15 个工作日" and "转乡镇" in dict(v.rows)["办理方式"]
    d.send(S.Back())
    assert d.state.screen is S.Screen.MENU and d.state.form is None


def test_every_widget_through_to_an_online_filing_and_the_backends_receipt():
    d = _employment_to_review(Driver())
    answers = dict(d.state.answers)
    assert answers == {
        "name": "王秀兰", "id_number": ID.id_number, "gender": "2", "kind": "self", "start_date": "2026-01-01",
        "village": "v00", "contract": True, "phone": "13912345678",
    }
    rows = dict(d.view().rows)
    assert rows["姓名"] == "王*兰" and rows["身份证号码"] == "3701**********0527" and rows["性别"] == "女"
    assert rows["哪天开始工作？"] == "2026年1月1日" and rows["您住在哪个村？"] == "张庄村"
    d.send(S.Confirm())
    [sub] = d.effects_of(S.SubmitFiling)
    assert d.state.screen is S.Screen.SUBMITTING
    assert sub.service == "employment_registration" and not sub.online_only and sub.created_at == WALL
    assert sub.local_number.startswith("L20261201-") and re.fullmatch(LOCAL_NUMBER_PATTERN, sub.local_number)
    assert re.fullmatch(IDEMPOTENCY_KEY_PATTERN, sub.key)
    assert dict(sub.answers) == answers and ID.id_number not in repr(sub)
    filing = Filing(
        filing_id="F20261201-0001", local_number=sub.local_number, service=sub.service, title="就业登记",
        status=Progress.RECEIVED, handling=Handling.DIRECT, due_date=dt.date(2026, 12, 8), receipt_id="R1",
        verify_url="https://example.test/v", lines=[("事项", "就业登记")], created_at=WALL, received_at=WALL,
        replayed=False,
    )
    d.result(S.FilingSaved(sub.local_number, False, filing))
    [p] = d.effects_of(S.PrintReceipt)
    assert p.lines == (("受理编号", "F20261201-0001"), ("事项", "就业登记")) and p.qr_url == "https://example.test/v"
    d.result(PrintResult(PrintOutcome.PRINTED))
    v = d.view()
    assert d.state.screen is S.Screen.FILED and v.title == "已受理" and v.extra["number"] == "F20261201-0001"
    assert v.screen == "filed" and v.extra["number_label"] == "受理编号" and ("承诺办结", "2026年12月8日") in v.rows
    assert d.spoken()[-1] == "filed.accepted.voice"
    said = [e for e in d.effects_of(S.Speak)][-1]
    assert dict(said.params)["due"] == "承诺在二〇二六年十二月八日前办结。"  # the promised day, in words
    d.send(S.Finish())
    assert d.state.screen is S.Screen.RATING


def test_keys_are_made_once_per_confirmation_and_a_retry_reuses_them():
    d = _employment_to_review(Driver())
    d.send(S.Confirm())
    d.result(S.BackendFailed(S.BackendFailureKind.SERVER_ERROR))  # the outbox could not write, say
    assert d.state.screen is S.Screen.ERROR
    d.send(S.Retry())
    a, b = d.effects_of(S.SubmitFiling)
    assert (a.local_number, a.key) == (b.local_number, b.key)
    # another filing in the same session gets new ones; the same seed gives the same numbers (tests)
    d2 = _employment_to_review(Driver())
    d2.send(S.Confirm())
    [c] = d2.effects_of(S.SubmitFiling)
    assert (c.local_number, c.key) == (a.local_number, a.key)
    d3 = _employment_to_review(Driver())
    d3.state = replace(d3.state, seed=b"other")
    d3.send(S.Confirm())
    assert d3.effects_of(S.SubmitFiling)[0].key != a.key


def test_back_from_a_failed_submission_returns_to_the_answers():
    d = _employment_to_review(Driver())
    d.send(S.Confirm())
    d.result(S.BackendFailed(S.BackendFailureKind.SERVER_ERROR))
    d.send(S.Back())
    assert d.state.screen is S.Screen.REVIEW and dict(d.state.answers)["kind"] == "self" and d.state.pending is None
    d.send(S.Confirm())
    a, b = d.effects_of(S.SubmitFiling)
    assert a.key != b.key  # the first was never saved: this is a new filing


def test_queued_filing_prints_local_lines_and_says_so():
    d = _employment_to_review(Driver())
    d.send(S.Confirm())
    [sub] = d.effects_of(S.SubmitFiling)
    d.result(S.FilingSaved(sub.local_number, True, None))
    [p] = d.effects_of(S.PrintReceipt)
    lines = dict(p.lines)
    assert lines["本地编号"] == sub.local_number and lines["事项"] == "就业登记"
    assert lines["提交时间"] == "2026-12-01 09:30"
    assert lines["承诺办结"] == "2026年12月8日"  # 5 working days after Tuesday 1 December
    assert lines["办理方式"] == "本站直接办理" and lines["状态"] == "已受理，待上传"
    assert lines["姓名"] == "王*兰" and lines["证件号码"] == "3701**********0527"
    assert lines["联系电话"] == "139****5678"
    assert all(ID.id_number not in v and "王秀兰" not in v for _, v in p.lines)
    d.result(PrintResult(PrintOutcome.PAPER_OUT))  # the printer failed: the number is on screen all the same
    v = d.view()
    assert d.state.screen is S.Screen.FILED and v.title == "已受理，待上传"
    assert v.extra == {"number": sub.local_number, "number_label": "本地编号"} and "回执没有打印出来" in v.body


def test_online_only_queued_says_plainly_it_is_not_done_and_what_to_do():
    d = Driver().start("card_loss", strong=False)
    d.send(S.Answer("lost"))
    d.type_digits("13912345678")
    d.send(S.Confirm())
    [sub] = d.effects_of(S.SubmitFiling)
    assert sub.online_only
    d.result(S.FilingSaved(sub.local_number, True, None))
    [p] = d.effects_of(S.PrintReceipt)
    assert dict(p.lines)["状态"] == "未生效，待上传" and dict(p.lines)["承诺办结"] == "当场办结"
    d.result(PrintResult(PrintOutcome.PRINTED))
    v = d.view()
    assert v.title == "还没有办完" and v.tone == "warn"
    assert "0531-12345678" in v.body and "窗口" in v.body and "已受理" not in v.title
    assert d.spoken()[-1] == "filed.not_done.voice"
    assert not any(label == "承诺办结" for label, _ in v.rows)


def test_card_loss_without_a_catalog_keeps_the_confirm_path():
    d = Driver()
    d.send(S.CatalogLoaded(()))
    d.signed_in(strong=False)
    d.send(S.Choose("card_loss"))
    assert d.state.screen is S.Screen.CONFIRM


def test_choice_with_amounts_is_shown_and_spoken_in_words():
    d = Driver().start("resident_pension_enrolment")
    assert d.field == "tier"
    v = d.view()
    labels = [b.label for b in v.extra["choices"]]
    assert "500 元档" in labels  # the tier's name states its amount: not again under it
    d.send(S.Answer("t500"))
    d.send(S.Back())
    assert d.field == "tier"
    speak = d.effects_of(S.Speak)[-1]
    assert speak.msgid == "form.voice.answered" and dict(speak.params)["answer"] == "五百元档"  # once, in words
    assert [b.primary for b in d.view().extra["choices"]] == [False, False, False, True, False, False]


def test_prefilled_answers_are_shown_not_asked_and_birth_date_comes_from_the_id_number():
    d = Driver().start("resident_pension_enrolment")
    asked = [q.field for q in d.state.form.asked]
    assert asked == ["tier", "phone"]
    d.send(S.Answer("t100"))
    d.send(S.Next())  # the phone is optional: skipped
    assert d.state.screen is S.Screen.REVIEW
    rows = dict(d.view().rows)
    assert rows["出生日期"] == "1952年3月14日" and rows["联系电话"] == "没有填"
    items = d.view().extra["items"]
    assert [e for _, _, e in items if e is not None] == [S.Edit("tier"), S.Edit("phone")]


def test_back_walks_the_questions_and_then_the_service_page():
    d = _employment_to_review(Driver())
    d.send(S.Back())
    assert d.field == "phone" and d.state.draft == "13912345678"  # the answer comes back to change
    for want in ("contract", "village", "start_date", "kind"):
        d.send(S.Back())
        assert d.field == want
    d.send(S.Back())
    assert d.state.screen is S.Screen.SERVICE_INFO


def test_edit_from_review_returns_to_review():
    d = _employment_to_review(Driver())
    d.send(S.Edit("kind"))
    assert d.field == "kind" and d.state.editing
    d.send(S.Answer("flexible"))
    assert d.state.screen is S.Screen.REVIEW and dict(d.state.answers)["kind"] == "flexible"
    d.send(S.Edit("phone"))
    d.send(S.Back())  # changed nothing: back to the review
    assert d.state.screen is S.Screen.REVIEW
    d.send(S.Edit("name"))  # prefilled: not editable
    assert d.state.screen is S.Screen.REVIEW


@pytest.mark.parametrize(
    "digits, msgid",
    [("", "form.error.required"), ("12345678901", "form.error.phone"), ("1391234", "form.error.phone")],
)
def test_a_wrong_phone_stays_with_words_and_voice(digits, msgid):
    d = _employment_to_review(Driver())
    d.send(S.Edit("phone"))
    for _ in range(11):
        d.send(S.KeyBackspace())
    d.type_digits(digits)
    assert d.field == "phone" and d.state.form_error == msgid
    assert d.effects_of(S.Speak)[-1].msgid == msgid
    v = d.view()
    assert v.extra["error"] and v.tone == "error"
    d.send(S.KeyBackspace())  # changing it clears the words
    assert d.state.form_error is None


def test_keypad_integer_bounds_and_length():
    d = Driver().start("startup_loan")
    assert d.field == "amount"
    d.type_digits("0")
    assert d.state.form_error == "form.error.minimum"
    assert "最少是 1" in d.view().extra["error"]
    d.send(S.KeyBackspace())
    for k in "999":
        d.send(S.KeyDigit(k))
    assert d.state.draft == "99"  # at most as many digits as the maximum has
    d.send(S.Next())
    assert d.state.form_error == "form.error.maximum" and "最多是 30" in d.view().extra["error"]
    d.send(S.KeyBackspace())
    d.send(S.KeyBackspace())
    d.type_digits("5")
    assert d.field == "licence" and dict(d.state.answers)["amount"] == 5


def test_date_picker_stays_in_bounds_and_needs_no_typing():
    d = Driver().start("employment_registration")
    d.send(S.Answer("self"))
    assert d.state.draft == "2026-12-01"  # starts at today
    for _ in range(3):
        d.send(S.Step("year", -10))
    assert d.state.draft == "2021-12-01"  # x-date from -5y
    d.send(S.Step("year", 10))
    assert d.state.draft == "2027-01-01"  # to +1m
    d.send(S.Step("day", -1))
    assert d.state.draft == "2027-01-01" or d.state.draft <= "2027-01-01"
    parts = d.view().extra["date"]
    assert [p[1] for p in parts] == ["年", "月", "日"]
    d.send(S.Answer("2030-01-01"))  # a date outside the range never passes, even sent directly
    assert d.state.form_error == "form.error.date_range"


def test_an_optional_choice_offers_skip():
    optional = {"type": "string", "title": "可选", "x-widget": "choice",
                "oneOf": [{"const": "a", "title": "甲"}, {"const": "b", "title": "乙"}]}
    raw = json.loads(CATALOG.read_text(encoding="utf-8"))["services"][0]
    raw["form"]["properties"]["extra"] = optional
    raw["form"]["x-order"].append("extra")
    d = Driver()
    d.send(S.CatalogLoaded((F.compile_service(raw),)))
    d.start("card_loss", strong=False)
    d.send(S.Answer("lost"))
    d.type_digits("13912345678")
    assert d.field == "extra" and [b.label for b in d.view().buttons] == ["跳过", "返回"]
    d.send(S.Next())
    assert d.state.screen is S.Screen.REVIEW and "extra" not in dict(d.state.answers)


def test_required_choice_cannot_be_skipped():
    d = Driver().start("employment_registration")
    d.send(S.Next())
    assert d.field == "kind" and d.state.form_error == "form.error.required"
    d.send(S.Answer("nonsense"))
    assert d.state.form_error == "form.error.choice"


def test_pick_letters_only_offer_letters_that_lead_somewhere():
    d = Driver().start("employment_registration")
    d.send(S.Answer("self"))
    d.send(S.Next())
    assert d.field == "village"
    letters = [b.label for b in d.view().extra["letters"]]
    assert "Z" in letters and "A" not in letters
    d.send(S.Letter("A"))
    assert d.state.draft == ""
    d.send(S.Letter("Z"))
    shown = [b.label for b in d.view().extra["choices"]]
    assert "张庄村" in shown and "赵家庄" in shown and "李家村" not in shown
    d.send(S.KeyBackspace())
    assert len(d.view().extra["choices"]) == 16


def test_document_capture_retake_accept_and_signature():
    d = Driver().start("startup_loan")
    d.type_digits("5")
    assert d.field == "licence" and d.view().screen == "capture"
    d.send(S.CaptureNow())
    assert d.effects_of(S.CaptureStill)[-1] == S.CaptureStill(d.state.sid, "licence")
    d.result(S.Captured("licence", JPEG))
    digest = hashlib.sha256(JPEG).hexdigest()
    keep = d.effects_of(S.KeepAttachment)[-1]
    assert keep.digest == digest and keep.data == JPEG and d.state.draft == digest
    assert "fake-jpeg" not in repr(d.state) and [b.label for b in d.view().buttons][:2] == ["使用这张", "重拍"]
    d.send(S.Retake())
    assert d.state.draft is None
    d.result(S.Captured("licence", JPEG + b"2"))
    d.send(S.Next())
    assert d.field == "signature" and d.view().screen == "signature"
    assert dict(d.state.answers)["licence"] == hashlib.sha256(JPEG + b"2").hexdigest()
    d.send(S.Attach(JPEG, "image/jpeg"))  # a signature is a PNG
    assert d.state.form_error == "form.error.attachment"
    d.send(S.Attach(PNG, "image/png"))
    assert d.field == "phone"
    d.type_digits("13912345678")
    rows = dict(d.view().rows)
    assert rows["请把营业执照放在拍照台上"] == "已拍照" and rows["请用手指在框里签名"] == "已签名"
    answers = dict(d.state.answers)
    assert F.is_digest(answers["licence"]) and F.is_digest(answers["signature"])  # digests, never bytes


def test_face_question_watches_speaks_hints_and_stops_watching():
    d = Driver().start("qualification_certification", strong=False)
    assert d.field == "face" and d.view().extra["mode"] == "face"
    assert d.effects_of(S.FaceWatch)[-1] == S.FaceWatch(d.state.sid, "face", True)
    d.result(S.FaceHint("closer"))
    d.result(S.FaceHint("closer"))  # said once, not at every frame
    assert d.spoken().count("face.hint.closer") == 1
    assert d.view().extra["hint"] == "closer" and d.view().extra["hint_text"] == "请靠近一点"
    d.result(S.Captured("face", JPEG))
    assert d.effects_of(S.FaceWatch)[-1] == S.FaceWatch(d.state.sid, "face", False)
    d.send(S.Retake())
    assert d.effects_of(S.FaceWatch)[-1].on
    d.send(S.Back())
    assert d.state.screen is S.Screen.SERVICE_INFO and not d.effects_of(S.FaceWatch)[-1].on


def test_captures_from_another_question_or_session_are_ignored():
    d = Driver().start("qualification_certification", strong=False)
    d.result(S.Captured("other", JPEG))
    d.send(S.Result(d.state.sid - 1, S.Captured("face", JPEG)))
    assert d.state.draft is None and not d.effects_of(S.KeepAttachment)


def _labels(v) -> list[str]:
    return [b.label for b in v.buttons]


def _events(v) -> list[type]:
    return [type(b.event) for b in v.buttons]


def test_capture_view_phases_document():
    d = Driver().start("startup_loan")
    d.type_digits("5")
    v = d.view()
    assert v.screen == "capture" and v.extra["mode"] == "document" and v.extra["phase"] == "live"
    assert v.extra["digest"] is None and v.extra["hint"] is None and v.title == "请把营业执照放在拍照台上"
    assert _labels(v) == ["拍照", "返回"] and _events(v) == [S.CaptureNow, S.Back] and v.buttons[0].primary
    assert v.extra["labels"] == {"shoot": "拍照", "retake": "重拍", "use": "使用这张"}
    d.result(S.Captured("licence", JPEG))
    v = d.view()
    assert v.extra["phase"] == "review" and v.extra["digest"] == hashlib.sha256(JPEG).hexdigest()
    assert _labels(v) == ["使用这张", "重拍", "返回"] and _events(v) == [S.Next, S.Retake, S.Back]
    assert v.title == "看看拍得清楚吗？"
    d.send(S.Retake())
    d.result(S.CaptureFailed("licence", "camera"))
    v = d.view()
    assert v.extra["phase"] == "failed" and v.tone == "warn" and v.title == "摄像头没有拍到照片"
    assert _labels(v) == ["重拍", "返回"] and _events(v) == [S.Retake, S.Back]
    for loc in ("zh_CN", "en"):  # every phase has words in both languages
        st = replace(d.state, locale=loc)
        assert view.build(st, d.clock.t).body and "capture." not in view.build(st, d.clock.t).title


def test_capture_failed_document_says_so_and_retake_returns_to_live():
    d = Driver().start("startup_loan")
    d.type_digits("5")
    d.send(S.CaptureNow())
    d.result(S.CaptureFailed("licence", "camera"))
    s = d.state
    assert s.capture_failed and s.screen is S.Screen.FORM and S.capture_phase(s) == "failed"
    assert d.spoken()[-1] == "capture.failed.title"
    n = len(d.effects)
    d.result(S.CaptureFailed("licence", "camera"))  # the preview's report after the still's: said once
    d.send(S.CaptureNow())  # no 拍照 on a failed camera: 重拍 first
    assert d.effects[n:] == []
    d.send(S.Retake())
    assert not d.state.capture_failed and S.capture_phase(d.state) == "live"
    d.send(S.CaptureNow())
    assert d.effects_of(S.CaptureStill)[-1] == S.CaptureStill(d.state.sid, "licence")
    d.result(S.Captured("licence", JPEG))
    assert S.capture_phase(d.state) == "review"
    d.result(S.CaptureFailed("licence", "camera"))  # the picture is taken: a camera gone now changes nothing
    assert S.capture_phase(d.state) == "review" and not d.state.capture_failed
    d.send(S.Next())
    assert d.field == "signature"


def test_capture_failed_face_stops_the_watch_until_retake():
    d = Driver().start("qualification_certification", strong=False)
    sid = d.state.sid
    assert d.effects_of(S.FaceWatch)[-1] == S.FaceWatch(sid, "face", True)
    d.result(S.FaceHint("closer"))
    d.result(S.CaptureFailed("face", "camera"))
    s = d.state
    assert s.capture_failed and s.face_on is None and s.hint is None
    assert d.effects_of(S.FaceWatch)[-1] == S.FaceWatch(sid, "face", False)
    assert d.spoken()[-1] == "capture.failed.title"
    v = d.view()
    assert v.extra["phase"] == "failed" and v.extra["hint"] is None and _labels(v) == ["重拍", "返回"]
    n = len(d.effects)
    d.result(S.FaceHint("centre"))  # a late hint from the stopped guide is not said
    assert d.effects[n:] == [] and d.state.hint is None
    d.send(S.Retake())
    assert d.effects_of(S.FaceWatch)[-1] == S.FaceWatch(sid, "face", True) and d.state.face_on == "face"
    assert d.view().extra["phase"] == "live" and _labels(d.view()) == ["返回"]


def test_capture_failed_for_another_question_or_session_is_ignored():
    d = Driver().start("qualification_certification", strong=False)
    d.result(S.CaptureFailed("licence", "camera"))
    d.send(S.Result(d.state.sid - 1, S.CaptureFailed("face", "camera")))
    assert not d.state.capture_failed and d.state.face_on == "face"


def test_leaving_a_failed_question_forgets_the_failure():
    d = Driver().start("qualification_certification", strong=False)
    d.result(S.CaptureFailed("face", "camera"))
    d.send(S.Back())
    assert d.state.screen is S.Screen.SERVICE_INFO and not d.state.capture_failed
    d.send(S.Start())
    assert d.field == "face" and S.capture_phase(d.state) == "live" and d.state.face_on == "face"
    d.result(S.CaptureFailed("face", "camera"))
    d.send(S.Finish())
    assert not d.state.capture_failed and d.state.face_on is None


def test_photo_bytes_never_show_in_a_repr():
    for v in (S.Captured("f", JPEG), S.Attach(JPEG, "image/jpeg"), S.KeepAttachment(1, "d", JPEG)):
        assert "fake-jpeg" not in repr(v) and "\\xff" not in repr(v)
    assert repr(S.CaptureFailed("f", "camera")) == "CaptureFailed(field='f', reason='camera')"


def test_signature_view_gives_the_screen_its_words():
    d = Driver().start("startup_loan")
    d.type_digits("5")
    d.result(S.Captured("licence", JPEG))
    d.send(S.Next())
    v = d.view()
    assert v.screen == "signature" and _labels(v) == ["返回"]
    assert v.extra["labels"]["clear"] == "重写" and v.extra["labels"]["done"] == "完成"
    assert v.extra["labels"]["placeholder"] and v.extra["labels"]["empty"]


def test_timeout_mid_form_discards_everything():
    d = Driver().start("qualification_certification", strong=False)
    d.result(S.Captured("face", JPEG))
    d.send(S.Tick(), advance=121)  # elder mode (the default): 2 x 60 s
    s = d.state
    assert s.screen is S.Screen.TAKE_CARD and s.form is None and s.answers == () and s.draft is None
    assert s.person is None and d.effects_of(S.SessionEnded)[-1].reason == "timeout"


def test_card_pulled_mid_form_discards_everything_and_stops_the_face_guide():
    d = Driver().start("qualification_certification")
    assert d.state.face_on == "face"
    d.send(CardRemoved("r0"))
    s = d.state
    assert s.screen is S.Screen.IDLE and s.form is None and s.answers == () and s.person is None
    assert d.effects_of(S.SessionEnded)[-1].reason == "card_removed"
    assert d.effects_of(S.FaceWatch)[-1] == S.FaceWatch(s.sid, "face", False) and s.face_on is None


def test_id_card_lifted_mid_form_discards_it():
    d = Driver().start("employment_registration", strong=False)
    d.send(S.Answer("self"))
    d.send(IdCardRemoved())
    assert d.state.screen is S.Screen.IDLE and d.state.answers == () and d.state.form is None
    d.send(S.Confirm())
    assert not d.effects_of(S.SubmitFiling)


def test_finish_mid_form_discards_it():
    d = Driver().start("employment_registration")
    d.send(S.Answer("self"))
    d.send(S.Finish())
    assert d.state.form is None and d.state.answers == () and d.effects_of(S.SessionEnded)


def test_backend_refusing_a_field_sends_the_resident_back_to_it():
    d = _employment_to_review(Driver())
    d.send(S.Confirm())
    d.result(S.FilingRefused(("phone",)))
    assert d.field == "phone" and d.state.form_error == "form.error.refused" and d.state.editing


@pytest.mark.parametrize("sat", ["satisfied", "basically_satisfied"])
def test_rating_one_tap(sat):
    d = _employment_to_review(Driver())
    d.send(S.Confirm())
    d.result(S.FilingSaved(d.effects_of(S.SubmitFiling)[0].local_number, True, None))
    d.result(PrintResult(PrintOutcome.PRINTED))
    d.send(S.Finish())
    assert d.state.screen is S.Screen.RATING and [b.label for b in d.view().extra["choices"]] == [
        "满意", "基本满意", "不满意"]
    d.send(S.Rate(sat))
    [r] = d.effects_of(S.SubmitRating)
    assert r.satisfaction == sat and r.reasons == () and r.service == "employment_registration"
    assert r.filing_ref and r.filing_ref.startswith("L2026") and re.fullmatch(IDEMPOTENCY_KEY_PATTERN, r.key)
    assert d.state.screen is S.Screen.TAKE_CARD and d.state.person is None  # the card is still in the slot


def test_rating_dissatisfied_asks_a_reason():
    d = _employment_to_review(Driver())
    d.send(S.Confirm())
    d.result(S.FilingSaved(d.effects_of(S.SubmitFiling)[0].local_number, True, None))
    d.result(PrintResult(PrintOutcome.PRINTED))
    d.send(S.Finish())
    d.send(S.Rate("dissatisfied"))
    assert not d.effects_of(S.SubmitRating)
    v = d.view()
    assert v.title == "哪里不满意？" and "办得太慢" in [b.label for b in v.extra["choices"]]
    d.send(S.RateReasons(("too_slow",)))
    [r] = d.effects_of(S.SubmitRating)
    assert r.satisfaction == "dissatisfied" and r.reasons == ("too_slow",)


def test_my_filings_lists_backend_and_outbox_rows():
    d = Driver().signed_in()
    d.send(S.Choose("my_filings"))
    [f] = d.effects_of(S.FetchMyFilings)
    assert d.state.screen is S.Screen.LOADING and f.person.id_number == ID.id_number
    rows = (
        S.FilingRow("L20261201-ABCDEF", None, "employment_registration", "就业登记", "received", queued=True),
        S.FilingRow(None, "F1", "startup_loan", "创业担保贷款申请", "returned", reason="材料不全"),
        S.FilingRow(None, "F2", "employment_registration", "就业登记", "in_progress", due_date=dt.date(2026, 12, 8)),
    )
    d.result(S.MyFilingsLoaded(rows))
    v = d.view()
    assert d.state.screen is S.Screen.MY_FILINGS and v.screen == "my_filings"
    assert [value for _, value in v.rows] == ["待上传", "已退回：材料不全", "办理中，2026年12月8日前办结"]
    speak = d.effects_of(S.Speak)[-1]
    assert speak.msgid == "my_filings.voice"
    # what the list shows, said too: someone who cannot read it still learns where each filing stands
    assert tr("zh_CN", speak.msgid, **dict(speak.params)) == (
        "您有三件办件。就业登记，待上传；创业担保贷款申请，已退回：材料不全；"
        "就业登记，办理中，二〇二六年十二月八日前办结。")
    d.send(S.Back())
    assert d.state.screen is S.Screen.MENU and d.state.my_filings == ()
    d.send(S.Choose("my_filings"))
    more = S.FilingRow(None, "F3", "card_loss", "社保卡临时挂失", "done")
    d.result(S.MyFilingsLoaded((*rows, more)))  # a fourth: the newest three are read, the rest is on the screen
    assert tr("zh_CN", "my_filings.voice", **dict(d.effects_of(S.Speak)[-1].params)).endswith("。还有一件，写在屏幕上")


def test_my_filings_offline_and_empty():
    d = Driver().signed_in()
    d.send(S.Choose("my_filings"))
    d.result(S.BackendFailed(S.BackendFailureKind.NOT_FOUND))
    assert d.state.screen is S.Screen.MY_FILINGS and d.view().body == "您还没有办件"
    d.send(S.Back())
    d.send(S.Choose("my_filings"))
    d.result(S.MyFilingsLoaded((), offline=True))
    assert "网络不通" in d.view().body


def test_every_spoken_prompt_of_the_filings_exists():
    from kiosk.i18n import catalog as cat

    d = _employment_to_review(Driver())
    d.send(S.Confirm())
    d.result(S.FilingSaved(d.effects_of(S.SubmitFiling)[0].local_number, True, None))
    d.result(PrintResult(PrintOutcome.PRINTED))
    ids = {e.msgid for e in d.effects_of(S.Speak)} | {f"face.hint.{h}" for h in (
        "look_at_camera", "closer", "farther", "centre", "hold_still", "one_face_only")}
    for loc in ("zh_CN", "en"):
        assert not [i for i in ids if i not in cat(loc)], loc
    from kiosk.i18n import tr

    for e in d.effects_of(S.Speak):  # what the runtime will say: every placeholder filled
        for loc in ("zh_CN", "en"):
            said = tr(loc, e.msgid, **dict(e.params))
            assert "{" not in said and said.strip(), (e.msgid, loc)


# ------------------------------------------------------------------ random walks through every form

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_FIELDS = sorted({q.field for f in services() for q in f.questions})
_EVENTS = st.one_of(
    st.sampled_from([
        S.Start(), S.Next(), S.Back(), S.Confirm(), S.CaptureNow(), S.Retake(), S.KeyBackspace(), S.Finish(),
        S.Touch(), S.Tick(), S.Rate("satisfied"), S.Rate("dissatisfied"), S.RateReasons(("too_slow",)),
        S.Letter(""), S.Choose("my_filings"),
    ]),
    st.builds(S.Choose, st.sampled_from([f.key for f in services()])),
    st.builds(S.Answer, st.sampled_from(["self", "lost", "t500", "v00", "v03", True, False, "13912345678", "x",
                                         None, "2026-01-01", 5, 0])),
    st.builds(S.Edit, st.sampled_from(_FIELDS)),
    st.builds(S.Step, st.sampled_from(["year", "month", "day"]), st.sampled_from([-10, -1, 1, 10])),
    st.builds(S.Letter, st.sampled_from(list("ZCLWX"))),
    st.builds(S.KeyDigit, st.sampled_from(list("0123456789"))),
    st.builds(S.Attach, st.sampled_from([JPEG, PNG, b""]), st.sampled_from(["image/jpeg", "image/png"])),
    st.builds(lambda f, b: ("result", S.Captured(f, b)), st.sampled_from(["licence", "face", "other"]),
              st.sampled_from([JPEG, PNG])),
    st.builds(lambda h: ("result", S.FaceHint(h)), st.sampled_from(["closer", "centre"])),
    st.builds(lambda f: ("result", S.CaptureFailed(f, "camera")), st.sampled_from(["licence", "face", "other"])),
    st.just(("result", "saved")),
    st.just(("result", PrintResult(PrintOutcome.PRINTED))),
    st.just(("wait", 70.0)),
    st.just(("card_out", None)),
    st.just(("good", None)), st.just(("good", None)), st.just(("good", None)),  # walks that get somewhere
)


def _answer_well(d: Driver) -> None:
    """A valid answer to whatever question is on screen; on the other screens, the step onwards."""
    sc = d.state.screen
    if sc is S.Screen.REVIEW:
        d.send(S.Confirm())
    elif sc is S.Screen.SUBMITTING and isinstance(d.state.pending, S.SubmitFiling):
        d.result(S.FilingSaved(d.state.pending.local_number, True, None))
    elif sc is S.Screen.PRINTING:
        d.result(PrintResult(PrintOutcome.PRINTED))
    elif sc in (S.Screen.FILED, S.Screen.SERVICE_INFO):
        d.send(S.Finish() if sc is S.Screen.FILED else S.Start())
    q = S._question(d.state) if sc is S.Screen.FORM else None
    if q is None:
        return
    if q.options:
        d.send(S.Answer(q.options[0].value))
    elif q.widget == "yesno":
        d.send(S.Answer(True))
    elif q.widget == "keypad":
        while d.state.draft:
            d.send(S.KeyBackspace())
        d.type_digits("13912345678" if F.is_phone(q) else "5")
    elif q.widget == "signature":
        d.send(S.Attach(PNG, "image/png"))
    elif q.widget in ("document", "face"):
        d.result(S.Captured(q.field, JPEG))
        d.send(S.Next())
    else:
        d.send(S.Next())


def _check_invariants(d: Driver, before_effects: int) -> None:
    s = d.state
    assert not isinstance(s.draft, bytes) and all(not isinstance(v, bytes) for _, v in s.answers)
    if s.screen in (S.Screen.SERVICE_INFO, S.Screen.FORM, S.Screen.REVIEW):
        assert s.form is not None and s.person is not None
    if s.screen in (S.Screen.IDLE, S.Screen.TAKE_CARD):
        assert s.form is None and s.answers == () and s.person is None and s.draft is None
    if s.form is not None:
        for name, value in s.answers:
            q = s.form.question(name)
            assert q is not None
            if q.asked:
                assert F.validate_answer(q, value, S.today(s, d.clock.t)) is None, (name, value)
    q = S._question(s) if s.screen is S.Screen.FORM else None
    want = q.field if q is not None and q.widget == "face" and s.draft is None and not s.capture_failed else None
    assert s.face_on == want
    if s.capture_failed:  # only a camera question on screen with no picture can be in the failed phase
        assert q is not None and q.widget in ("document", "face") and s.draft is None
    for e in d.effects[before_effects:]:
        if isinstance(e, S.SubmitFiling):
            assert s.form is not None and F.validate_all(s.form, dict(e.answers)) == {}
        if isinstance(e, S.KeepAttachment):
            assert e.digest == hashlib.sha256(e.data).hexdigest()
    view.build(s, d.clock.t)  # every state the walk reaches has a view


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from([f.key for f in services()]), strong=st.booleans(), events=st.lists(_EVENTS, max_size=40))
def test_random_walks_keep_the_form_rules(key, strong, events):
    d = Driver().start(key, strong=strong or key == "startup_loan")
    strong = strong or key == "startup_loan"
    for e in events:
        n = len(d.effects)
        if isinstance(e, tuple):
            kind, value = e
            if kind == "wait":
                d.send(S.Tick(), advance=value)
            elif kind == "good":
                _answer_well(d)
            elif kind == "card_out":
                d.send(CardRemoved("r0") if strong else IdCardRemoved())
            elif value == "saved":
                if isinstance(d.state.pending, S.SubmitFiling):
                    d.result(S.FilingSaved(d.state.pending.local_number, True, None))
            else:
                d.result(value)
        else:
            d.send(e)
        _check_invariants(d, n)
