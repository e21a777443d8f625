"""A terminal installs the kiosk from its wheel, without test tools: the wheel must carry every data file."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_assets_and_layouts(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, timeout=300, capture_output=True,
    )
    (wheel,) = tmp_path.glob("village_kiosk-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [p.relative_to(ROOT).as_posix() for p in (ROOT / "assets").rglob("*")
               if p.is_file() and p.suffix in {".json", ".toml", ".wav"}]
    shipped += [p.relative_to(ROOT).as_posix() for p in (ROOT / "screens").rglob("*.kv")]
    assert shipped and not [s for s in shipped if s not in names]
    assert "backend/openapi.json" in names
    for package in ("api", "kiosk", "kiosk/cli", "devices", "screens", "backend", "sim", "assets"):
        assert f"{package}/__init__.py" in names
    # test tools stay out of what a terminal needs
    requires = [ln for ln in zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA")))
                .decode().splitlines() if ln.startswith("Requires-Dist:") and "extra ==" not in ln]
    assert not [r for r in requires if any(t in r for t in ("pytest", "hypothesis", "pyright", "ruff"))]
