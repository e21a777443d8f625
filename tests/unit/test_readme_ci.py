"""README's two commands and CI's command must never drift apart."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _commands(text: str) -> list[str]:
    return [m.strip() for m in re.findall(r"^    (bash scripts/\S+\.sh)\s*$", text, re.M)]


def test_readme_has_exactly_the_two_commands():
    assert _commands((ROOT / "README.md").read_text()) == ["bash scripts/demo.sh", "bash scripts/test.sh"]


def test_ci_runs_the_readme_test_command():
    ci = [ln.strip() for ln in (ROOT / ".ci/run").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert "bash scripts/test.sh" in ci
    for script in ("demo.sh", "test.sh"):
        assert "bash scripts/setup.sh" in (ROOT / "scripts" / script).read_text()


def test_the_test_command_enforces_layers_and_types():
    lines = [ln.split("#")[0].strip() for ln in (ROOT / "scripts/test.sh").read_text().splitlines()]
    for tool in (".venv/bin/ruff check .", ".venv/bin/lint-imports", ".venv/bin/pyright"):
        assert tool in lines
    assert lines.index(".venv/bin/pyright") < next(i for i, ln in enumerate(lines) if "pytest" in ln)
