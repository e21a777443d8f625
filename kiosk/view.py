"""What a screen shows, derived from the session state: a pure function, so screens stay thin.

Screens render a View and send back the events its buttons carry; they never decide anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kiosk import catalog
from kiosk import session as S
from kiosk.i18n import tr


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
    tone: str = "info"  # info | wait | warn | error: an icon and words, never colour alone
    pin_entered: int = 0
    rows: tuple[tuple[str, str], ...] = ()  # label/value pairs (pension)
    payments: tuple[tuple[str, str], ...] = ()
    qr_url: str = ""
    elder_mode: bool = True
    locale: str = "zh_CN"
    elder_label: str = ""
    locale_label: str = ""
    extra: dict = field(default_factory=dict)


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
            Button(t(s.title), S.Choose(s.key), primary=True) for s in catalog.offered(state.level)
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
    if sc is S.Screen.FILED:
        return View(
            "notice", t("filed.title"), t("filed.body"), rows=((t("filed.number"), state.filing_id),),
            buttons=(Button(t("btn.done"), S.Finish(), primary=True),), **common,
        )
    if sc is S.Screen.RECEIPT_CHECK:
        return _receipt_check(state, t, common)
    if sc is S.Screen.ERROR:
        return _error(state, t, common)
    return View("message", sc.value, **common)


def _receipt_check(state: S.State, t, common) -> View:
    v = state.checked
    done = (Button(t("btn.done"), S.Finish(), primary=True),)
    if v is None or not v.genuine:
        return View(
            "notice", t("receipt_check.not_genuine"), t("receipt_check.not_genuine.body"), tone="error",
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
    return View("notice", t("receipt_check.genuine"), t("receipt_check.body"), rows=rows, buttons=done, **common)


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
            cert = t("pension.certification.due", status=cert, due=p.certification_due)
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
