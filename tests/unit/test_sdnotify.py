import socket

from kiosk.sdnotify import notify


def test_notify_sends_to_the_socket_systemd_names(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify("WATCHDOG=1")
        assert srv.recv(64) == b"WATCHDOG=1"


def test_notify_is_quiet_outside_systemd(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert notify("READY=1") is False


def _kivy(monkeypatch, tmp_path):
    """Kivy's own event dispatch and clock (no window, no display): the order READY depends on is theirs."""
    for k, v in {"KIVY_NO_ARGS": "1", "KIVY_NO_CONFIG": "1", "KIVY_NO_FILELOG": "1", "KIVY_LOG_MODE": "PYTHON",
                 "KIVY_HOME": str(tmp_path / "kivy")}.items():
        monkeypatch.setenv(k, v)
    from kivy.clock import Clock
    from kivy.event import EventDispatcher

    return Clock, EventDispatcher


def test_ready_goes_out_after_the_first_frame_is_flipped(tmp_path, monkeypatch):
    from kiosk.app import ready_after_first_frame

    Clock, EventDispatcher = _kivy(monkeypatch, tmp_path)
    path = tmp_path / "notify.sock"
    events: list[str] = []

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        srv.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))

        def received():
            try:
                while True:
                    events.append(srv.recv(64).decode())
            except BlockingIOError:
                pass

        class Window(EventDispatcher):
            """Like Kivy's window: its own on_flip (the buffer swap) runs after the handlers bound to it."""

            __events__ = ("on_flip",)

            def on_flip(self):
                received()  # anything sent before the swap lands here, ahead of the frame
                events.append("frame on screen")

        window = Window()
        ready_after_first_frame(window, Clock.schedule_once, notify)
        Clock.tick()  # the app's first tick, before anything is drawn
        received()
        assert events == []
        window.dispatch("on_flip")
        window.dispatch("on_flip")  # READY waits for the clock, not for more frames
        Clock.tick()
        received()
        window.dispatch("on_flip")
        Clock.tick()
        received()
        assert events == ["frame on screen", "frame on screen", "READY=1", "frame on screen"]
