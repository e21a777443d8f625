"""The config file: the shipped example is valid and complete, and every kind of mistake a technician
can make is reported with the key it concerns and how to fix it."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from kiosk.config import Config, ConfigError, load, parse

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "assets" / "config" / "kiosk.example.toml"
EXAMPLE_PKI = "/etc/kiosk/pki/"


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """Stand-ins for the enrolment files the example points at (contents are not read by the config)."""
    d = tmp_path / "pki"
    d.mkdir()
    for name in ("ca.pem", "terminal.pem", "terminal.key"):
        (d / name).write_text("placeholder\n")
    return d


@pytest.fixture
def example_text(pki: Path) -> str:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert EXAMPLE_PKI in text
    return text.replace(EXAMPLE_PKI, f"{pki}/")


@pytest.fixture
def data(example_text: str) -> dict:
    return tomllib.loads(example_text)


def _write(tmp_path: Path, text: str | bytes, name: str = "kiosk.toml") -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def _error(data: dict, source: str = "kiosk.toml") -> str:
    with pytest.raises(ConfigError) as e:
        parse(data, source)
    return str(e.value)


def _schema_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys |= _schema_keys(ann, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def _file_keys(d: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in d.items():
        keys |= _file_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
    return keys


# ------------------------------------------------------------------ the shipped example


def test_example_loads_after_fixing_paths(tmp_path: Path, example_text: str, pki: Path) -> None:
    cfg = load(_write(tmp_path, example_text))
    assert cfg.terminal.id == "T-370102-0001"
    assert cfg.terminal.site_name == "示范镇人社服务站"
    assert cfg.terminal.dev is False  # the example is a production config: https and client certs
    assert cfg.backend.url.startswith("https://")
    assert cfg.backend.client_cert == pki / "terminal.pem"
    assert cfg.devices.printer_port == "/dev/kiosk-printer"
    assert cfg.devices.scanner_terminator == "\r"


def test_example_lists_every_key_of_the_schema(example_text: str) -> None:
    assert _file_keys(tomllib.loads(example_text)) == _schema_keys(Config)


def test_example_values_are_the_schema_defaults(data: dict) -> None:
    """So the example documents the defaults, not different values a technician would copy by accident."""
    for section, model in (("devices", Config.model_fields["devices"].default),
                           ("timeouts", Config.model_fields["timeouts"].default)):
        assert data[section] == model.model_dump(), section
    t = Config.model_validate(data).terminal
    assert (t.orientation, t.locale, t.dev, t.elder_mode) == ("landscape", "zh_CN", False, True)


def test_example_as_shipped_names_the_missing_enrolment_files(tmp_path: Path) -> None:
    """Unfixed paths on a machine that is not enrolled: each file is named with the fix."""
    missing = not Path(EXAMPLE_PKI).exists()
    if not missing:
        pytest.skip("this machine has /etc/kiosk/pki")
    with pytest.raises(ConfigError) as e:
        load(EXAMPLE)
    msg = str(e.value)
    for key in ("ca", "client_cert", "client_key"):
        assert f"[backend] {key}: file {EXAMPLE_PKI}" in msg
    assert "re-enrol" in msg


# ------------------------------------------------------------------ schema errors: key and fix


def test_missing_key_is_named_with_add_it(data: dict) -> None:
    del data["terminal"]["id"]
    msg = _error(data)
    assert "kiosk.toml: [terminal] id: Field required — add it" in msg


def test_missing_section_is_named(data: dict) -> None:
    del data["backend"]
    assert "[backend]: Field required — add it" in _error(data)


def test_unknown_key_typo_is_named_with_spelling_hint(data: dict) -> None:
    data["timeouts"]["inactivty"] = data["timeouts"].pop("inactivity")
    msg = _error(data)
    assert "[timeouts] inactivty:" in msg
    assert "remove it or check its spelling" in msg


def test_unknown_section_is_named(data: dict) -> None:
    data["printer"] = {"port": "/dev/ttyUSB0"}
    msg = _error(data)
    assert "[printer]" in msg and "remove it or check its spelling" in msg


@pytest.mark.parametrize(
    ("section", "key", "value", "says"),
    [
        ("devices", "printer_baud", "fast", "valid integer"),
        ("terminal", "elder_mode", "maybe", "valid boolean"),
        ("terminal", "id", 370102, "valid string"),
        ("timeouts", "pin", [45], "valid number"),
        ("backend", "ca", 5, "path"),
    ],
)
def test_wrong_type_is_named(data: dict, section: str, key: str, value: object, says: str) -> None:
    data[section][key] = value
    msg = _error(data)
    assert f"[{section}] {key}:" in msg
    assert says in msg
    assert "fix the value" in msg


@pytest.mark.parametrize(
    ("section", "key", "value", "limit"),
    [
        ("timeouts", "inactivity", 5, "greater than or equal to 10"),
        ("timeouts", "inactivity", 601, "less than or equal to 600"),
        ("timeouts", "warn", 1, "greater than or equal to 3"),
        ("timeouts", "card_read", 0, "greater than 0"),
        ("backend", "read_timeout", 500, "less than or equal to 120"),
        ("devices", "printer_baud", -9600, "greater than 0"),
        ("terminal", "site_name", "", "at least 1 character"),
    ],
)
def test_out_of_range_names_key_and_limit(data: dict, section: str, key: str, value: object, limit: str) -> None:
    data[section][key] = value
    msg = _error(data)
    assert f"[{section}] {key}:" in msg
    assert limit in msg


@pytest.mark.parametrize(
    ("section", "key", "value", "allowed"),
    [
        ("devices", "printer_profile", "escpos", "'native-qr'"),
        ("terminal", "orientation", "upright", "'portrait'"),
        ("terminal", "locale", "zh-CN", "'zh_CN'"),
    ],
)
def test_bad_literal_lists_the_allowed_values(data: dict, section: str, key: str, value: str, allowed: str) -> None:
    data[section][key] = value
    msg = _error(data)
    assert f"[{section}] {key}:" in msg
    assert allowed in msg
    assert "use one of the values listed" in msg


def test_url_without_scheme_is_refused(data: dict) -> None:
    data["backend"]["url"] = "kiosk-api.example.cn:8443"
    msg = _error(data)
    assert "[backend] url:" in msg and "must start with https://" in msg


def test_every_problem_is_reported_at_once(data: dict) -> None:
    del data["terminal"]["site_id"]
    data["devices"]["printer_profile"] = "x"
    data["timeouts"]["pin"] = 1
    lines = _error(data).splitlines()
    assert len(lines) == 3
    assert all(line.startswith("kiosk.toml: [") and " — " in line for line in lines)


# ------------------------------------------------------------------ security: https, enrolment files


def test_plain_http_is_refused_outside_dev(data: dict) -> None:
    data["backend"]["url"] = "http://kiosk-api.example.cn:8080"
    msg = _error(data)
    assert "[backend] url: plain http is refused" in msg
    assert "use https://" in msg and "dev = true" in msg


def test_missing_client_certificate_is_refused_outside_dev(data: dict) -> None:
    del data["backend"]["client_cert"]
    del data["backend"]["client_key"]
    msg = _error(data)
    assert "[backend] client_cert/client_key: missing" in msg
    assert "enrol the terminal" in msg


@pytest.mark.parametrize("key", ["ca", "client_cert", "client_key"])
def test_missing_certificate_file_is_named(data: dict, pki: Path, key: str) -> None:
    path = Path(data["backend"][key])
    path.unlink()
    msg = _error(data)
    assert f"[backend] {key}: file {path} not found" in msg
    assert "check the path or re-enrol" in msg
    assert msg.count("not found") == 1  # the other two files are fine and not mentioned


def test_certificate_path_that_is_a_directory_is_refused(data: dict, pki: Path) -> None:
    data["backend"]["ca"] = str(pki)
    assert f"[backend] ca: file {pki} not found" in _error(data)


def test_dev_mode_allows_http_and_no_client_certificate(data: dict) -> None:
    data["terminal"]["dev"] = True
    data["backend"]["url"] = "http://127.0.0.1:8080/"
    del data["backend"]["client_cert"]
    del data["backend"]["client_key"]
    cfg = parse(data)
    assert cfg.terminal.dev is True
    assert cfg.backend.url == "http://127.0.0.1:8080"  # trailing slash dropped
    assert cfg.backend.client_cert is None


def test_dev_mode_still_requires_the_ca_file(data: dict) -> None:
    """Dev mode relaxes https and enrolment, not the existence of the files it is given."""
    data["terminal"]["dev"] = True
    data["backend"]["ca"] = "/nonexistent/ca.pem"
    assert "[backend] ca: file /nonexistent/ca.pem not found" in _error(data)


# ------------------------------------------------------------------ the file itself


def test_invalid_toml_names_file_and_line(tmp_path: Path, example_text: str) -> None:
    broken = example_text.replace('locale = "zh_CN"', 'locale = zh_CN', 1)
    p = _write(tmp_path, broken)
    line = broken.splitlines().index("locale = zh_CN") + 1
    with pytest.raises(ConfigError) as e:
        load(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: not valid TOML")
    assert f"line {line}" in msg
    assert "fix the syntax at that line" in msg


def test_file_that_is_not_utf8_is_reported_as_invalid(tmp_path: Path, example_text: str) -> None:
    p = _write(tmp_path, example_text.encode("gb18030"))  # saved by a Windows editor in GBK
    with pytest.raises(ConfigError) as e:
        load(p)
    assert "not valid TOML" in str(e.value) and str(p) in str(e.value)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    p = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as e:
        load(p)
    msg = str(e.value)
    assert msg == f"{p}: cannot read the config file (No such file or directory) — check the path"


def test_directory_instead_of_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load(tmp_path)
    assert "cannot read the config file (Is a directory) — check the path" in str(e.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_file_without_read_permission_is_unreadable(tmp_path: Path, example_text: str) -> None:
    p = _write(tmp_path, example_text)
    p.chmod(0)
    with pytest.raises(ConfigError) as e:
        load(p)
    assert "Permission denied" in str(e.value)


def test_file_level_errors_carry_the_file_name(tmp_path: Path, example_text: str) -> None:
    p = _write(tmp_path, example_text.replace("pin = 45", "pin = 4"))
    with pytest.raises(ConfigError) as e:
        load(p)
    assert str(e.value).startswith(f"{p}: [timeouts] pin:")


def test_parse_does_not_change_its_input(data: dict) -> None:
    before = copy.deepcopy(data)
    parse(data)
    assert data == before


def test_cli_exits_78_with_the_message_on_a_bad_config(tmp_path: Path, example_text: str) -> None:
    p = _write(tmp_path, example_text.replace('printer_profile = "native-qr"', 'printer_profile = "fast"'))
    r = subprocess.run(
        [sys.executable, "-m", "kiosk", "devices", "--config", str(p)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 78
    assert "configuration error:" in r.stderr
    assert f"{p}: [devices] printer_profile:" in r.stderr


@pytest.mark.parametrize("url", ["https://", "https://host/?x=1", "https://host#frag"])
def test_backend_url_needs_a_host_and_no_query(data, url):
    data["backend"]["url"] = url
    msg = _error(data)
    assert "[backend] url" in msg and "host" in msg


def test_client_cert_and_key_go_together(data):
    data["terminal"]["dev"] = True
    del data["backend"]["client_key"]
    assert "client_cert and client_key go together" in _error(data)


def test_countdown_must_be_shorter_than_the_time_limits(data):
    data.setdefault("timeouts", {}).update({"inactivity": 12, "pin": 30, "warn": 15})
    assert "[timeouts]" in _error(data) and "warn must be shorter" in _error(data)
