"""What a screen shows, derived from the session state: a pure function, so screens stay thin.

Screens render a View and send back the events its buttons carry; they never decide anything.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from kiosk import catalog
from kiosk import forms as F
from kiosk import session as S
from kiosk.i18n import tr
from kiosk.speech import grouped_phone


@dataclass(frozen=True)
class Button:
    label: str
    event: object
    primary: bool = False


@dataclass(frozen=True)
class View:
    screen: str  # which Kivy screen renders it
    title: str
    body: str = ""
    buttons: tuple[Button, ...] = ()
    countdown: str = ""
    tone: str = "info"  # info | wait | warn | error | ok | forged: an icon and words, never colour alone
    pin_entered: int = 0
    rows: tuple[tuple[str, str], ...] = ()  # label/value pairs (pension)
    payments: tuple[tuple[str, str], ...] = ()
    qr_url: str = ""
    elder_mode: bool = True
    locale: str = "zh_CN"
    elder_label: str = ""
    locale_label: str = ""
    extra: dict = field(default_factory=dict)
    # on every screen (issue 8): 再听一遍 posts S.Repeat(), 请工作人员帮助 posts S.AskHelp()
    repeat_label: str = ""
    help_label: str = ""
    # the help panel when open: {"title", "lines": ((label, value), ...), "close_label", "sent"}; close posts S.Back()
    help: dict | None = None
    # 把字变小吗？ when asked: {"title", "body", "yes_label", "no_label"} -> S.ConfirmShrink(True / False)
    confirm_shrink: dict | None = None


PICK_SHOWN = 24  # options a pick list shows at once; more letters narrow it

# screens that show one message (title, body, buttons) share the message screen
_WAIT = {
    S.Screen.READING: "reading",
    S.Screen.CHECKING_PIN: "checking_pin",
    S.Screen.LOADING: "loading",
    S.Screen.PRINTING: "printing",
    S.Screen.CHECKING_CODE: "checking_code",
    S.Screen.SUBMITTING: "submitting",
}


def build(state: S.State, now: float) -> View:
    loc = state.locale

    def t(msgid: str, **kw) -> str:
        return tr(loc, msgid, **kw)

    n = state.countdown(now)
    common: dict[str, Any] = dict(
        elder_mode=state.elder_mode,
        locale=loc,
        countdown=t("countdown", n=n) if n is not None else "",
        elder_label=t("app.elder_on" if state.elder_mode else "app.elder_off"),
        locale_label=t("app.other_locale"),
        repeat_label=t("btn.repeat"),
        help_label=t("btn.help"),
        help=_help(state, t) if state.help_open else None,
        confirm_shrink=dict(title=t("shrink.title"), body=t("shrink.body"), yes_label=t("shrink.yes"),
                            no_label=t("shrink.no")) if state.confirm_shrink else None,
    )
    sc = state.screen
    if sc is S.Screen.IDLE:
        other = "en" if loc == "zh_CN" else "zh_CN"
        buttons = (Button(t("app.other_locale"), S.SetLocale(other)),)
        if "camera" in state.features:
            buttons = (Button(t("idle.scan"), S.StartScan()),) + buttons
        # say only what this terminal can do: which readers are fitted decides the words
        f = state.features
        body = "idle.body" + (".idcard" if "idcard" in f else "") + (".scan" if f & {"scan", "camera"} else "")
        return View("idle", t("idle.title"), t(body), buttons=buttons, **common)
    if sc is S.Screen.SCAN:
        return View("scan", t("scan.title"), t("scan.body"), buttons=(Button(t("btn.back"), S.Back()),), **common)
    if sc in _WAIT:
        k = _WAIT[sc]
        return View("message", t(f"{k}.title"), t(f"{k}.body"), tone="wait", **common)
    if sc is S.Screen.PIN:
        greeting = t("pin.greeting", name=state.holder_name_masked)
        return View(
            "pin", t("pin.title"), f"{greeting}\n{t('pin.body')}",
            buttons=(Button(t("btn.cancel"), S.Back()),), pin_entered=len(state.pin),
            extra={"delete": t("btn.delete"), "sid": state.sid}, **common,
        )
    if sc is S.Screen.MENU:
        services = tuple(
            Button(_entry_title(e, state, t), S.Choose(e.key), primary=True)
            for e in catalog.menu(state.level, state.services)
        )
        hint = t("menu.idcard_hint") if state.level is catalog.Level.ID_CARD else t("menu.body")
        return View(
            "menu", t("menu.title"), f"{state.holder_name_masked}\n{hint}",
            buttons=services + (Button(t("btn.finish"), S.Finish()),), **common,
        )
    if sc is S.Screen.PENSION:
        return _pension(state, t, common)
    if sc is S.Screen.SHOW_QR:
        return View(
            "show_qr", t("show_qr.title"), t("show_qr.body"), tone="warn",
            buttons=(Button(t("btn.finish"), S.Finish(), primary=True),),
            qr_url=state.receipt_url or "", extra={"reason": t(f"show_qr.{state.fault_detail or 'error'}")},
            **common,
        )
    if sc is S.Screen.TAKE_CARD:
        k = "take_card" if state.card_present else "take_idcard"
        return View("message", t(f"{k}.title"), t(f"{k}.body"), tone="warn", **common)
    if sc is S.Screen.CONFIRM:
        return View(
            "notice", t("confirm.card_loss.title"), t("confirm.card_loss.body"), tone="warn",
            rows=((t("receipt.name"), state.holder_name_masked), (t("receipt.id"), state.holder_id_masked)),
            buttons=(Button(t("confirm.card_loss.yes"), S.Confirm(), primary=True), Button(t("btn.back"), S.Back())),
            **common,
        )
    if sc is S.Screen.SERVICE_INFO:
        return _service_info(state, t, common)
    if sc is S.Screen.FORM:
        return _form(state, now, t, common)
    if sc is S.Screen.REVIEW:
        return _review(state, t, common)
    if sc is S.Screen.RATING:
        return _rating(state, t, common)
    if sc is S.Screen.MY_FILINGS:
        return _my_filings(state, t, common)
    if sc is S.Screen.FILED and state.local_number:
        return _filed(state, t, common)
    if sc is S.Screen.FILED:
        return View(
            "notice", t("filed.title"), t("filed.body"), tone="ok", rows=((t("filed.number"), state.filing_id),),
            buttons=(Button(t("btn.done"), S.Finish(), primary=True),), **common,
        )
    if sc is S.Screen.RECEIPT_CHECK:
        return _receipt_check(state, t, common)
    if sc is S.Screen.ERROR:
        return _error(state, t, common)
    return View("message", sc.value, **common)


def _help(state: S.State, t) -> dict:
    """The help panel: each volunteer's name and phone, the station's phone, and whether the staff were told."""
    desk = state.helpdesk
    lines = tuple((name, grouped_phone(phone)) for name, phone in desk.volunteers)
    if desk.station_phone:
        lines += ((t("help.station"), grouped_phone(desk.station_phone)),)
    if not lines:
        lines = (("", t("help.none")),)
    sent = {"sending": "help.sending", "sent": "help.sent", "offline": "help.offline"}.get(state.help_sent)
    # the status line's tone: told (ok), being told (wait), could not be told (warn: phone instead)
    tone = {"sending": "wait", "sent": "ok", "offline": "warn"}.get(state.help_sent, "")
    return {"title": t("help.title"), "lines": lines, "close_label": t("btn.close"), "sent": t(sent) if sent else "",
            "sent_tone": tone}


def _receipt_check(state: S.State, t, common) -> View:
    v = state.checked
    done = (Button(t("btn.done"), S.Finish(), primary=True),)
    if v is None or not v.genuine:
        # its own icon, title and voice: a forged receipt must never pass for a genuine one by colour alone
        return View(
            "notice", t("receipt_check.not_genuine"), t("receipt_check.not_genuine.body"), tone="forged",
            buttons=done, **common,
        )
    at = v.received_at or v.created_at  # the backend's own time when it gives one: a terminal cannot set it
    when = at.strftime("%Y-%m-%d %H:%M") if at else ""
    rows = (
        (t("receipt.service"), v.title or v.service or ""),
        (t("receipt.name"), v.name_masked or ""),
        (t("receipt.id"), v.id_masked or ""),
        (t("receipt.time"), when),
        (t("receipt.site"), v.site_id or ""),
        (t("receipt.terminal"), v.terminal_id or ""),
    )
    if v.filing_status is not None:  # a filing's receipt: where it stands now, as in 我的办件
        status = t(f"progress.{v.filing_status.value}")
        if v.filing_reason:
            status = t("my_filings.reason", status=status, reason=v.filing_reason)
        rows += ((t("receipt.progress"), status),)
    return View("notice", t("receipt_check.genuine"), t("receipt_check.body"), tone="ok", rows=rows, buttons=done,
                **common)


def _pension(state: S.State, t, common) -> View:
    buttons = (
        Button(t("pension.print"), S.PrintRequested(), primary=True),
        Button(t("btn.back"), S.Back()),
        Button(t("btn.finish"), S.Finish()),
    )
    p = state.pension
    if p is None:
        rows = ((t("pension.status"), t("pension.none")), (t("pension.note"), t("pension.none.body")))
        return View("pension", t("pension.none"), state.holder_name_masked, buttons=buttons, rows=rows, **common)
    rows = [
        (t("pension.insurance_type"), p.insurance_type),
        (t("pension.status"), p.status),
    ]
    if p.receiving and p.monthly_amount is not None:
        rows.append((t("pension.monthly"), t("pension.money", amount=p.monthly_amount)))
    rows += [
        (t("pension.years"), t("pension.years.value", n=p.years_contributed)),
        (t("pension.balance"), t("pension.money", amount=p.account_balance)),
    ]
    if p.contribution_tier:
        rows.append((t("pension.tier"), p.contribution_tier))
    if p.certification_status:
        cert = p.certification_status
        if p.certification_due:
            d = p.certification_due  # 2027年3月31日: no ASCII space for a label to break at
            cert = t("pension.certification.due", status=cert, due=t("form.date", y=d.year, m=d.month, d=d.day))
        rows.append((t("pension.certification"), cert))
    payments = tuple(
        (pay.month, t("pension.money", amount=pay.amount)) for pay in (getattr(p, "payments", None) or ())
    )
    return View(
        "pension", t("pension.title"), state.holder_name_masked, buttons=buttons, rows=tuple(rows),
        payments=payments, extra={"payments_title": t("pension.payments")}, **common,
    )


def _error(state: S.State, t, common) -> View:
    f = state.fault or S.Fault.BACKEND_ERROR  # the error screen always carries its fault
    title = t(f"error.{f.value}.title")
    body = t(f"error.{f.value}.body")
    finish = Button(t("btn.finish"), S.Finish())
    if f is S.Fault.PIN_WRONG:
        if state.tries_left == 1:
            body = t("error.pin_wrong.last")
        elif state.tries_left is not None:
            body = t("error.pin_wrong.body", n=state.tries_left)
        buttons = (Button(t("btn.pin_again"), S.Retry(), primary=True), finish)
    elif f in (S.Fault.BACKEND_OFFLINE, S.Fault.BACKEND_ERROR):
        buttons = (Button(t("btn.retry"), S.Retry(), primary=True), Button(t("btn.back"), S.Back()), finish)
    else:
        buttons = (Button(t("btn.finish"), S.Finish(), primary=True),)
    return View("error", title, body, buttons=buttons, tone="error", **common)


# ------------------------------------------------------------------ filings


def _entry_title(e: catalog.MenuEntry, state: S.State, t) -> str:
    if not e.from_catalog:
        return t(e.title)
    for f in state.services:
        if f.key == e.key:
            return f.title_for(state.locale)
    return e.title


def _service_info(state: S.State, t, common) -> View:
    f = state.form
    back = Button(t("btn.back"), S.Back())
    if f is None:
        return View("service_info", t("service_info.start"), buttons=(back,), **common)
    info, loc = f.info, state.locale
    days = info.time_limit_days
    handling = "filing.handling.forwarded" if info.handling == "forwarded" else "filing.handling.direct"
    rows = [
        (t("service_info.basis"), info.basis),
        (t("service_info.materials"), _numbered(info.materials)),
        (t("service_info.process"), _numbered(info.process)),
        (t("service_info.fee"), info.fee),
        (t("service_info.time_limit"), t("service_info.time_limit.days", n=days) if days else t("service_info.time_limit.now")),
        (t("service_info.handling"), t(handling)),
        (t("service_info.phone"), info.phone),
        (t("service_info.supervision"), info.supervision_phone),
    ]
    if info.online_only:
        rows.append(("", t("service_info.online_only")))
    return View(
        "service_info", f.title_for(loc), f.description_for(loc), rows=tuple(rows),
        buttons=(Button(t("service_info.start"), S.Start(), primary=True), back), **common,
    )


def _numbered(items) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return "\n".join(f"{i}. {x}" for i, x in enumerate(items, 1))


def _form(state: S.State, now: float, t, common) -> View:
    f = state.form
    q = S._question(state)
    back = Button(t("btn.back"), S.Back())
    if f is None or q is None:
        return View("form", t("review.title"), buttons=(back,), **common)
    loc = state.locale
    asked = f.asked
    current = dict(state.answers).get(q.field)
    error = ""
    if state.form_error:
        error = t(state.form_error, **F.error_params(q))
    extra: dict[str, Any] = {
        "widget": q.widget, "field": q.field, "question": q, "service": f.key, "error": error,
        "progress": t("form.progress", i=state.q_index + 1, n=len(asked)), "draft": state.draft,
    }
    title, body = q.title_for(loc), q.description_for(loc)
    next_label = t("btn.next") if (q.required or current is not None) else t("btn.skip")
    nxt = Button(next_label, S.Next(), primary=True)
    buttons: tuple[Button, ...] = (nxt, back)
    screen = "form"
    if q.widget in ("choice", "yesno"):
        if q.widget == "yesno":
            opts = ((t("form.yes"), True), (t("form.no"), False))
        else:
            opts = tuple((F.option_label(o, loc), o.value) for o in q.options)
        extra["choices"] = tuple(
            Button(label, S.Answer(value), primary=_same(current, value)) for label, value in opts
        )
        buttons = (nxt, back) if current is not None or not q.required else (back,)  # 下一步 or 跳过
    elif q.widget == "pick":
        typed = str(state.draft or "")
        shown = F.filter_options(q.options, typed)
        # a long list is cut: a screen of hundreds of buttons is slow to build and no help to read
        extra["choices"] = tuple(
            Button(o.label(loc), S.Answer(o.value), primary=_same(current, o.value)) for o in shown[:PICK_SHOWN]
        )
        extra["more"] = t("form.pick.more", n=len(shown) - PICK_SHOWN) if len(shown) > PICK_SHOWN else ""
        extra["letters"] = tuple(Button(c, S.Letter(c)) for c in F.next_letters(q.options, typed))
        extra["typed"] = typed
        extra["count"] = t("form.pick.count", n=len(shown))
        extra["clear"] = Button(t("form.pick.clear"), S.Letter("")) if typed else None
        extra["hint"] = "" if body else t("form.pick.hint")  # the catalog's own help says it already
        buttons = (nxt, back) if current is not None or not q.required else (back,)  # 下一步 or 跳过
    elif q.widget == "keypad":
        typed = str(state.draft or "")
        extra["typed"] = typed
        extra["shown"] = typed or t("form.keypad.empty")
        extra["keys"] = tuple(Button(d, S.KeyDigit(d), primary=True) for d in "1234567890")
        extra["delete"] = Button(t("btn.delete"), S.KeyBackspace())
    elif q.widget == "date":
        today = S.today(state, now)
        lo, hi = F.date_bounds(q, today)
        try:
            d = dt.date.fromisoformat(str(state.draft))
        except ValueError:
            d = min(max(today, lo), hi)
        parts = []
        for part, value, unit, steps in (
            ("year", d.year, t("form.date.year"), (-10, -1, 1, 10)),
            ("month", d.month, t("form.date.month"), (-1, 1)),
            ("day", d.day, t("form.date.day"), (-1, 1)),
        ):
            parts.append((f"{value}", unit, tuple(Button(f"{k:+d}".replace("-", "−"), S.Step(part, k)) for k in steps)))
        extra["date"] = tuple(parts)
        extra["shown"] = t("form.date", y=d.year, m=d.month, d=d.day)
    elif q.widget in ("document", "face"):
        screen = "capture"
        phase = S.capture_phase(state) or "live"
        extra["mode"] = q.widget
        extra["phase"] = phase
        extra["hint"] = state.hint if (phase == "live" and q.widget == "face") else None  # the screen says it
        extra["hint_text"] = t(f"face.hint.{state.hint}") if extra["hint"] else ""
        extra["digest"] = state.draft if phase == "review" else None
        extra["labels"] = {k: t(f"capture.btn.{k}") for k in ("shoot", "retake", "use")}
        if phase == "review":
            title, body = t("capture.review.title"), t("capture.review.body")
            buttons = (Button(t("capture.btn.use"), S.Next(), primary=True),
                       Button(t("capture.btn.retake"), S.Retake()), back)
        elif phase == "failed":
            title, body = t("capture.failed.title"), t("capture.failed.body")
            buttons = (Button(t("capture.btn.retake"), S.Retake(), primary=True), back)
        elif q.widget == "document":
            body = body or t("capture.document.body")
            buttons = (Button(t("capture.btn.shoot"), S.CaptureNow(), primary=True), back)
        else:
            body = body or t("capture.face.body")
            buttons = (back,)  # the face guide takes the photo itself when one face is centred and still
    elif q.widget == "signature":
        screen = "signature"
        body = body or t("signature.body")
        extra["labels"] = {k: t(f"signature.btn.{k}") for k in ("clear", "done")} | {
            "placeholder": t("signature.placeholder"), "empty": t("signature.empty")}
        buttons = (back,)  # 重写 and 完成 are the screen's: they act on the strokes only the screen has
    tone = "error" if error else ("warn" if extra.get("phase") == "failed" else "info")
    return View(screen, title, body, buttons=buttons, tone=tone, extra=extra, **common)


def _same(a: object, b: object) -> bool:
    return a is not None and a == b and type(a) is type(b)


def _review(state: S.State, t, common) -> View:
    f = state.form
    buttons = (
        Button(t("review.confirm"), S.Confirm(), primary=True), Button(t("btn.back"), S.Back()),
        Button(t("btn.finish"), S.Finish()),
    )
    if f is None:
        return View("review", t("review.title"), t("review.body"), buttons=buttons, **common)
    loc = state.locale
    answers = dict(state.answers)
    items = []
    for q in f.questions:
        value = F.display_text(q, answers.get(q.field), loc)
        items.append((q.title_for(loc), value, None if q.prefill else S.Edit(q.field)))
    if not items and state.person is not None:
        # nothing asked (a lost card): still show whose filing it is, as the credential told it
        items = [(t("receipt.name"), state.holder_name_masked, None), (t("receipt.id"), state.holder_id_masked, None)]
    error = t(state.form_error) if state.form_error else ""
    return View(
        "review", t("review.title"), t("review.body"), buttons=buttons, tone="error" if error else "info",
        rows=tuple((a, b) for a, b, _ in items),
        extra={"items": tuple(items), "error": error, "service": f.title_for(loc),
               "prefilled": t("form.prefilled")},
        **common,
    )


def _filed(state: S.State, t, common) -> View:
    """已受理 (the backend's number), 已受理，待上传 (the local number), or, for an online-only service the backend
    has not confirmed: plainly not done, and what to do. The number is the largest thing after the title."""
    f = state.form
    info = f.info if f is not None else None
    done = (Button(t("btn.done"), S.Finish(), primary=True),)
    rows: list[tuple[str, str]] = []
    not_done = state.queued and info is not None and info.online_only
    if not_done:
        title = t("filed.not_done.title")
        body = t("filed.not_done.body", title=f.title_for(state.locale), phone=info.phone)  # type: ignore[union-attr]
        tone, label, number = "warn", t("filed.local_number"), state.local_number
    elif state.queued:
        title, body, tone = t("filed.queued.title"), t("filed.queued.body"), "info"
        label, number = t("filed.local_number"), state.local_number
    else:
        title, body, tone = t("filed.accepted.title"), t("filed.accepted.body"), "ok"
        label, number = t("filed.number"), state.filing_id
    if state.due is not None and not not_done:
        days = info.time_limit_days if info is not None else 1
        rows.append((t("filed.due"), t("filing.due.today") if days == 0 else
                     t("form.date", y=state.due.year, m=state.due.month, d=state.due.day)))
    if info is not None and not not_done:
        rows.append((t("service_info.handling"), t(
            "filing.handling.forwarded" if info.handling == "forwarded" else "filing.handling.direct")))
    if state.print_failed:
        body = body + "\n" + t("filed.print_failed")
        tone = "warn"
    return View("filed", title, body, tone=tone, rows=tuple(rows), buttons=done,
                extra={"number": number, "number_label": label}, **common)


_REASONS = ("too_slow", "hard_to_use", "not_clear", "not_solved", "staff")


def _rating(state: S.State, t, common) -> View:
    if state.rating == "dissatisfied":
        choices = tuple(Button(t(f"rating.reason.{r}"), S.RateReasons((r,)), primary=True) for r in _REASONS)
        return View(
            "rating", t("rating.reasons.title"), t("rating.reasons.body"),
            buttons=(Button(t("btn.back"), S.Back()), Button(t("btn.skip"), S.RateReasons(()))),
            extra={"choices": choices}, **common,
        )
    choices = tuple(
        Button(t(f"rating.{k}"), S.Rate(k), primary=True) for k in ("satisfied", "basically_satisfied", "dissatisfied")
    )
    return View("rating", t("rating.title"), t("rating.body"), buttons=(Button(t("btn.skip"), S.Finish()),),
                extra={"choices": choices}, **common)


def _my_filings(state: S.State, t, common) -> View:
    rows = []
    for r in state.my_filings:
        status = t("progress.queued") if r.queued else t(f"progress.{r.status}")
        if r.status == "returned" and r.reason:
            status = t("my_filings.reason", status=status, reason=r.reason)
        elif r.due_date is not None and r.status not in ("done", "returned"):
            due = t("form.date", y=r.due_date.year, m=r.due_date.month, d=r.due_date.day)
            status = t("my_filings.due", status=status, date=due)
        number = r.filing_id or r.local_number or ""
        rows.append((f"{r.title}\n{number}", status))
    if state.my_filings_offline:
        body = t("my_filings.offline") if rows else t("my_filings.offline.none")  # "none" would not be true
    else:
        body = t("my_filings.body") if rows else t("my_filings.none")
    return View(
        "my_filings", t("my_filings.title"), body, rows=tuple(rows),
        buttons=(Button(t("btn.back"), S.Back()), Button(t("btn.finish"), S.Finish())), **common,
    )
