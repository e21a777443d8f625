"""Refresh the screenshots in the resident and volunteer guides (docs/img/) from a scripted demo run.

    .venv/bin/kiosk demo --out /tmp/demo                      # the screenshots (both orientations, both modes)
    xvfb-run -a -s "-screen 0 1920x1920x24" env PYTHONPATH=. .venv/bin/python tests/ui/overlay_shots.py /tmp/demo/screens --portrait
    .venv/bin/python scripts/guide_images.py /tmp/demo/screens

Each picture is scaled to half size and reduced to a 64-colour palette (the screens are flat colours and text), so
the guides stay light in the repository.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "docs" / "img"

# guide picture -> the demo screenshot it is made from
PICTURES = {
    "idle.png": "portrait-pension-01-idle.png",
    "pin.png": "portrait-pension-03-pin.png",
    "pension.png": "portrait-pension-06-pension.png",
    "service-info.png": "portrait-filings-30-employment_registration-a-service-page.png",
    "question-keypad.png": "portrait-filings-30-employment_registration-q1.png",
    "review.png": "portrait-filings-30-employment_registration-b-review.png",
    "filed.png": "portrait-filings-30-employment_registration-c-filed.png",
    "rating.png": "portrait-filings-30-employment_registration-d-rating.png",
    "countdown.png": "landscape-faults-18-countdown.png",
    "help.png": "portrait-02-help.png",
    "shrink-question.png": "portrait-03-confirm-shrink.png",
    "standard-type.png": "portrait-pension-standard-06-pension.png",
}


def main(screens: Path) -> int:
    DEST.mkdir(parents=True, exist_ok=True)
    missing = [src for src in PICTURES.values() if not (screens / src).exists()]
    if missing:
        print(f"not in {screens}: {', '.join(missing)}", file=sys.stderr)
        return 1
    for name, src in PICTURES.items():
        im = Image.open(screens / src).convert("RGB")
        im = im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS)
        im.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(DEST / name, optimize=True)
        print(f"{DEST / name}: {(DEST / name).stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])) if len(sys.argv) == 2 else 2)
