"""Screenshots of the top bar's 再听一遍 / 请工作人员帮助, the help panel and the 把字变小吗？ question, with the
director's checks, on the real app (fakes for the devices): run under Xvfb by test_overlays.py.

    xvfb-run -a -s "-screen 0 1920x1920x24" env PYTHONPATH=. python tests/ui/overlay_shots.py OUT [--portrait]

Everything is reached by touches on the real buttons, in elder mode and then in standard type.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


class _HelpBackend:
    """Records the help request as the reference backend would (the panel then says the staff were told)."""

    def request_help(self, screen, at):
        return SimpleNamespace(request_id="H-UI-1")


def main(out: Path, portrait: bool) -> int:
    from kiosk import app as kapp

    font = kapp.find_cjk_font()
    kapp.prepare_kivy(size=kapp.SIZES["portrait" if portrait else "landscape"], dev=False)
    from kivy.clock import Clock

    from kiosk import session as S
    from kiosk.runtime import Runtime, Site
    from sim.fakes import FakeCardReader, FakePrinter

    runtime = Runtime(card_reader=FakeCardReader(), printer=FakePrinter(), backend=_HelpBackend(),
                      site=Site("T-UI-0001", "370102001", "示范镇人社服务站"),
                      settings=S.Settings(inactivity=600, pin=300, warn=15), voice=None,
                      helpdesk=S.HelpDesk(volunteers=(("李明", "13800000000"), ("王芳", "13900000000")),
                                          station_phone="0531-12345678"))
    app = kapp.build_app(runtime, font_path=font)
    prefix = "portrait" if portrait else "landscape"
    result: dict = {}

    def journey(d):
        # elder mode (the default), then standard type after the 把字变小吗？ question: both modes, real taps
        yield d.until_screen("idle")
        yield d.until(lambda: any(x["screen"] == "idle" for x in d.speech), "the idle greeting", timeout=5)
        yield d.shot("01-idle-top-bar")
        yield d.tap("请工作人员帮助")
        yield d.until(lambda: "已通知工作人员，请稍等" in d.texts(), "help request recorded")
        yield d.shot("02-help")
        yield d.tap("关闭")
        yield d.tap("大字模式：开")
        yield d.until(lambda: "把字变小吗？" in d.texts(), "shrink question")
        yield d.shot("03-confirm-shrink")
        yield d.tap("不变，保持大字")
        yield d.until(lambda: "把字变小吗？" not in d.texts(), "question closed")
        yield d.shot("04-closed")
        yield d.tap("大字模式：开")
        yield d.until(lambda: "变小" in d.texts(), "shrink question")
        yield d.tap("变小")
        yield d.until(lambda: not app.view.elder_mode, "standard type")
        yield d.frames(3)
        yield d.shot("05-idle-standard")
        yield d.tap("请工作人员帮助")
        yield d.until(lambda: "已通知工作人员，请稍等" in d.texts(), "help panel")
        yield d.shot("06-help-standard")
        yield d.tap("关闭")
        yield d.tap("大字模式：关")
        yield d.until(lambda: app.view.elder_mode, "elder type again, without a question")
        yield d.frames(3)
        yield d.shot("07-idle-elder-again")

    def done(director):
        result["errors"] = director.errors
        app.stop()

    def start(*_a):
        from sim.director import Director

        director = Director(app, None, out, prefix)
        Clock.schedule_once(lambda _dt: director.run(journey, done), 0.5)

    app.bind(on_start=start)
    app.run()
    report = json.loads((out / f"{prefix}-report.json").read_text(encoding="utf-8"))
    return 1 if result.get("errors") or report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), "--portrait" in sys.argv[2:]))
