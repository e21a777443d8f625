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


def _subrs(font) -> int:
    cff = font["CFF "].cff
    fds = getattr(cff.topDictIndex[0], "FDArray", None) or [cff.topDictIndex[0]]
    return len(cff.GlobalSubrs) + sum(len(getattr(fd.Private, "Subrs", [])) for fd in fds)


def _outlines(font) -> dict:
    from fontTools.pens.recordingPen import DecomposingRecordingPen

    glyphs = font.getGlyphSet()
    out = {}
    for name in font.getGlyphOrder():
        pen = DecomposingRecordingPen(glyphs)
        glyphs[name].draw(pen)
        out[name] = pen.value
    return out


def test_the_flat_face_has_the_same_outlines_and_no_subroutines(tmp_path, monkeypatch):
    from fontTools import subset

    from kiosk.app import flat_face_path, make_flat_face

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    font = TTFont(find_cjk_font())
    sub = subset.Subsetter(subset.Options())
    sub.populate(text="请插入社保卡王秀兰0123456789")  # a small face that still has subroutines
    sub.subset(font)
    small = tmp_path / "small.otf"
    font.save(str(small))
    assert _subrs(TTFont(str(small))) > 0

    flat = make_flat_face(str(small))
    assert Path(flat) == flat_face_path(str(small))
    assert _subrs(TTFont(flat)) == 0
    assert _outlines(TTFont(flat)) == _outlines(TTFont(str(small)))


def test_a_fresh_flat_face_is_preferred_and_a_stale_one_ignored(tmp_path, monkeypatch):
    import os
    import shutil

    from kiosk.app import flat_face_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    face = find_cjk_font()
    flat = flat_face_path(face)
    shutil.copy(face, flat)  # stands in for the slow real one
    assert find_cjk_font() == str(flat)
    old = Path(face).stat().st_mtime - 60
    os.utime(flat, (old, old))  # made from an older face (the font package was updated since)
    assert find_cjk_font() == face
