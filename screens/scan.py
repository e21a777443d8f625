from kivy.app import App
from kivy.clock import Clock
from kivy.graphics.texture import Texture
from kivy.properties import ObjectProperty

from screens.base import KioskScreen


class ScanScreen(KioskScreen):
    """The camera preview while scanning. `frames` is a callable giving the latest grey frame (numpy) or None;
    the app passes it in, so the screen never talks to the device itself."""

    frames = ObjectProperty(None, allownone=True)
    _event = None

    def on_enter(self, *args):
        self._event = Clock.schedule_interval(self._refresh, 1 / 15)

    def on_leave(self, *args):
        super().on_leave(*args)
        if self._event is not None:
            self._event.cancel()
            self._event = None
        self.ids.preview.texture = None

    def _refresh(self, _dt) -> None:
        frame = self.frames() if self.frames else None
        if frame is None:
            return
        h, w = frame.shape[:2]
        theme = getattr(App.get_running_app(), "theme", None)
        if getattr(theme, "portrait", False) and w > h:
            # portrait: the frame's centre square, as wide as the screen (a code seen there is decoded; one at the
            # frame's edges still is)
            x0 = (w - h) // 2
            frame, w = frame[:, x0 : x0 + h], h
        tex = self.ids.preview.texture
        if tex is None or tex.size != (w, h):
            tex = Texture.create(size=(w, h), colorfmt="luminance")
            tex.flip_vertical()
            self.ids.preview.texture = tex
        tex.blit_buffer(frame.tobytes(), colorfmt="luminance", bufferfmt="ubyte")
        self.ids.preview.canvas.ask_update()
