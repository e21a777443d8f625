from pathlib import Path

from fontTools.ttLib import TTFont

from kiosk.app import find_cjk_font


def test_the_simplified_chinese_face_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = find_cjk_font()
    font = TTFont(path, lazy=True)
    assert font["name"].getDebugName(1).endswith("SC")  # not the collection's first (Japanese) face
    assert ord("兰") in font.getBestCmap() and 0x20BB7 in font.getBestCmap()  # 𠮷 of a demo name
    assert find_cjk_font() == path and Path(path).parent == tmp_path / "kiosk-fonts"  # cached, not redone
