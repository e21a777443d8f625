"""Scripted journeys for the demo and the UI tests: what a resident does, step by step.

Each is a generator over a Director (sim/director.py); `d.stack` is the demo stack whose twins
play the devices (insert a persona's card, run the printer out of paper, take the backend offline).
"""

from __future__ import annotations

from kiosk.i18n import tr


def _t(msgid: str, **kw) -> str:
    return tr("zh_CN", msgid, **kw)


def _pin(d, digits: str):
    for ch in digits:
        yield d.tap(ch)


def _receipts(d) -> int:
    return len(d.stack.printer.receipts)


def pension_journey(d):
    """The main journey: card, PIN, menu, pension, receipt, take the card, home."""
    yield d.until_screen("idle")
    # the idle screen greets at the first clock tick after start: the picture is of what a person hears too
    yield d.until(lambda: any(x["screen"] == "idle" for x in d.speech), "the idle greeting", timeout=5)
    yield d.shot("01-idle")
    d.stack.insert_card("elder", delay=0.12)  # a real chip takes its time; lets the reading screen show
    yield d.until_screen("message", _t("reading.title"))
    yield d.shot("02-reading")
    yield d.until_screen("pin", timeout=15)
    yield d.shot("03-pin")
    yield from _pin(d, "12345")
    yield d.shot("04-pin-five-digits")
    yield d.tap("6")
    yield d.until_screen("menu")
    yield d.shot("05-menu")
    yield d.tap(_t("service.pension_query"))
    yield d.until_screen("pension")
    yield d.shot("06-pension")
    before = _receipts(d)
    yield d.tap(_t("pension.print"))
    yield d.until_screen("message", _t("take_card.title"), timeout=20)
    yield d.until(lambda: _receipts(d) > before, "receipt rendered by the printer twin")
    yield d.shot("07-take-card")
    d.stack.remove_card()
    yield d.until_screen("idle")
    yield d.shot("08-idle-again")


def faults_journey(d):
    """Every fault screen, and the way back from each."""
    st = d.stack
    # wrong PIN: the card says how many tries are left
    st.insert_card("worker")
    yield d.until_screen("pin", timeout=15)
    yield from _pin(d, "000000")
    yield d.until_screen("error", _t("error.pin_wrong.title"))
    yield d.shot("10-pin-wrong")
    yield d.tap(_t("btn.pin_again"))
    yield d.until_screen("pin")
    yield from _pin(d, "246810")
    yield d.until_screen("menu")
    # backend offline, then back online and retry
    st.backend_mode("offline")
    yield d.tap(_t("service.pension_query"))
    yield d.until_screen("error", _t("error.backend_offline.title"), timeout=30)
    yield d.shot("11-backend-offline")
    st.backend_mode("error")
    yield d.tap(_t("btn.retry"))
    yield d.until_screen("error", _t("error.backend_error.title"), timeout=30)
    yield d.shot("12-backend-error")
    st.backend_mode("online")
    yield d.tap(_t("btn.retry"))
    yield d.until_screen("pension", timeout=30)
    # printer out of paper: the QR code on screen instead
    st.set_paper("out")
    yield d.tap(_t("pension.print"))
    yield d.until_screen("show_qr", timeout=20)
    yield d.shot("13-printer-out-show-qr")
    st.set_paper("full")
    yield d.tap(_t("btn.finish"))
    yield d.until_screen("message", _t("take_card.title"))
    st.remove_card()
    yield d.until_screen("idle")
    # card faults, one full screen each
    for key, title, shot in (
        ("blocked", "error.pin_blocked.title", "14-pin-blocked"),
        ("gen3", "error.needs_sam.title", "15-needs-security-module"),
        ("not_sscard", "error.not_sscard.title", "16-not-sscard"),
    ):
        st.insert_card(key)
        if key == "blocked":
            yield d.until_screen("pin", timeout=15)
            yield from _pin(d, "654321")
        yield d.until_screen("error", _t(title), timeout=15)
        yield d.shot(shot)
        st.remove_card()
        yield d.until_screen("idle")
    # a young person with no pension record: an answer in plain words, not a fault
    st.insert_card("young")
    yield d.until_screen("pin", timeout=15)
    yield from _pin(d, "135790")
    yield d.until_screen("menu")
    yield d.tap(_t("service.pension_query"))
    yield d.until_screen("pension", _t("pension.none"))
    yield d.shot("17-no-pension-record")
    # inactivity: the countdown shows, then the session ends and asks for the card back
    yield d.until(lambda: bool(d.app.root.ids.countdown.text), "countdown visible", timeout=60)
    yield d.frames(3)
    yield d.shot("18-countdown")
    yield d.until_screen("message", _t("take_card.title"), timeout=30)
    st.remove_card()
    yield d.until_screen("idle")
    # the English locale and standard (non-elder) type
    yield d.tap(_t("app.other_locale"))
    yield d.until(lambda: d.app.view.locale == "en", "English")
    yield d.shot("19-idle-english")
    if not d.app.view.elder_mode:  # the run in standard type: large type first (it is never asked), then back
        yield d.tap(tr("en", "app.elder_off"))
        yield d.until(lambda: d.app.view.elder_mode, "large type, without a question")
        yield d.shot("19a-idle-english-large-type")
    yield d.tap(tr("en", "app.elder_on"))
    yield d.until(lambda: getattr(d.app.view, "confirm_shrink", None) is not None, "asked before the type shrinks")
    yield d.shot("19b-confirm-smaller-type")
    yield d.tap(tr("en", "shrink.yes"))
    yield d.until(lambda: not d.app.view.elder_mode, "standard type")
    yield d.shot("20-idle-english-standard-type")
    yield d.tap(tr("en", "app.elder_off"))
    yield d.tap(tr("en", "app.other_locale"))
    yield d.until(lambda: d.app.view.locale == "zh_CN", "Chinese again")


def _last_receipt_url(d) -> str:
    import zxingcpp
    from PIL import Image

    return zxingcpp.read_barcodes(Image.open(d.stack.printer.receipts[-1]))[0].text


def _finish_and_lift_idcard(d):
    yield d.tap(_t("btn.finish"))
    yield d.until_screen("message", _t("take_idcard.title"))
    d.stack.remove_idcard()
    yield d.until_screen("idle", timeout=10)


def identity_journey(d):
    """Without the social-security card: the ID card alone, the electronic card, an old receipt."""
    st = d.stack
    yield d.until_screen("idle")
    # the resident ID card alone may report a lost card, but not see the pension
    st.place_idcard("elder")
    yield d.until_screen("menu", timeout=15)
    yield d.until(lambda: len(_state(d).services) > 0, "catalog loaded", timeout=20)
    yield d.shot("30-idcard-menu")
    from kiosk import session as S

    yield d.tap(_button_for(d, S.Choose("card_loss")))
    yield d.until_screen("service_info")
    yield d.shot("31-card-loss-service-page")
    yield d.tap(_t("service_info.start"))
    yield d.until_screen("review")  # nothing to ask: the ID card says who
    before = _receipts(d)
    yield d.tap(_t("review.confirm"))
    yield d.until_screen("filed", timeout=20)
    yield d.until(lambda: _receipts(d) > before, "card-loss receipt printed")
    yield d.shot("32-card-loss-filed")
    yield d.tap(_t("btn.done"))
    yield d.until_screen("rating")
    yield d.tap(_t("rating.satisfied"))
    yield d.until_screen("message", _t("take_idcard.title"))
    yield d.shot("33-take-idcard")
    st.remove_idcard()
    yield d.until_screen("idle", timeout=10)
    # an expired ID card is told apart from an unreadable one
    st.place_idcard("expired")
    yield d.until_screen("error", _t("error.idcard_expired.title"), timeout=15)
    yield d.shot("34-idcard-expired")
    yield from _finish_and_lift_idcard(d)
    # a foreign permanent resident card signs in like an ID card
    st.place_idcard("foreign")
    yield d.until_screen("menu", timeout=15)
    yield d.shot("35-foreign-card-menu")
    yield from _finish_and_lift_idcard(d)
    # the electronic social-security card, shown to the camera
    yield d.tap(_t("idle.scan"))
    yield d.until_screen("scan")
    yield d.until(lambda: d.app.runtime.latest_frame() is not None, "camera preview")
    yield d.frames(4)
    yield d.shot("36-scan-camera")
    st.show_camera(st.ecard_code("elder"))
    yield d.until_screen("menu", timeout=15)
    st.show_camera(None)
    yield d.shot("37-ecard-menu")
    yield d.tap(_t("service.pension_query"))
    yield d.until_screen("pension")
    yield d.shot("38-ecard-pension")
    yield d.tap(_t("btn.finish"))
    yield d.until_screen("idle")
    # codes the backend turns down, from the hand-held scanner
    st.scan("ESSC1.bm90LWEtcmVhbC1jb2Rl.AAAA")
    yield d.until_screen("error", _t("error.ecard_unknown.title"), timeout=15)
    yield d.shot("39-ecard-unknown")
    yield d.tap(_t("btn.finish"))
    yield d.until_screen("idle")
    st.scan(st.ecard_code("worker", expired=True))  # a screenshot of an old code, say
    yield d.until_screen("error", _t("error.ecard_expired.title"), timeout=15)
    yield d.shot("39b-ecard-expired")
    yield d.tap(_t("btn.finish"))
    yield d.until_screen("idle")
    code = st.ecard_code("worker")
    st.revoke_ecard(code)
    st.scan(code)
    yield d.until_screen("error", _t("error.ecard_revoked.title"), timeout=15)
    yield d.shot("40-ecard-revoked")
    yield d.tap(_t("btn.finish"))
    yield d.until_screen("idle")
    # an old receipt scanned at the idle screen: genuine, then a forged one
    url = _last_receipt_url(d)
    st.scan(url)
    yield d.until_screen("notice", _t("receipt_check.genuine"), timeout=15)
    yield d.shot("41-receipt-genuine")
    yield d.tap(_t("btn.done"))
    yield d.until_screen("idle")
    st.scan(url.replace("sig=", "sig=0"))
    yield d.until_screen("notice", _t("receipt_check.not_genuine"), timeout=15)
    yield d.shot("42-receipt-forged")
    yield d.tap(_t("btn.done"))
    yield d.until_screen("idle")


# --- filings ------------------------------------------------------------------------------------------------

FILING_ORDER = (
    "employment_registration", "unemployment_registration", "pension_enrolment", "benefit_certification",
    "business_loan", "public_welfare_job", "card_loss",
)
_PHONE = "13800001234"  # fictional


def _button_for(d, event) -> str:
    """The label of the on-screen button that sends `event` (catalog titles come from the backend)."""
    from kiosk.view import Button

    v = d.app.view
    pool = list(v.buttons)
    for x in v.extra.values():
        pool += [x] if isinstance(x, Button) else [b for b in x if isinstance(b, Button)] if isinstance(x, tuple) else []
    for b in pool:
        if b.event == event:
            return b.label
    raise AssertionError(f"no button for {event!r} on {d.app.view.screen}")


def _state(d):
    return d.app.runtime.state


def _sign_in(d, key: str = "worker", pin: str = "246810"):
    d.stack.insert_card(key)
    yield d.until_screen("pin", timeout=15)
    yield from _pin(d, pin)
    yield d.until_screen("menu", timeout=15)
    yield d.until(lambda: len(_state(d).services) > 0, "catalog loaded", timeout=20)


def _answer(d, name: str):
    """Answer the question on screen the way a resident would: the first choice, 是, a phone number, a photo, a
    signature; dates keep the picker's starting day."""
    from kiosk import session as S

    st = _state(d)
    q = st.form.asked[st.q_index]
    w = q.widget
    if w in ("choice", "pick"):
        yield d.tap(_button_for(d, S.Answer(q.options[0].value)))
    elif w == "yesno":
        yield d.tap(_t("form.yes"))
    elif w == "date":
        yield d.tap(_t("btn.next"))
    elif w == "keypad":
        if "1[3-9]" in (q.pattern or ""):
            digits = _PHONE
        else:
            digits = str(int(q.minimum)) if q.minimum is not None else "1"
        for ch in digits:
            yield d.tap(ch)
        yield d.tap(_t("btn.next"))
    elif w in ("document", "face"):
        if w == "document":
            d.stack.show_document()
            yield d.until_screen("capture")
            yield d.shot(f"{name}-document-live")
            yield d.tap(_t("capture.btn.shoot"))
        else:
            d.stack.show_face()
            yield d.until_screen("capture")
            yield d.until(lambda: _state(d).hint is not None or _state(d).draft is not None, "a face hint", timeout=20)
            yield d.shot(f"{name}-face-guide")
        yield d.until(lambda: _state(d).draft is not None, "the photo taken", timeout=30)
        yield d.shot(f"{name}-{w}-review")
        yield d.tap(_button_for(d, S.Next()))
    elif w == "signature":
        yield d.until_screen("signature")
        yield d.draw("SignaturePad", [[(0.15, 0.4), (0.3, 0.7), (0.45, 0.35), (0.6, 0.65)],
                                      [(0.65, 0.5), (0.85, 0.5)]])
        yield d.shot(f"{name}-signature")
        yield d.tap(_t("signature.btn.done"))
    else:
        raise AssertionError(f"no way to answer widget {w}")
    yield d.until(lambda: _state(d) is not st, "the answer taken", timeout=10)


def _file_one(d, key: str, n: int, *, rate: str = "satisfied"):
    """One service from the menu to the rating; the card is taken back at the end."""
    from kiosk import session as S

    name = f"{30 + n:02d}-{key}"
    yield d.tap(_button_for(d, S.Choose(key)))
    yield d.until_screen("service_info")
    yield d.shot(f"{name}-a-service-page")
    yield d.tap(_t("service_info.start"))
    asked = 0
    while _state(d).screen is S.Screen.FORM and asked < 40:
        if asked < 2:
            yield d.frames(2)
            yield d.shot(f"{name}-q{asked + 1}")
        before = _state(d).q_index
        yield from _answer(d, name)
        yield d.until(lambda b=before: _state(d).screen is not S.Screen.FORM or _state(d).q_index != b,
                      "the next question", timeout=15)
        asked += 1
    yield d.until_screen("review")
    yield d.shot(f"{name}-b-review")
    before = len(d.stack.printer.receipts)
    yield d.tap(_t("review.confirm"))
    yield d.until_screen("filed", timeout=30)
    yield d.until(lambda: len(d.stack.printer.receipts) > before, "receipt printed", timeout=20)
    yield d.shot(f"{name}-c-filed")
    yield d.tap(_t("btn.done"))
    yield d.until_screen("rating")
    if rate == "dissatisfied":
        yield d.tap(_t("rating.dissatisfied"))
        yield d.until(lambda: _state(d).rating is not None, "reason buttons")
        yield d.shot(f"{name}-d-rating-reasons")
        yield d.tap(_t("rating.reason.too_slow"))
    else:
        yield d.shot(f"{name}-d-rating")
        yield d.tap(_t(f"rating.{rate}"))
    yield d.until_screen("message", _t("take_card.title"), timeout=15)
    d.stack.remove_card()
    yield d.until_screen("idle")


def filings_journey(d):
    """Every shipped service filed through the real app (card + PIN), one offline (待上传, sent later by itself),
    then 我的办件; the receipts print; the township worklist page is captured by the demo afterwards."""
    from kiosk import session as S

    yield d.until_screen("idle")
    for n, key in enumerate(FILING_ORDER[:-1]):
        yield from _sign_in(d)
        yield from _file_one(d, key, n, rate="dissatisfied" if n == 1 else "satisfied")
    # offline: accepted locally with a local number, uploaded by the outbox when the backend is back
    yield from _sign_in(d)
    d.stack.backend_mode("offline")
    yield from _file_one(d, "public_welfare_job", 7)
    d.stack.backend_mode("online")
    yield from _sign_in(d)
    yield d.tap(_button_for(d, S.Choose("my_filings")))
    yield d.until_screen("my_filings", timeout=30)
    yield d.shot("39-my-filings")
    yield d.tap(_t("btn.back"))
    yield d.until_screen("menu")
    # the lost card last: it suspends the card of the person signed in
    yield from _file_one(d, "card_loss", 9)


JOURNEYS = {
    "pension": pension_journey, "faults": faults_journey, "identity": identity_journey, "filings": filings_journey,
}
