"""The camera screen: document photo (preview, 拍照, then 重拍 / 使用这张) and face photo (preview with a guide
oval and large spoken-style guidance; it takes the picture itself when the face is right, there is no button).

The screen decides nothing. It shows the view's title, body and buttons; `view.extra` tells it:
  mode:   "document" | "face"
  phase:  "live" (preview) | "review" (the picture taken, to accept or retake) | "failed" (the camera failed)
  hint:   the newest FaceHint (look_at_camera, closer, farther, centre, hold_still, one_face_only), face mode
  digest: the picture under review (sha256 hex), for `still(digest)`
The app sets `frames` (callable → newest camera frame, BGR or grey numpy, or None) and `still`
(callable(digest) → JPEG bytes or None), so the screen never talks to the camera itself.
When the view brings no buttons the screen offers the usual ones (拍照; 重拍 / 使用这张).
"""

from __future__ import annotations

from io import BytesIO

from kivy.clock import Clock
from kivy.core.image import Image as CoreImage
from kivy.graphics.texture import Texture
from kivy.properties import ObjectProperty, StringProperty

from kiosk import session as S
from screens.base import KioskScreen
from screens.widgets import BigButton


def t(locale: str, msgid: str) -> str:
    """The catalog's words (assets/i18n); an unknown locale falls back to Chinese."""
    from kiosk.i18n import tr

    return tr(locale, msgid)


class CaptureScreen(KioskScreen):
    frames = ObjectProperty(None, allownone=True)
    still = ObjectProperty(None, allownone=True)
    mode = StringProperty("document")
    phase = StringProperty("live")
    guide_text = StringProperty("")
    status_text = StringProperty("")  # over the preview while there is no picture yet
    _event = None
    _mirror = False

    def on_enter(self, *args):
        self._start_preview()

    def on_leave(self, *args):
        super().on_leave(*args)
        self._stop_preview()
        self.ids.preview.texture = None  # nothing of the person stays in a hidden screen
        self.guide_text = self.status_text = ""

    def render(self, view) -> None:
        extra = view.extra or {}
        loc = view.locale
        self.mode = extra.get("mode", "document")
        self.phase = extra.get("phase", "live")
        if not view.title:
            key = {"review": "capture.review", "failed": "capture.failed"}.get(self.phase, f"capture.{self.mode}")
            self.title = t(loc, f"{key}.title")
            self.body = t(loc, f"{key}.body")
        hint = extra.get("hint")
        if self.mode == "face" and self.phase == "live" and hint:
            self.guide_text = extra.get("hint_text") or t(loc, f"face.hint.{hint}")
        else:
            self.guide_text = self.body
        if not view.buttons:
            for w in self._default_buttons(loc):
                self.ids.buttons.add_widget(w)
        if self.phase == "live":
            self.status_text = "" if self.ids.preview.texture is not None else t(loc, "capture.opening")
            self._start_preview()
        else:
            self._stop_preview()  # the picture under review stays still
            self.status_text = ""
            if self.phase == "review":
                self._show_still(extra.get("digest"))
            else:
                self.ids.preview.texture = None  # failed: an old frame would look like a picture taken

    def _default_buttons(self, loc: str) -> list:
        specs = []
        if self.phase == "live" and self.mode == "document":
            specs = [("capture.btn.shoot", S.CaptureNow(), True)]
        elif self.phase == "review":
            specs = [("capture.btn.retake", S.Retake(), False), ("capture.btn.use", S.Next(), True)]
        elif self.phase == "failed":
            specs = [("capture.btn.retake", S.Retake(), True)]
        out = []
        for msgid, event, primary in specs:
            b = BigButton(text=t(loc, msgid), primary=primary)
            b.event = event
            b.bind(on_release=lambda btn: self._post(btn.event))
            out.append(b)
        return out

    # -- the preview
    def _start_preview(self) -> None:
        if self._event is None and self.phase == "live" and self.manager is not None \
                and self.manager.current == self.name:
            self._event = Clock.schedule_interval(self._refresh, 1 / 15)

    def _stop_preview(self) -> None:
        if self._event is not None:
            self._event.cancel()
            self._event = None

    def _refresh(self, _dt) -> None:
        frame = self.frames() if self.frames else None
        if frame is None:
            return
        self.show_frame(frame)

    def show_frame(self, frame) -> None:
        """Put one camera frame (BGR or grey numpy) on the preview; the face preview is a mirror, as people
        expect of a camera that looks at them (moving left moves left on screen)."""
        h, w = frame.shape[:2]
        fmt = "luminance" if frame.ndim == 2 else "bgr"
        mirror = self.mode == "face"
        tex = self.ids.preview.texture
        if tex is None or tex.size != (w, h) or tex.colorfmt != fmt or self._mirror != mirror:
            tex = Texture.create(size=(w, h), colorfmt=fmt)
            tex.flip_vertical()
            if mirror:
                tex.flip_horizontal()
            self._mirror = mirror
            self.ids.preview.texture = tex
        tex.blit_buffer(frame.tobytes(), colorfmt=fmt, bufferfmt="ubyte")
        self.ids.preview.canvas.ask_update()
        self.status_text = ""

    def _show_still(self, digest) -> None:
        data = self.still(digest) if (self.still and digest) else None
        if not data:
            return  # the last preview frame stays: it is the picture that was taken, near enough
        try:
            self.ids.preview.texture = CoreImage(BytesIO(data), ext="jpg").texture
            self._mirror = False
        except Exception:  # a picture that does not decode: the preview frame stays
            pass
