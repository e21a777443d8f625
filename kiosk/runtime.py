"""The runtime: carries out the session's effects on worker threads and feeds results back as events.

Every event, from any thread, goes through one thread-safe queue; pump() drains it on the Kivy main
thread, in order, so the state machine sees one event at a time and widgets are touched by one thread.
Each device has its own single worker, so two commands never talk to one device at once.

Backend sessions: the runtime holds the one live bearer token, for the kiosk session (sid) it was opened for.
It is opened lazily, by the first personal call of that sid (e-card sign-in opens it at once: the scanned code is
the credential and the answer names the person), and closed (DELETE /v1/sessions/current) when the session
ends, or when the runtime stops (waiting a bounded moment for it). Why here and not in the state: the state machine stays pure and free of secrets, a person who signs in
and walks away costs the backend's rate-limited session openings nothing, and a Retry after a failure simply
opens a fresh session. Once a sid has ended, nothing opens, uses or keeps a token for it again.

Voice: one prompt at a time, the newest. The prompts of one transition replace whatever was queued or playing
(再听一遍 pressed five times says it once), and a session's end, a new session or the home screen silences the
voice at once (a pension amount is never read to the next person). Each prompt is said at the speed of the
current 大字模式 setting. The technician's saved volume (`kiosk voice volume N`, data_dir/voice.toml) is
checked every couple of seconds and applied to the running voice.
"""

from __future__ import annotations

import inspect
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from api.enums import Credential, ErrorCode
from api.models import CardLossFiling, Filing, Pension, SessionOpened
from api.models import Receipt as ApiReceipt
from devices.base import (
    CardFault,
    CardReadFailed,
    PinOutcome,
    PinResult,
    PrintOutcome,
    PrintResult,
    ReceiptPrinter,
    SSCardReader,
)
from kiosk import session as S
from kiosk.i18n import tr

log = logging.getLogger(__name__)
T = TypeVar("T")

WALL_EVERY = 60.0  # s between calendar updates to the session (dates on receipts, the date picker)
CATALOG_EVERY = 1800.0  # s between catalog refreshes (ETag: usually a 304)
# s a confirmed filing waits for the backend's number before 已受理，待上传 is shown: the filing is already durable,
# the local number is as good as the backend's (the backend keeps it), and a resident must not wait on a slow line
SEND_WAIT = 0.25
VOLUME_EVERY = 2.0  # s between looks at the saved volume file (one stat): `kiosk voice volume N` applies at once
ONLINE_ONLY_WAIT = 10.0  # s an online-only filing waits before the screen says it is not done yet
WAIT_SLICE = 0.05


@dataclass(frozen=True)
class Site:
    terminal_id: str
    site_id: str
    site_name: str
    printer_profile: str = "native-qr"
    card_read_timeout: float = 5.0


class _Tokens:
    """The one live backend-session token and the kiosk session (sid) it belongs to. Thread-safe: workers of the
    net pool ask for it, the main thread ends it. sids only grow, so `ended` (the highest sid that ended) is
    enough to refuse an old session for good."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opening = threading.Lock()  # one opening at a time: two calls of one sid share one session
        self._sid = 0
        self._token: str | None = None
        self._ended = 0

    def current(self, sid: int) -> str | None:
        with self._lock:
            return self._token if self._sid == sid and sid > self._ended else None

    def open(self, sid: int, opener: Callable[[], object]) -> tuple[object, list[str]]:
        """(the opener's answer, or the live session, and tokens to close). Anything with a .token is open."""
        with self._opening:
            with self._lock:
                if sid <= self._ended:
                    return _stale(), []
                if self._sid == sid and self._token is not None:
                    return _Live(self._token), []
            got = opener()
            token = getattr(got, "token", None)
            if not isinstance(token, str):
                return got, []
            with self._lock:
                if sid <= self._ended:
                    return _stale(), [token]  # the session ended while we opened: never keep it
                dead = [self._token] if self._token is not None else []
                self._sid, self._token = sid, token
            return got, dead

    def drop(self, sid: int, token: str) -> None:
        """The backend refused this token: forget it, so the next call opens a fresh session."""
        with self._lock:
            if self._sid == sid and self._token == token:
                self._token = None

    def end(self, sid: int) -> str | None:
        """The kiosk session sid (and every earlier one) has ended: the token to close, if any."""
        with self._lock:
            self._ended = max(self._ended, sid)
            if self._token is not None and self._sid <= sid:
                token, self._token = self._token, None
                return token
            return None


@dataclass(frozen=True)
class _Live:
    """The session another call of this sid opened meanwhile."""

    token: str = field(repr=False)


def _stale(code: str = "session_ended", message: str = "kiosk session ended"):
    from kiosk.backend_client import BackendFailure, FailureKind

    return BackendFailure(FailureKind.SESSION_REFUSED, code=code, message=message)


class Runtime:
    def __init__(
        self,
        *,
        card_reader: SSCardReader,
        printer: ReceiptPrinter,
        backend,
        site: Site,
        settings: S.Settings | None = None,
        locale: str = "zh_CN",
        elder_mode: bool = True,
        voice: Callable[[str, str], None] | None = None,
        idcard_reader=None,
        scanner=None,
        camera=None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now().astimezone(),
        outbox=None,
        sync=None,
        catalog_cache=None,
        helpdesk: S.HelpDesk | None = None,
        volume_file=None,
        configured_volume: int | None = None,
    ) -> None:
        self.card_reader = card_reader
        self.idcard_reader = idcard_reader  # optional devices: None when not fitted
        self.scanner = scanner
        self.camera = camera  # a devices.camera.FrameSource
        self._decoder = None
        self._last_frame = None
        self.printer = printer
        self.backend = backend
        self.site = site
        self.voice = voice
        self.clock = clock
        self.wall = wall
        features = {name for name, dev in (("idcard", idcard_reader), ("scan", scanner), ("camera", camera)) if dev}
        self.state = S.initial_state(settings, locale=locale, elder_mode=elder_mode, features=frozenset(features),
                                     helpdesk=helpdesk)
        self.volume_file = volume_file  # where set_volume keeps the station's volume (kiosk.config.VOLUME_FILE)
        self.configured_volume = configured_volume  # [terminal] voice_volume: what applies when that file goes
        self._volume_sig = _file_sig(volume_file)  # the voice was made with the file as it is now
        self._volume_at = float("-inf")
        self._voice_turn = 0  # bumped by each batch of prompts and each silencing: older queued prompts are dropped
        self._voice_gen: int | None = None  # the voice's own turn (kiosk.voice.Voice.stop) for the current prompts
        self._sample_queued = threading.Event()
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._pools = {
            name: ThreadPoolExecutor(1, thread_name_prefix=name)
            for name in ("card", "printer", "voice", "outbox", "camera")
        }
        self._pools["net"] = ThreadPoolExecutor(2, thread_name_prefix="net")
        self._tokens = _Tokens()
        self._run_id = secrets.token_hex(8)  # idempotency keys stay unique across restarts and terminals
        self._first_asked: dict[str, datetime] = {}  # idempotency key -> created_at of its first try
        self.outbox = outbox  # kiosk.outbox.Outbox: confirmed filings, durable before the resident is told
        self.sync = sync  # kiosk.outbox.SyncWorker: sends the outbox off the UI thread
        self.catalog_cache = catalog_cache  # kiosk.catalog_cache.CatalogCache: services offline and across restarts
        self._attachments: dict[str, tuple[int, bytes, str]] = {}  # digest -> (sid, bytes, type), wiped at the end
        self._feed = None  # the live camera feed of a capture question (document preview or face watcher)
        self._feed_field: str | None = None
        self._feed_kind: str | None = None  # document | face
        self._wall_at = float("-inf")
        self._catalog_at = float("-inf")
        self._catalog_raws: list | None = None  # the last catalog offered to the session
        self.listeners: list[Callable[[S.State], None]] = []
        self.wakeup: Callable[[], None] | None = None  # the app's thread-safe trigger to pump at once

    # -- any thread
    def post(self, event: object) -> None:
        self._events.put(event)
        if self.wakeup is not None:
            self.wakeup()

    # -- main thread
    def start(self) -> None:
        for dev in (self.card_reader, self.idcard_reader, self.scanner):
            if dev is not None:
                dev.start(self.post)
        if self.sync is not None:
            self.sync.start()
        self._housekeeping()

    def stop(self, close_within: float = 2.0) -> None:
        """Stop the devices, end the live backend session (waiting at most close_within seconds), stop the
        workers. Never raises from the backend: a session not closed in time simply expires there."""
        try:
            if self.voice is not None:
                self._hush()  # a prompt must not outlive the kiosk (nor keep a worker from ending)
            self._camera(False)
            self._stop_feed()
            if self.sync is not None:
                self.sync.stop(timeout=close_within)
            for dev in (self.card_reader, self.idcard_reader, self.scanner):
                if dev is not None:
                    dev.stop()
        finally:
            try:
                self._end_for_good(close_within)
            finally:
                for pool in self._pools.values():
                    pool.shutdown(wait=False, cancel_futures=True)

    def _end_for_good(self, within: float) -> None:
        """End the current sid's backend session now, on a thread of its own: the net workers may be busy
        with calls that would make the close wait, and a hung backend must not hold the shutdown."""
        try:
            token = self._tokens.end(self.state.sid)
            if token is None:
                return
            closer = threading.Thread(target=self._close_quietly, args=(token,), name="net-close", daemon=True)
            closer.start()
            closer.join(within)
            if closer.is_alive():
                log.info("closing the backend session took over %.1f s: it will expire at the backend", within)
        except Exception:
            log.warning("ending the backend session on stop failed", exc_info=True)

    def pump(self, budget: int = 100) -> bool:
        """Apply queued events in order; returns True when the state changed (the screens re-render)."""
        changed = False
        for _ in range(budget):
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            changed |= self.dispatch(event)
        return changed

    def dispatch(self, event: object) -> bool:
        if isinstance(event, S.Tick):
            self._housekeeping()
        before = self.state
        self.state, effects = S.transition(self.state, event, self.clock())
        if self.state.screen is not before.screen:
            log.info("screen %s -> %s (session %d)", before.screen.value, self.state.screen.value, self.state.sid)
        if self.state.sid > before.sid:
            self._end_backend_session(before.sid)  # a new person: nothing of the last one may stay open
        if self.voice is not None and (
            self.state.sid != before.sid
            or (self.state.screen is S.Screen.IDLE and before.screen is not S.Screen.IDLE)
            or any(isinstance(e, S.Speak | S.SessionEnded) for e in effects)
        ):
            self._hush()  # before this transition's own prompts, which then play in order
        for effect in effects:
            self._run(effect)
        self._sync_preview()
        if self.state is not before:
            for listener in list(self.listeners):
                listener(self.state)
            return True
        return False

    # -- effects
    def _submit(self, pool: str, sid: int, job: Callable[[], object], on_crash: Callable[[Exception], object]):
        """Run job on a worker; its value (or, if it crashed, a failure value) comes back as an event."""

        def run():
            try:
                value = job()
            except Exception as e:  # a driver bug must not leave the person on a waiting screen
                log.exception("worker %s failed", pool)
                value = on_crash(e)
            self.post(S.Result(sid, value))

        self._pools[pool].submit(run)

    def _run(self, eff: object) -> None:
        if isinstance(eff, S.ReadCard):
            self._submit(
                "card", eff.sid, lambda: self.card_reader.read(self.site.card_read_timeout),
                lambda e: CardReadFailed(CardFault.UNREADABLE, type(e).__name__),
            )
        elif isinstance(eff, S.VerifyPin):
            pin = eff.pin
            self._submit(
                "card", eff.sid, lambda: self.card_reader.verify_pin(pin),
                lambda e: PinResult(PinOutcome.FAILED, fault=CardFault.UNREADABLE),
            )
        elif isinstance(eff, S.FetchPension):
            self._submit("net", eff.sid, lambda: self._pension(eff), _bad_response)
        elif isinstance(eff, S.IssueReceipt):
            self._submit("net", eff.sid, lambda: self._issue(eff), _bad_response)
        elif isinstance(eff, S.PrintReceipt):
            self._submit(
                "printer", eff.sid, lambda: self._print(eff),
                lambda e: PrintResult(PrintOutcome.ERROR, detail=type(e).__name__),
            )
        elif isinstance(eff, S.ResolveECard):
            code = eff.code
            self._submit("net", eff.sid, lambda: self._ecard(eff.sid, code), _bad_response)
        elif isinstance(eff, S.VerifyReceipt):
            url = eff.url
            self._submit("net", eff.sid, lambda: self._verify(url), _bad_response)
        elif isinstance(eff, S.ReportCardLoss):
            self._submit("net", eff.sid, lambda: self._card_loss(eff), _bad_response)
        elif isinstance(eff, S.Camera):
            self._camera(eff.on)
        elif isinstance(eff, S.Speak):
            if self.voice is not None:
                st = self.state
                text = tr(st.locale, eff.msgid, **dict(eff.params))
                # a prompt with values is never a recorded clip: the clip cannot say them
                msgid = "" if eff.params else eff.msgid
                self._pools["voice"].submit(self._say, text, st.locale, st.sid, st.screen, msgid,
                                            self._voice_turn, self._voice_gen, st.elder_mode)
        elif isinstance(eff, S.RequestHelp):
            self._submit("net", eff.sid, lambda: self._help(eff), lambda e: S.HelpRequested(False))
        elif isinstance(eff, S.KeepAttachment):
            if eff.sid == self.state.sid:
                self._attachments[eff.digest] = (eff.sid, eff.data, eff.media_type)
        elif isinstance(eff, S.SubmitFiling):
            # Take the attachments now: pulling the card right after Confirm ends the session and wipes them.
            atts = self._attachments_of(eff)
            self._submit("outbox", eff.sid, lambda: self._file(eff, atts), _not_saved)
        elif isinstance(eff, S.SubmitRating):
            self._pools["outbox"].submit(self._rate, eff, self.wall())
        elif isinstance(eff, S.FetchMyFilings):
            self._submit("net", eff.sid, lambda: self._my_filings(eff), _bad_response)
        elif isinstance(eff, S.CaptureStill):
            self._capture_still(eff)
        elif isinstance(eff, S.FaceWatch):
            self._face_watch(eff)
        elif isinstance(eff, S.SessionEnded):
            log.info("session %d ended: %s", eff.sid, eff.reason)
            self._end_backend_session(eff.sid)
            self._first_asked.clear()
            self._attachments.clear()
            self._stop_feed()
            _trim_heap()

    # -- backend sessions
    def _end_backend_session(self, sid: int) -> None:
        token = self._tokens.end(sid)
        if token is not None:
            self._close_tokens([token])

    def _close_tokens(self, tokens: list[str]) -> None:
        for token in tokens:
            try:
                self._pools["net"].submit(self._close_quietly, token)
            except RuntimeError:  # pools shut down: the backend lets it expire
                pass

    def _close_quietly(self, token: str) -> None:
        try:
            failure = self.backend.close_session(token)
        except Exception:
            log.warning("closing the backend session failed", exc_info=True)
            return
        if failure is not None:
            log.info("closing the backend session: %s (%s)", getattr(failure, "kind", "?"), getattr(failure, "code", ""))

    def _open(self, sid: int, opener: Callable[[], object]) -> object:
        got, dead = self._tokens.open(sid, opener)
        self._close_tokens(dead)
        return got

    def _personal(self, sid: int, person: S.Person, call: Callable[[str], object]) -> object:
        """Run call(token) with this sid's backend session, opening it with the person's credential if needed.
        A refused token (expired, unknown) is dropped and, where the credential can be presented again
        (card + PIN and ID card were checked by this terminal), one fresh session is opened for one more try."""
        r: object = _stale("token_required", "no backend session")
        for _ in range(2):
            token = self._tokens.current(sid)
            if token is None:
                if person.credential is Credential.ECARD:
                    return r  # the scanned code was spent on sign-in: only a new scan opens a new session
                got = self._open(sid, lambda: self.backend.open_session(
                    person.credential, ssn=person.id_number, name=person.name or None))
                token = getattr(got, "token", None)
                if not isinstance(token, str):
                    return got  # a failure: offline, busy, refused, or this sid has ended
            r = call(token)
            if getattr(r, "code", None) not in _DEAD_TOKEN:
                return r
            self._tokens.drop(sid, token)
        return r

    # -- voice
    def _hush(self) -> None:
        """Main thread: drop every queued prompt and cut the one playing (a voice without stop() finishes it)."""
        self._voice_turn += 1
        stop = getattr(self.voice, "stop", None)
        if callable(stop):
            try:
                got = stop()
            except Exception:
                log.warning("stopping the voice failed", exc_info=True)
                got = None
            self._voice_gen = got if isinstance(got, int) else None

    def _say(self, text: str, locale: str, sid: int, screen: S.Screen, msgid: str = "", turn: int | None = None,
             gen: int | None = None, elder: bool | None = None) -> None:
        st = self.state  # one reference read: the state object itself is immutable
        if st.sid != sid or st.screen is not screen:
            return  # the person has moved on: a late prompt would only confuse
        if turn is not None and turn != self._voice_turn:
            return  # a newer prompt (or the session's end) replaced it
        self._speak(msgid or None, text, locale, gen, elder)

    def _speak(self, msgid: str | None, text: str, locale: str, gen: int | None, elder: bool | None) -> None:
        voice = self.voice
        if voice is None:
            return
        try:
            say = getattr(voice, "say", None)  # kiosk.voice.Voice plays a recorded clip for the msgid
            if say is None:
                voice(text, locale)
                return
            extra = {}
            if elder is not None and _accepts(say, "elder"):
                extra["elder"] = elder  # the speed follows 大字模式 as it is now, not as configured
            if gen is not None and _accepts(say, "turn"):
                extra["turn"] = gen  # a stop() after this prompt was asked for cancels it inside the voice
            say(msgid, text, locale, **extra)
        except Exception:
            log.warning("voice prompt failed", exc_info=True)

    # -- help and volume
    def _help(self, eff: S.RequestHelp) -> S.HelpRequested:
        """Tell the backend (terminal certificate only: nothing personal, the screen's name and the time)."""
        request_help = getattr(self.backend, "request_help", None)
        if request_help is None:
            return S.HelpRequested(False)
        r = request_help(eff.screen, self.wall())
        ok = getattr(r, "request_id", None) is not None
        if not ok:
            log.info("help request not recorded: %s", getattr(getattr(r, "kind", None), "value", "?"))
        return S.HelpRequested(ok)

    @property
    def volume(self) -> int | None:
        """The live voice's volume 0-100 (None: no voice with a volume)."""
        v = getattr(self.voice, "volume", None)
        return None if v is None else round(v)

    def set_volume(self, value: int, *, save: bool = True, test: bool = True) -> bool:
        """Change the live voice's volume at once, keep it for the next start (in volume_file, unless save is
        False) and, with test, say a short sample at the new loudness. Main thread. The running kiosk calls it
        when the saved volume file changes (`kiosk voice volume N`, see _watch_volume). Raises ValueError for a
        value that is not a whole number 0-100; returns False when it could not be saved (logged)."""
        from kiosk.config import check_volume, write_volume

        value = check_volume(value)
        if self.voice is not None and hasattr(self.voice, "volume"):
            self.voice.volume = value  # one int: read by the voice worker at its next prompt
        saved = True
        if save and self.volume_file is not None:
            try:
                write_volume(self.volume_file, value)
            except OSError as e:
                log.warning("volume %d not saved in %s: %s", value, self.volume_file, e.strerror)
                saved = False
        log.info("voice volume set to %d", value)
        if test and self.voice is not None and value > 0 and not self._sample_queued.is_set():
            self._sample_queued.set()  # a slider dragged through many values says one sample, at the last one
            text = tr(self.state.locale, "volume.test")
            try:
                self._pools["voice"].submit(self._say_now, text, self.state.locale, self._voice_turn,
                                            self._voice_gen, self.state.elder_mode)
            except RuntimeError:
                self._sample_queued.clear()  # stopping
        return saved

    def _say_now(self, text: str, locale: str, turn: int | None = None, gen: int | None = None,
                 elder: bool | None = None) -> None:
        self._sample_queued.clear()
        if turn is not None and turn != self._voice_turn:
            return  # a prompt of the screen came after it: that one is current
        self._speak(None, text, locale, gen, elder)

    def _watch_volume(self) -> None:
        """Apply a changed saved volume (`kiosk voice volume N` or --reset) to the running voice. A sample is
        said only on the home screen: a resident being served must not hear a technician's test."""
        path = self.volume_file
        if path is None or self.voice is None or not hasattr(self.voice, "volume"):
            return
        sig = _file_sig(path)
        if sig == self._volume_sig:
            return
        self._volume_sig = sig
        from kiosk.config import read_volume

        value = read_volume(path) if sig is not None else None
        if value is None:
            value = self.configured_volume  # removed or broken: [terminal] voice_volume applies again
        if value is None or value == self.volume:
            return
        log.info("saved voice volume changed: applying %d", value)
        self.set_volume(value, save=False, test=self.state.screen is S.Screen.IDLE)

    # -- camera: decoding runs only while the scan screen is up
    def latest_frame(self):
        """The newest camera frame for the preview (main thread reads, capture thread writes one reference)."""
        feed = self._feed
        if feed is not None:
            return feed.latest()
        return self._last_frame if self._decoder is not None else None

    def attachment_bytes(self, digest: str) -> bytes | None:
        """A picture of this session under review (the capture screen shows it before it is used)."""
        got = self._attachments.get(digest)
        return got[1] if got is not None and got[0] == self.state.sid else None

    def _camera(self, on: bool) -> None:
        from devices.camera import QrDecoder

        if on and self._decoder is None and self.camera is not None:
            self._decoder = QrDecoder(self.post, source=_Tee(self.camera, self))
            self._decoder.start()
        elif not on and self._decoder is not None:
            self._decoder.stop()
            self._decoder = None
            self._last_frame = None

    def _ecard(self, sid: int, code: str) -> object:
        r = self._open(sid, lambda: self.backend.open_session(Credential.ECARD, code=code))
        reason = {"ecard_expired": "expired", "ecard_revoked": "revoked", "ecard_unknown": "unknown"}
        why = getattr(r, "code", None)
        if why in reason:
            return S.ECardRejected(reason[why])
        # a _Live answer cannot happen here (a fresh sid): never sign in without a person named
        opened = _as(r, SessionOpened)
        if isinstance(opened, S.BackendFailed):
            return opened
        return S.ECardResolved(opened.person.name, opened.person.ssn)

    def _verify(self, url: str) -> object:
        r = self.backend.verify_receipt(url)
        if getattr(r, "code", None) == "foreign_url":
            return S.ReceiptChecked(None)  # not issued by our backend: not one of ours, never fetched
        return _failure(r) or S.ReceiptChecked(r)

    def _card_loss(self, eff: S.ReportCardLoss) -> object:
        key = f"{self._run_id}-{eff.key}"
        when = self._first_asked.setdefault(key, self.wall())  # a retry repeats the same body
        r = _as(self._personal(eff.sid, eff.person, lambda token: self.backend.report_card_loss(
            token, idempotency_key=key, created_at=when)), CardLossFiling)
        if isinstance(r, S.BackendFailed):
            return r
        return S.CardLossFiled(r.filing_id, str(r.status), r.verify_url, _lines(r.lines))

    def _pension(self, eff: S.FetchPension) -> object:
        r = _as(self._personal(eff.sid, eff.person, self.backend.pension), Pension)
        if isinstance(r, S.BackendFailed):
            return r
        return S.PensionLoaded(r)

    def _issue(self, eff: S.IssueReceipt) -> object:
        key = f"{self._run_id}-{eff.receipt_key}"
        when = self._first_asked.setdefault(key, self.wall())

        def receipt(token: str) -> object:
            r = self.backend.create_receipt(token, idempotency_key=key, service=eff.service, created_at=when)
            if getattr(r, "code", None) != ErrorCode.NOTHING_TO_VOUCH:
                return r
            # The backend vouches only for what it answered in this backend session, and a session reopened
            # after its token expired (15 minutes, however busy the person) has answered nothing yet: ask for
            # the pension again in it, then for the receipt once more. Should that answer differ from the one
            # on screen, the receipt prints the backend's new lines anyway: the backend's record is the truth.
            p = self.backend.pension(token)
            if isinstance(p, Pension) or getattr(p, "code", None) == ErrorCode.NO_RECORD:
                return self.backend.create_receipt(token, idempotency_key=key, service=eff.service, created_at=when)
            return p  # offline, busy, or a dead token (_personal then reopens once)

        r = _as(self._personal(eff.sid, eff.person, receipt), ApiReceipt)
        if isinstance(r, S.BackendFailed):
            return r
        return S.ReceiptIssued(r.receipt_id, r.verify_url, _lines(r.lines))

    def _print(self, eff: S.PrintReceipt) -> PrintResult:
        from kiosk.receipts import Receipt, render_escpos  # qrcode, PIL, escpos: loaded at the first print

        receipt = Receipt(
            site_name=self.site.site_name,
            terminal_id=self.site.terminal_id,
            printed_at=self.wall(),
            service=eff.title or tr("zh_CN", f"service.{eff.service}"),
            holder_name_masked=eff.holder_name_masked,
            holder_id_masked=eff.holder_id_masked,
            lines=list(eff.lines),
            qr_url=eff.qr_url,
        )
        return self.printer.print_receipt(render_escpos(receipt, self.site.printer_profile))


    # -- filings: catalog, outbox, 我的办件
    def _housekeeping(self) -> None:
        """On start and every tick: the calendar to the session now and then, the catalog every half hour."""
        now = self.clock()
        if now - self._wall_at >= WALL_EVERY:
            self._wall_at = now
            self.post(S.WallTime(self.wall()))
        if now - self._volume_at >= VOLUME_EVERY:
            self._volume_at = now
            try:
                self._watch_volume()
            except Exception:  # a volume is never worth a crash of the UI loop
                log.warning("checking the saved volume failed", exc_info=True)
        if self.catalog_cache is not None and now - self._catalog_at >= CATALOG_EVERY:
            self._catalog_at = now
            try:
                self._pools["net"].submit(self._load_catalog)
            except RuntimeError:  # stopping
                pass

    def _load_catalog(self) -> None:
        from kiosk.forms import compile_catalog

        cache = self.catalog_cache
        if cache is None:
            return
        def offer(raws: list) -> None:
            if not raws or raws == self._catalog_raws:
                return
            self._catalog_raws = raws
            services, hidden = compile_catalog(raws)
            for key, why in hidden:
                log.warning("service %s hidden: %s", key, why)
            self.post(S.CatalogLoaded(services))

        try:
            if self._catalog_raws is None:
                offer(cache.load())  # what the terminal knew: works with no network at all
            offer(cache.refresh(self.backend))
        except Exception:
            log.warning("service catalog refresh failed; keeping the cached one", exc_info=True)

    def _attachments_of(self, eff: S.SubmitFiling) -> dict[str, tuple[bytes, str]]:
        wanted = {v for _, v in eff.answers if isinstance(v, str)}
        return {d: (data, mt) for d, (sid, data, mt) in self._attachments.items() if sid == eff.sid and d in wanted}

    def _file(self, eff: S.SubmitFiling, atts: dict[str, tuple[bytes, str]]) -> object:
        """Write the filing to the outbox (durable), then give the sync worker a moment to send it: online the
        resident sees the backend's number, offline the local one. Nothing is said before the write returns."""
        if self.outbox is None:
            return S.BackendFailed(S.BackendFailureKind.OFFLINE)
        from kiosk.outbox import FAILED, OutboxError
        person = eff.person
        try:
            item = self.outbox.put_filing(
                service=eff.service,
                person={"ssn": person.id_number, "name": person.name, "credential": person.credential.value},
                answers=dict(eff.answers), attachments=atts, online_only=eff.online_only,
                created_at=eff.created_at or self.wall(), key=f"{self._run_id}-{eff.key}",
                local_number=eff.local_number,
            )
        except (OutboxError, OSError) as e:  # full disk, unreadable key: not saved, so never said to be
            log.error("filing not saved in the outbox: %s", e)
            return S.BackendFailed(S.BackendFailureKind.SERVER_ERROR)
        except ValueError as e:
            log.error("filing refused before queueing: %s", e)
            return S.FilingRefused(())
        if self.sync is None:
            return S.FilingSaved(item.local_number, True)
        self.sync.kick()
        answer = self._wait_sent(item.local_number, ONLINE_ONLY_WAIT if eff.online_only else SEND_WAIT)
        if answer is None:
            now = self.outbox.get(item.local_number)
            if now is not None and now.state == FAILED:
                log.warning("filing %s refused by the backend: %s", item.local_number, now.last_error)
                return S.FilingRefused(self.outbox.refused_fields(item.local_number))
            return S.FilingSaved(item.local_number, True)
        if not isinstance(answer, Filing):
            return S.FilingSaved(item.local_number, True)
        return S.FilingSaved(item.local_number, False, answer, _lines(answer.lines))

    def _wait_sent(self, local_number: str, timeout: float) -> object | None:
        """The backend's answer, or None once the worker found the backend away (or the time ran out): with
        the backend down the resident is told 待上传 at once, not after a timeout."""
        sync = self.sync
        assert sync is not None
        end = self.clock() + timeout
        while True:
            got = sync.wait_for(local_number, min(WAIT_SLICE, max(0.0, end - self.clock())))
            if got is not None or self.clock() >= end or getattr(sync, "away", False):
                return got

    def _rate(self, eff: S.SubmitRating, when: datetime) -> None:
        if self.outbox is None:
            return
        try:
            self.outbox.put_rating(
                service=eff.service, satisfaction=eff.satisfaction, reasons=eff.reasons, filing_ref=eff.filing_ref,
                created_at=when, key=f"{self._run_id}-{eff.key}",
            )
        except Exception as e:  # a rating is not worth a fault screen: the log says why
            log.warning("rating not queued: %s", e)
            return
        if self.sync is not None:
            self.sync.kick()

    def _my_filings(self, eff: S.FetchMyFilings) -> object:
        from api.models import FilingList
        from kiosk.outbox import FAILED

        titles = {f.key: f.title for f in self.state.services}
        rows: list[S.FilingRow] = []
        queued: set[str] = set()
        if self.outbox is not None:
            try:
                for p in self.outbox.pending_for(eff.person.id_number):
                    queued.add(p.local_number)
                    title = str(titles.get(p.service) or p.service)
                    if p.state == FAILED:  # refused for good: say so, never "待上传" forever
                        rows.append(S.FilingRow(p.local_number, None, p.service, title, "returned",
                                                tr(self.state.locale, "my_filings.refused")))
                    else:
                        rows.append(S.FilingRow(p.local_number, None, p.service, title, "received", queued=True))
            except Exception:
                log.warning("outbox could not be read for 我的办件", exc_info=True)
        got = _as(self._personal(eff.sid, eff.person, self.backend.my_filings), FilingList)
        if isinstance(got, S.BackendFailed):
            return S.MyFilingsLoaded(tuple(rows), offline=True)
        for f in got.filings:
            if f.local_number in queued:
                continue  # sent while we asked: the backend's row is the newer truth
            rows.append(S.FilingRow(f.local_number, f.filing_id, f.service, f.title, f.status.value, f.reason,
                                    f.due_date))
        return S.MyFilingsLoaded(tuple(rows))

    # -- document camera and face photo
    def _capture_still(self, eff: S.CaptureStill) -> None:
        from kiosk.capture import CaptureFailed, capture_document

        camera = self.camera
        self._submit("camera", eff.sid, lambda: capture_document(camera, eff.field),
                     lambda e: CaptureFailed(eff.field, "camera"))

    def _face_watch(self, eff: S.FaceWatch) -> None:
        if not eff.on:
            if self._feed_field == eff.field:
                self._stop_feed()
            return
        self._stop_feed()
        if self.camera is None:
            from kiosk.capture import CaptureFailed

            self.post(S.Result(eff.sid, CaptureFailed(eff.field, "camera")))
            return
        from kiosk.capture import FaceWatcher

        self._camera(False)  # one reader of the camera at a time
        self._feed = FaceWatcher(self.camera, self.post, eff.sid, eff.field)
        self._feed_field, self._feed_kind = eff.field, "face"
        self._feed.start()

    def _sync_preview(self) -> None:
        """The document camera's live preview runs exactly while a document question waits for its photo (the
        face question's watcher is switched by the session's FaceWatch effects)."""
        st = self.state
        q = None
        if st.screen is S.Screen.FORM and st.form is not None and st.draft is None:
            asked = st.form.asked
            q = asked[st.q_index] if 0 <= st.q_index < len(asked) else None
        want = q.field if q is not None and q.widget == "document" and not getattr(st, "capture_failed", False) else None
        if want is None:
            if self._feed_kind == "document":
                self._stop_feed()
            return
        if self._feed_field == want or self.camera is None:
            return
        from kiosk.capture import DocumentPreview

        self._stop_feed()
        self._camera(False)
        feed = DocumentPreview(self.camera, self.post, st.sid, want)
        self._feed, self._feed_field, self._feed_kind = feed, want, "document"
        feed.start()

    def _stop_feed(self) -> None:
        feed, self._feed, self._feed_field, self._feed_kind = self._feed, None, None, None
        if feed is not None:
            try:
                feed.stop()
            except Exception:
                log.warning("stopping the camera feed failed", exc_info=True)


class _Tee:
    """A frame source that also keeps the newest frame for the on-screen preview."""

    def __init__(self, source, runtime: Runtime) -> None:
        self.source, self.runtime = source, runtime

    def read(self):
        frame = self.source.read()
        if frame is not None:
            self.runtime._last_frame = frame
        return frame

    def status(self):
        return self.source.status()

    def close(self) -> None:
        pass  # the runtime owns the camera; stopping the decoder must not close it


def _file_sig(path) -> tuple[int, int, int] | None:
    """What tells a rewritten file from the one seen before (written by rename: a new inode), or None if absent."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _accepts(fn: Callable, name: str) -> bool:
    """Whether fn takes the keyword name (a test's fake voice may not)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _trim_heap() -> None:
    """Hand freed heap back to the OS between sessions (glibc keeps ~20 MB otherwise, measured in bench)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _failure(r: object) -> S.BackendFailed | None:
    kind = getattr(r, "kind", None)
    if kind is None:
        return None
    try:
        return S.BackendFailed(S.BackendFailureKind(getattr(kind, "value", kind)))
    except ValueError:
        return S.BackendFailed(S.BackendFailureKind.BAD_RESPONSE)


_DEAD_TOKEN = frozenset({ErrorCode.TOKEN_EXPIRED, ErrorCode.TOKEN_INVALID, ErrorCode.TOKEN_REQUIRED})


def _lines(lines) -> tuple[tuple[str, str], ...]:
    return tuple((str(label), str(value)) for label, value in lines)


def _as(r: object, model: type[T]) -> T | S.BackendFailed:
    """The answer when it is the model the call promises, else the failure it is (or a bad response)."""
    if isinstance(r, model):
        return r
    return _failure(r) or S.BackendFailed(S.BackendFailureKind.BAD_RESPONSE)


def _not_saved(_e: Exception) -> S.BackendFailed:
    log.error("filing not saved: the outbox failed")
    return S.BackendFailed(S.BackendFailureKind.SERVER_ERROR)


def _bad_response(_e: Exception) -> S.BackendFailed:
    return S.BackendFailed(S.BackendFailureKind.BAD_RESPONSE)
