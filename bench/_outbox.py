"""Shared by the outbox benchmarks: the backend as a process of its own (the reference backend, or the filing
stub of the tests when the backend has no /v1/filings yet), a TCP proxy that plays a bad network, answers
made from the catalog's own schemas, images, and counting what the backend holds."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import random
import re
import select
import shlex
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
REAL_CMD = "{python} -m backend --data {data} --port {port} --verify-port 0"
STUB_CMD = "{python} -m tests.e2e.filing_stub --data {data} --port {port}"
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def people() -> list[tuple[str, str]]:
    cards = json.loads((ROOT / "assets" / "demo" / "personas.json").read_text(encoding="utf-8"))["cards"]
    return [(c["ssn"], c["name"]) for c in cards]


def backend_command(kind: str, root: Path) -> str:
    """The command line of the backend: `real`, `stub`, or `auto` (real when it serves POST /v1/filings)."""
    if kind == "stub":
        return STUB_CMD
    if kind == "auto" and not has_filings(root):
        print("the backend here has no POST /v1/filings yet: using the filing stub (tests/e2e/filing_stub.py)")
        return STUB_CMD
    cmd = REAL_CMD
    helptext = subprocess.run([PY, "-m", "backend", "--help"], capture_output=True, text=True, cwd=root,
                              env={**os.environ, "PYTHONPATH": str(root)}, timeout=60).stdout
    if "--worklist-port" in helptext:
        cmd += " --worklist-port 0"  # its default is a fixed port: two backends would collide
    return cmd


def has_filings(root: Path) -> bool:
    code = ("import backend.app as a, inspect, sys; "
            "sys.exit(0 if '\"/v1/filings\"' in inspect.getsource(a) else 1)")
    return subprocess.run([PY, "-c", code], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                          capture_output=True, timeout=60).returncode == 0


class BackendProc:
    """The backend as a child process (killable with SIGKILL), always on the same port."""

    def __init__(self, cmd: str, data: Path, port: int, root: Path, env: dict[str, str] | None = None) -> None:
        self.cmd = cmd.format(python=shlex.quote(PY), data=shlex.quote(str(data)), port=port)
        self.data, self.port, self.root = data, port, root
        self.env = {**os.environ, "PYTHONPATH": str(root), **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log = data.parent / f"{data.name}.log"
        self.ca = self.cert = self.key = ""

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(shlex.split(self.cmd), stdout=out, stderr=subprocess.STDOUT, cwd=self.root,
                                         env=self.env, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            text = self.log.read_bytes()[offset:].decode("utf-8", "replace")
            if "backend listening on" in text and "client key:" in text:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"backend did not start: {self.cmd}\n{text[-2000:]}")
            time.sleep(0.05)  # the backend signals readiness only by this line
        for label, attr in (("CA:", "ca"), ("client cert:", "cert"), ("client key:", "key")):
            m = re.search(rf"{re.escape(label)}\s+(\S+)", text)
            if m:
                setattr(self, attr, m.group(1))

    def kill(self) -> None:
        if self.up:
            self.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            self.proc.wait(10)  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.up:
            self.proc.terminate()  # type: ignore[union-attr]
            try:
                self.proc.wait(15)  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                self.kill()


def held_by_backend(data: Path) -> Counter[str]:
    """Local numbers the backend has filed, with how many rows each (any table with a local_number column
    in any SQLite file under its data folder: the reference backend's and the stub's)."""
    counts: Counter[str] = Counter()
    for db_path in data.glob("*.sqlite3"):
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        try:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for t in tables:
                cols = [r[1] for r in db.execute(f'PRAGMA table_info("{t}")')]
                if "local_number" in cols and t != "ratings":
                    for n, c in db.execute(
                        f'SELECT local_number, COUNT(*) FROM "{t}" WHERE local_number IS NOT NULL GROUP BY local_number'
                    ):
                        counts[n] += c
        finally:
            db.close()
    return counts


# --- a network that misbehaves --------------------------------------------------------------------------

MODES = ("pass", "refuse", "blackhole", "cut_answer")


class Proxy:
    """TCP proxy, a thread per connection. pass: forwards; refuse: resets every new connection at once;
    blackhole: accepts and never answers; cut_answer: forwards the request, then resets the connection when
    the answer comes back (the work is done, the answer lost). TLS passes through untouched (mutual TLS is
    end to end), so "the request" is the client's third write: 1 ClientHello, 2 its certificate, 3+ requests."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.mode = "pass"
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.5)
        self.port = self._listener.getsockname()[1]
        self.cut = 0  # answers lost on purpose

    def start(self) -> Proxy:
        threading.Thread(target=self._accept, daemon=True, name="proxy").start()
        return self

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _reset(*socks: socket.socket) -> None:
        for s in socks:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
                s.close()
            except OSError:
                pass

    def _serve(self, client: socket.socket) -> None:
        mode = self.mode
        if mode == "refuse":
            self._reset(client)
            return
        if mode == "blackhole":
            while not self._stop.is_set():
                if select.select([client], [], [], 0.5)[0]:
                    try:
                        if not client.recv(65536):
                            break
                    except OSError:
                        break
            self._reset(client)
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
        except OSError:
            self._reset(client)
            return
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle stalls added by the proxy
        writes = 0
        try:
            while not self._stop.is_set():
                ready = select.select([client, upstream], [], [], 0.5)[0]
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is client:
                        writes += 1
                        upstream.sendall(data)
                    elif self.mode == "cut_answer" and writes >= 3:
                        self.cut += 1
                        return
                    else:
                        client.sendall(data)
        except OSError:
            pass
        finally:
            self._reset(client, upstream)

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()


# --- answers from the catalog, and images --------------------------------------------------------------------


def jpeg_bytes(size: int, seed: int) -> bytes:
    """A JPEG that decodes, close to `size` bytes (noise does not compress), unique per seed."""
    from PIL import Image

    rnd = random.Random(seed)
    side = 64
    best = b""
    while True:
        img = Image.frombytes("RGB", (side, side), rnd.randbytes(side * side * 3))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        data = buf.getvalue()
        if len(data) > size:
            return best or data
        best = data
        side = int(side * 1.15) + 1


def png_bytes(size: int, seed: int) -> bytes:
    from PIL import Image

    rnd = random.Random(seed)
    side = 32
    best = b""
    while True:
        img = Image.frombytes("L", (side, side), rnd.randbytes(side * side))
        buf = io.BytesIO()
        img.save(buf, "PNG")
        data = buf.getvalue()
        if len(data) > size:
            return best or data
        best = data
        side = int(side * 1.1) + 1


_ATTACH_WIDGETS = ("document", "face", "signature")


def _value(name: str, prop: dict, person: tuple[str, str], today: dt.date) -> Any:
    prefill = prop.get("x-prefill")
    if prefill == "name":
        return person[1]
    if prefill == "id_number":
        return person[0]
    if prefill == "birth_date":
        s = person[0]
        return f"{s[6:10]}-{s[10:12]}-{s[12:14]}"
    if prefill == "gender":
        return "female" if int(person[0][16]) % 2 == 0 else "male"
    if "oneOf" in prop:
        return prop["oneOf"][0]["const"]
    if "enum" in prop:
        return prop["enum"][0]
    t = prop.get("type")
    if t == "boolean":
        return False
    if t == "integer":
        return int(prop.get("minimum", 1))
    if prop.get("format") == "date":
        return (today - dt.timedelta(days=1)).isoformat()
    for candidate in ("13912345678", "10000", "1", "A"):
        if re.search(prop.get("pattern", ""), candidate):
            return candidate
    return "1"


class FilingMaker:
    """Bodies for put_filing from the backend's catalog: a service without attachments for plain filings and
    one with a single attachment widget for the large ones; with the stub (no forms) a generic body."""

    def __init__(self, services: list[dict], attach_size: int = 300 * 1024) -> None:
        self.people = people()
        self.attach_size = attach_size
        self.today = dt.date.today()
        plain = [s for s in services if s.get("level") == "id_card" and not s.get("online_only")
                 and s.get("form", {}).get("properties") and not self._attach_fields(s)]
        one = [s for s in services if s.get("level") == "id_card" and not s.get("online_only")
               and len(self._attach_fields(s)) == 1 and self._attach_fields(s)[0][1] != "face"]
        self.plain = plain[0] if plain else None
        self.attached = one[0] if one else None
        self._big: dict[str, bytes] = {}

    @staticmethod
    def _attach_fields(service: dict) -> list[tuple[str, str]]:
        props = service.get("form", {}).get("properties", {})
        return [(k, p.get("x-widget")) for k, p in props.items() if p.get("x-widget") in _ATTACH_WIDGETS]

    def _image(self, widget: str, i: int) -> tuple[bytes, str]:
        kind = "png" if widget == "signature" else "jpeg"
        if kind not in self._big:
            self._big[kind] = (png_bytes if kind == "png" else jpeg_bytes)(self.attach_size - 64, 7)
        base = self._big[kind]
        # unique bytes per filing, same size, still a valid image: vary a trailing byte after the image's end
        tail = i.to_bytes(8, "big")
        return base + tail, f"image/{kind}"

    def make(self, i: int, attach: bool) -> dict[str, Any]:
        person = self.people[i % len(self.people)]
        service = self.attached if attach else self.plain
        answers: dict[str, Any] = {}
        atts: dict[str, tuple[bytes, str]] = {}
        if service is None:  # the stub: any answers
            key = "jiuye_dengji"
            answers = {"phone": "13912345678"}
            if attach:
                data, media = self._image("document", i)
                digest = hashlib.sha256(data).hexdigest()
                answers["photo"] = digest
                atts[digest] = (data, media)
        else:
            key = service["key"]
            for name, prop in service["form"]["properties"].items():
                widget = prop.get("x-widget")
                if widget in _ATTACH_WIDGETS:
                    data, media = self._image(widget, i)
                    digest = hashlib.sha256(data).hexdigest()
                    answers[name] = digest
                    atts[digest] = (data, media)
                else:
                    answers[name] = _value(name, prop, person, self.today)
        return {"service": key, "person": {"ssn": person[0], "name": person[1], "credential": "id_card"},
                "answers": answers, "attachments": atts, "created_at": dt.datetime.now(dt.UTC)}
