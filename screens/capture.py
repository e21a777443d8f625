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

from screens.base import KioskScreen
from screens.widgets import BigButton

# Message ids and texts of the camera and signature screens. The catalogs in assets/i18n win where they have an
# id; this is the fallback until they do (and the source for adding them there).
MESSAGES: dict[str, dict[str, str]] = {
    "zh_CN": {
        "capture.document.title": "请把材料放在摄像头下面",
        "capture.document.body": "材料放平、放正，看清楚后按“拍照”。",
        "capture.review.title": "看看拍得清楚吗？",
        "capture.review.body": "清楚就按“使用这张”，不清楚就按“重拍”。",
        "capture.face.title": "拍一张正面照片",
        "capture.face.body": "请正对摄像头，把脸放在框里。拍好会自动完成，不用按键。",
        "capture.face.done": "拍好了",
        "capture.failed.title": "摄像头没有拍到照片",
        "capture.failed.body": "请再试一次；还是不行，请找工作人员。",
        "capture.opening": "正在打开摄像头…",
        "capture.btn.shoot": "拍照",
        "capture.btn.retake": "重拍",
        "capture.btn.use": "使用这张",
        "face.hint.look_at_camera": "请看摄像头",
        "face.hint.closer": "请靠近一点",
        "face.hint.farther": "请离远一点",
        "face.hint.centre": "请把脸移到框的中间",
        "face.hint.hold_still": "请保持不动",
        "face.hint.one_face_only": "请只留一个人在镜头前",
        "signature.title": "请用手指在框里签名",
        "signature.body": "写完按“完成”，写错了按“重写”。",
        "signature.placeholder": "在这里签名",
        "signature.empty": "还没有签名，请用手指在框里写上您的名字。",
        "signature.btn.clear": "重写",
        "signature.btn.done": "完成",
    },
    "en": {
        "capture.document.title": "Place the document under the camera",
        "capture.document.body": "Lay it flat and straight, then press 'Take photo'.",
        "capture.review.title": "Is the photo clear?",
        "capture.review.body": "If it is clear, press 'Use this one'; if not, press 'Retake'.",
        "capture.face.title": "A photo of your face",
        "capture.face.body": "Face the camera with your face inside the frame. The photo is taken by itself.",
        "capture.face.done": "Photo taken",
        "capture.failed.title": "The camera did not take a photo",
        "capture.failed.body": "Please try again; if it still fails, ask the staff.",
        "capture.opening": "Opening the camera…",
        "capture.btn.shoot": "Take photo",
        "capture.btn.retake": "Retake",
        "capture.btn.use": "Use this one",
        "face.hint.look_at_camera": "Please look at the camera",
        "face.hint.closer": "Please come a little closer",
        "face.hint.farther": "Please move back a little",
        "face.hint.centre": "Please move your face to the middle of the frame",
        "face.hint.hold_still": "Please hold still",
        "face.hint.one_face_only": "Only one person in front of the camera, please",
        "signature.title": "Sign with your finger inside the box",
        "signature.body": "Press 'Done' when finished, 'Clear' to start again.",
        "signature.placeholder": "Sign here",
        "signature.empty": "No signature yet: please write your name in the box with your finger.",
        "signature.btn.clear": "Clear",
        "signature.btn.done": "Done",
    },
}


def t(locale: str, msgid: str) -> str:
    """The catalog's text where it has the id, else this module's fallback, else Chinese."""
    from kiosk.i18n import LOCALES, catalog, tr

    loc = locale if locale in LOCALES else "zh_CN"
    if msgid in catalog(loc) or msgid in catalog("zh_CN"):
        return tr(loc, msgid)
    return MESSAGES.get(loc, {}).get(msgid) or MESSAGES["zh_CN"].get(msgid, msgid)


def session_event(name: str, *args):
    """An event of the session by name (the session gains CaptureNow, Retake, Attach with the filings work);
    None when it does not have it, so a button is left out rather than posting something unknown."""
    from kiosk import session as S

    cls = getattr(S, name, None)
    if cls is None:
        from kiosk import capture

        cls = getattr(capture, name, None)
    return cls(*args) if cls is not None else None


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
            self.guide_text = t(loc, f"face.hint.{hint}")
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

    def _default_buttons(self, loc: str) -> list:
        specs = []
        if self.phase == "live" and self.mode == "document":
            specs = [("capture.btn.shoot", session_event("CaptureNow"), True)]
        elif self.phase == "review":
            specs = [("capture.btn.retake", session_event("Retake"), False),
                     ("capture.btn.use", session_event("Next") or session_event("Confirm"), True)]
        elif self.phase == "failed":
            specs = [("capture.btn.retake", session_event("Retake"), True)]
        out = []
        for msgid, event, primary in specs:
            if event is None:
                continue
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
