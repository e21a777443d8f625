"""The config file: the shipped example is valid and complete, and every kind of mistake a technician
can make is reported with the key it concerns and how to fix it."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from api.patterns import ID_PATTERN
from kiosk.config import MAX_DEPTH, MAX_FILE_BYTES, Config, ConfigError, load, parse

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


def _commented_keys(text: str) -> dict[str, object]:
    """Optional keys the example documents as a commented-out line '# key = value', by section."""
    out, section = {}, None
    for line in text.splitlines():
        if line.startswith("[") and line.rstrip().endswith("]"):
            section = line.strip("[] \n")
        elif section and (m := re.fullmatch(r"# ([a-z_]+) = (.+)", line)):
            out[f"{section}.{m[1]}"] = tomllib.loads(f"v = {m[2]}")["v"]
    return out


def test_example_lists_every_key_of_the_schema(example_text: str) -> None:
    commented = _commented_keys(example_text)
    assert _file_keys(tomllib.loads(example_text)) | set(commented) == _schema_keys(Config)


def test_example_comments_out_only_optional_keys_with_a_valid_value(data: dict, example_text: str) -> None:
    commented = _commented_keys(example_text)
    assert set(commented) == {"backend.receipt_base_url"}
    for dotted, value in commented.items():
        section, key = dotted.split(".")
        assert Config.model_fields[section].annotation.model_fields[key].default is None
        data[section][key] = value
    assert parse(data).backend.receipt_base_url == "https://si.example.cn:8444"


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
    ("section", "key", "value", "says", "fix"),
    [
        ("devices", "printer_baud", "fast", "valid integer", "whole number"),
        ("terminal", "elder_mode", "maybe", "valid boolean", "true or false"),
        ("terminal", "id", 370102, "valid string", "quotes"),
        ("timeouts", "pin", [45], "valid number", "write a number"),
        ("backend", "ca", 5, "path", "fix the value"),
    ],
)
def test_wrong_type_is_named(data: dict, section: str, key: str, value: object, says: str, fix: str) -> None:
    data[section][key] = value
    msg = _error(data)
    assert f"[{section}] {key}:" in msg
    assert says in msg
    assert fix in msg


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("terminal", "dev", "yes"),  # no "yes" -> true
        ("terminal", "dev", "true"),
        ("terminal", "elder_mode", 1),  # no 1 -> true
        ("terminal", "shuffle_keypad", 0),
        ("devices", "printer_baud", "9600"),  # no "8" -> 8
        ("devices", "printer_baud", 9600.0),  # no float -> int
        ("devices", "idcard_baud", True),  # no bool -> int
        ("timeouts", "inactivity", "60"),
        ("backend", "read_timeout", True),
        ("terminal", "site_name", 5),  # no number -> string
        ("devices", "scanner_port", False),
    ],
)
def test_values_are_not_coerced_between_types(data: dict, section: str, key: str, value: object) -> None:
    data[section][key] = value
    lines = _error(data).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"kiosk.toml: [{section}] {key}: Input should be")


def test_whole_seconds_are_fine_for_a_number_of_seconds(data: dict) -> None:
    """TOML writes 60 as an integer; a float field takes it (an int is a number, not a coercion)."""
    data["backend"]["connect_timeout"] = 3
    assert parse(data).backend.connect_timeout == 3.0


@pytest.mark.parametrize("key", ["id", "site_id"])
@pytest.mark.parametrize(
    "value",
    ["T 0001", "", "终端一", "T/0001", "T-0001\n", "x" * 65, "T;rm", "T\u200b1", "ｔ1"],
)
def test_terminal_and_site_ids_follow_the_backend_pattern(data: dict, key: str, value: str) -> None:
    assert re.fullmatch(ID_PATTERN, value) is None  # the backend would refuse it too
    data["terminal"][key] = value
    lines = _error(data).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"kiosk.toml: [terminal] {key}:")
    assert "letters, digits and . _ : -" in lines[0]


@pytest.mark.parametrize("value", ["T-370102-0001", "370102001", "a.b_c:d-e", "x" * 64, "0"])
def test_ids_the_backend_accepts_are_accepted(data: dict, value: str) -> None:
    assert re.fullmatch(ID_PATTERN, value)
    data["terminal"]["id"] = data["terminal"]["site_id"] = value
    cfg = parse(data)
    assert cfg.terminal.id == cfg.terminal.site_id == value


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


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("https://kiosk-api.example.cn:8443", "https://kiosk-api.example.cn:8443"),
        ("https://kiosk-api.example.cn/", "https://kiosk-api.example.cn"),
        ("https://xn--fsqu00a.xn--fiqs8s:8443", "https://xn--fsqu00a.xn--fiqs8s:8443"),
        ("https://192.0.2.10:1", "https://192.0.2.10:1"),
        ("https://[2001:db8::1]:65535", "https://[2001:db8::1]:65535"),
    ],
)
def test_backend_url_is_an_https_origin(data: dict, value: str, stored: str) -> None:
    data["backend"]["url"] = value
    assert parse(data).backend.url == stored


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("https://kiosk-api.example.cn:99999", "valid port (1 to 65535)"),
        ("https://kiosk-api.example.cn:0", "valid port"),
        ("https://kiosk-api.example.cn:abc", "DNS name"),
        ("https://kiosk-api.example.cn:", "DNS name"),
        ("https://user:pw@kiosk-api.example.cn", "user:password@"),
        ("https://kiosk-api.example.cn/api", "origin only"),  # the client appends /v1/... to the origin
        ("https://kiosk-api.example.cn//", "origin only"),
        ("https://kiosk-api.example.cn?x=1", "origin only"),
        ("https://kiosk-api.example.cn#top", "origin only"),
        ("https://例子.cn", "xn--"),
        ("https://kiosk api.example.cn", "DNS name"),
        ("https://kiosk-api.example.cn\\evil.cn", "DNS name"),
        ("https://[zz::1]", "IP address"),
        ("https://999.0.2.10", "IP address"),
        ("https://10.1", "IP address"),
        ("ftp://kiosk-api.example.cn", "must start with https://"),
        ("HTTPS://kiosk-api.example.cn", "must start with https://"),
        (8443, "valid string"),
    ],
)
def test_backend_url_refuses_anything_but_an_origin(data: dict, value: object, says: str) -> None:
    data["backend"]["url"] = value
    lines = _error(data).splitlines()
    assert len(lines) == 1 and lines[0].startswith("kiosk.toml: [backend] url:")
    assert says in lines[0]


def test_backend_url_in_dev_mode_is_checked_as_strictly(data: dict) -> None:
    data["terminal"]["dev"] = True
    data["backend"]["url"] = "http://127.0.0.1:99999"
    msg = _error(data)
    assert "[backend] url:" in msg and "valid port (1 to 65535)" in msg


def test_receipt_base_url_refuses_a_dotted_number_that_is_no_ip(data: dict) -> None:
    data["backend"]["receipt_base_url"] = "https://256.0.0.1"
    assert "[backend] receipt_base_url:" in _error(data) and "IP address" in _error(data)


def test_client_cert_and_key_go_together(data):
    data["terminal"]["dev"] = True
    del data["backend"]["client_key"]
    assert "client_cert and client_key go together" in _error(data)


def test_countdown_must_be_shorter_than_the_time_limits(data):
    data.setdefault("timeouts", {}).update({"inactivity": 12, "pin": 30, "warn": 15})
    assert "[timeouts]" in _error(data) and "warn must be shorter" in _error(data)


# ------------------------------------------------------------------ receipt QR origin


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("https://si.example.cn", "https://si.example.cn"),
        ("https://si.example.cn:8443/", "https://si.example.cn:8443"),
        ("https://xn--fsqu00a.xn--fiqs8s", "https://xn--fsqu00a.xn--fiqs8s"),
        ("https://192.0.2.10:8443", "https://192.0.2.10:8443"),
        ("https://[2001:db8::1]", "https://[2001:db8::1]"),
    ],
)
def test_receipt_base_url_is_an_https_origin(data: dict, value: str, stored: str) -> None:
    data["backend"]["receipt_base_url"] = value
    assert parse(data).backend.receipt_base_url == stored


def test_receipt_base_url_is_optional(data: dict) -> None:
    assert "receipt_base_url" not in data["backend"]
    assert parse(data).backend.receipt_base_url is None


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("http://si.example.cn", "https://"),
        ("si.example.cn", "https://"),
        ("https://", "host"),
        ("https://user:pw@si.example.cn", "user:password@"),
        ("https://si.example.cn/receipts", "origin only"),
        ("https://si.example.cn/?x=1", "origin only"),
        ("https://si.example.cn?x=1", "origin only"),
        ("https://si.example.cn#top", "origin only"),
        ("https://si.example.cn:port", "DNS name"),
        ("https://si.example.cn:99999", "valid port (1 to 65535)"),
        ("https://si.example.cn:0", "valid port"),
        ("https://例子.cn", "xn--"),
        ("https://si example.cn", "DNS name"),
        ("https://si.example.cn\\evil.cn", "DNS name"),
        ("https://[zz::1]", "IP address"),
        ("https://si.example.cn//", "origin only"),
        (443, "valid string"),
    ],
)
def test_receipt_base_url_refuses_anything_but_an_origin(data: dict, value: object, says: str) -> None:
    data["backend"]["receipt_base_url"] = value
    lines = _error(data).splitlines()
    assert len(lines) == 1 and lines[0].startswith("kiosk.toml: [backend] receipt_base_url:")
    assert says in lines[0]


# ------------------------------------------------------------------ hostile files: deep, big, odd keys

N = 10_000
DEEP = {
    "arrays": "[terminal]\nid = " + "[" * N + "]" * N + "\n",
    "inline_tables": "[terminal]\nid = " + "{a = " * N + "1" + "}" * N + "\n",
    "mixed_arrays_and_tables": "x = " + "[{a = " * (N // 2) + "1" + "}]" * (N // 2) + "\n",
    "dotted_table_header": "[" + ".".join(["terminal"] + ["a"] * N) + "]\n",
    "dotted_key": "terminal.id" + ".a" * N + " = 1\n",
    "nested_arrays_of_tables": "".join("[[" + ".".join(["a"] * (i + 1)) + "]]\n" for i in range(200)),
}


@pytest.mark.parametrize("kind", list(DEEP))
def test_deeply_nested_file_is_a_config_error_not_a_traceback(tmp_path: Path, kind: str) -> None:
    text = DEEP[kind]
    assert len(text.encode()) <= MAX_FILE_BYTES  # refused for its depth, not its size
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load(p)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and msg.startswith(f"{p}: ")
    assert "nested" in msg and "[section] key = value" in msg


def test_deeply_nested_data_from_another_source_is_a_config_error(data: dict) -> None:
    deep: dict = {}
    inner = deep
    for _ in range(N):
        inner["a"] = {}
        inner = inner["a"]
    data["terminal"]["id"] = deep
    msg = _error(data)
    assert msg.startswith("kiosk.toml: [terminal] id.a ...: nested more than") and "\n" not in msg


def test_nesting_within_the_limit_is_judged_by_the_schema(data: dict) -> None:
    value: object = 1
    for _ in range(MAX_DEPTH - 2):
        value = [value]
    data["timeouts"]["pin"] = value
    assert "[timeouts] pin: Input should be a valid number" in _error(data)


def test_oversized_file_is_refused_unread(tmp_path: Path, example_text: str) -> None:
    p = _write(tmp_path, example_text + "#" * MAX_FILE_BYTES + "\n")
    with pytest.raises(ConfigError) as e:
        load(p)
    assert str(e.value) == f"{p}: file larger than {MAX_FILE_BYTES // 1024} KiB, too big for a kiosk config — check the path"


def test_key_with_control_characters_stays_on_one_line(tmp_path: Path, example_text: str) -> None:
    p = _write(tmp_path, example_text.replace("[timeouts]\n", '[timeouts]\n"pin\\nextra\\u001b[2J" = 1\n', 1))
    with pytest.raises(ConfigError) as e:
        load(p)
    lines = str(e.value).splitlines()
    assert len(lines) == 1 and "\x1b" not in lines[0]
    assert "[timeouts] pin\\nextra\\x1b[2J: Extra inputs are not permitted" in lines[0]


def test_a_very_long_unknown_key_is_cut_in_the_message(data: dict) -> None:
    data["devices"]["k" * 5000] = 1
    line = _error(data)
    assert len(line) < 200 and "[devices] kkk" in line and "..." in line


def _kiosk_run(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kiosk", "run", "--config", str(config)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda t: DEEP["arrays"], "nested too deeply"),
        (lambda t: DEEP["dotted_key"], "nested more than"),
        (lambda t: t.replace("dev = false", 'dev = "no"'), "[terminal] dev: Input should be a valid boolean"),
        (lambda t: t.replace('id = "T-370102-0001"', 'id = "T 370102 0001"'), "[terminal] id: String should match"),
    ],
    ids=["deep_arrays", "deep_dotted_key", "string_for_bool", "id_with_spaces"],
)
def test_kiosk_run_exits_78_with_one_line_per_problem(tmp_path: Path, example_text: str, change, says: str) -> None:
    p = _write(tmp_path, change(example_text))
    r = _kiosk_run(p)
    assert r.returncode == 78, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    header, *problems = r.stderr.strip().splitlines()
    assert header == "configuration error:"
    assert len(problems) == 1 and problems[0].startswith(f"{p}: ") and says in problems[0]


def test_the_voice_follows_the_config(data: dict, tmp_path: Path) -> None:
    from kiosk.cli import make_voice
    from kiosk.voice import CLIPS_DIR

    data["terminal"] |= {"voice_volume": 40, "voice_clips": str(tmp_path / "clips"), "elder_mode": True}
    voice = make_voice(parse(data))
    assert voice.volume == 40
    assert voice.clips_dirs == [tmp_path / "clips", CLIPS_DIR]  # the station's recordings win
    data["terminal"] |= {"voice_volume": 101}
    assert "voice_volume" in _error(data)
    data["terminal"] |= {"voice_volume": "40"}  # strict: no "40" -> 40
    assert "voice_volume" in _error(data)


# ------------------------------------------------------------------ [help], attract_interval, the saved volume


def test_the_example_lists_fictional_helpers(data: dict) -> None:
    h = parse(data).help
    assert [(v.name, v.phone) for v in h.volunteers] == [("张秀英", "13800001234"), ("李建国", "13900005678")]
    assert h.station_phone == "0531-12345678"
    del data["help"]
    assert parse(data).help.volunteers == [] and parse(data).help.station_phone == ""  # the section is optional


@pytest.mark.parametrize("change, says", [
    ({"volunteers": [{"name": "张秀英"}]}, "[help] volunteers.0 ...: Field required — add it"),
    ({"volunteers": [{"name": "张秀英", "phone": "138 0000 1234"}]}, "e.g. \"13800001234\""),
    ({"volunteers": [{"name": "张秀英", "phone": 13800001234}]}, "put the value in \"quotes\""),
    ({"volunteers": [{"name": "", "phone": "12333"}]}, "at least 1 character"),
    ({"volunteers": [{"name": "张\n英", "phone": "12333"}]}, "one line"),
    ({"volunteers": [{"name": "张秀英", "phone": "12333", "email": "x"}]}, "remove it or check its spelling"),
    ({"volunteers": [{"name": f"人{i}", "phone": "12333"} for i in range(7)]}, "at most 6"),
    ({"volunteers": {"name": "张秀英", "phone": "12333"}}, "[help] volunteers"),
    ({"station_phone": "call 12333"}, "[help] station_phone"),
    ({"station_phone": "-12333"}, "[help] station_phone"),
    ({"hotline": "12333"}, "[help] hotline"),
])
def test_help_is_checked_strictly(data: dict, change: dict, says: str) -> None:
    data["help"] = {**data["help"], **change}
    assert says in _error(data)


@pytest.mark.parametrize("value, ok", [(0, True), (30, True), (600, True), (75, True), (29, False), (1, False),
                                       (601, False), (-1, False), ("75", False), (True, False)])
def test_attract_interval_is_off_or_gentle(data: dict, value: object, ok: bool) -> None:
    data["terminal"]["attract_interval"] = value
    if ok:
        assert parse(data).terminal.attract_interval == value
    else:
        assert "[terminal] attract_interval" in _error(data)


def _cfg_file(tmp_path: Path, example_text: str) -> Path:
    data_dir = tmp_path / "data"
    text = example_text.replace('data_dir = "/var/lib/kiosk"', f'data_dir = "{data_dir}"')
    return _write(tmp_path, text)


def test_the_saved_volume_wins_and_leaves_the_config_as_it_was(tmp_path: Path, example_text: str) -> None:
    from kiosk.cli import make_voice
    from kiosk.config import VOLUME_FILE, reset_volume, saved_volume, set_volume

    path = _cfg_file(tmp_path, example_text)
    before = path.read_bytes()
    cfg = load(path)
    assert saved_volume(cfg) == 100
    with pytest.raises(FileNotFoundError, match="first start"):
        set_volume(path, 35)  # the data folder is the kiosk's to make, with its owner and mode
    (tmp_path / "data").mkdir()
    written = set_volume(path, 35)
    assert written == tmp_path / "data" / VOLUME_FILE and path.read_bytes() == before
    assert tomllib.loads(written.read_text()) == {"terminal": {"voice_volume": 35}}
    assert saved_volume(cfg) == 35 and make_voice(cfg).volume == 35
    assert not [p for p in written.parent.iterdir() if p.name.endswith(".tmp")]  # no temporary file left
    assert oct(written.stat().st_mode & 0o777) == "0o644"
    assert reset_volume(path) and not reset_volume(path)
    assert saved_volume(cfg) == 100


@pytest.mark.parametrize("value", [-1, 101, 50.5, "50", True, None])
def test_a_volume_out_of_range_is_refused_and_nothing_written(tmp_path: Path, example_text: str, value) -> None:
    from kiosk.config import set_volume

    path = _cfg_file(tmp_path, example_text)
    with pytest.raises(ValueError, match="0 to 100"):
        set_volume(path, value)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("content", [
    "[terminal]\nvoice_volume = 300\n", "[terminal]\nvoice_volume = \"40\"\n", "not toml [", "",
    "[terminal]\nvoice_volume = 40\nid = \"T-x\"\n", "[backend]\nurl = \"https://evil\"\n", b"\xff\xfe",
    "# " + "x" * 5000 + "\n[terminal]\nvoice_volume = 40\n",
])
def test_a_broken_saved_volume_is_ignored_with_a_warning(tmp_path: Path, example_text: str, content, caplog) -> None:
    from kiosk.config import saved_volume, volume_path

    cfg = load(_cfg_file(tmp_path, example_text))
    p = volume_path(cfg)
    p.parent.mkdir(parents=True)
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert saved_volume(cfg) == 100
    assert "saved volume ignored" in caplog.text


def test_kiosk_voice_volume_sets_shows_and_resets(tmp_path: Path, example_text: str, capsys) -> None:
    from kiosk.cli import main

    path = str(_cfg_file(tmp_path, example_text))
    assert main(["voice", "volume", "--config", path, "60"]) == 73  # no data folder yet
    assert "first start" in capsys.readouterr().err
    (tmp_path / "data").mkdir()
    assert main(["voice", "volume", "--config", path]) == 0
    assert capsys.readouterr().out.strip() == "100 ([terminal] voice_volume)"
    assert main(["voice", "volume", "--config", path, "60"]) == 0
    assert "volume 60 saved in" in capsys.readouterr().out
    assert main(["voice", "volume", "--config", path]) == 0
    assert capsys.readouterr().out.startswith("60 (saved in ")
    for bad in ("101", "loud", "-5"):
        assert main(["voice", "volume", "--config", path, bad]) == 2
        assert "0 to 100" in capsys.readouterr().err
    assert main(["voice", "volume", "--config", path, "--reset"]) == 0
    assert "removed" in capsys.readouterr().out
    assert main(["voice", "volume", "--config", path]) == 0
    assert capsys.readouterr().out.startswith("100 ")


def test_the_session_gets_the_helpers_the_attract_interval_and_the_volume_file(data: dict) -> None:
    from kiosk import session as S
    from kiosk.cli import session_options

    data["terminal"]["attract_interval"] = 90
    opts = session_options(parse(data))
    assert opts["helpdesk"] == S.HelpDesk((("张秀英", "13800001234"), ("李建国", "13900005678")), "0531-12345678")
    assert opts["settings"] == S.Settings(inactivity=60, pin=45, warn=15, attract=90.0)
    assert str(opts["volume_file"]) == "/var/lib/kiosk/voice.toml"
