"""Run the reference backend over HTTPS with mutual TLS (uvicorn in a background thread)."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from backend.app import MODES, ServerControl, create_app
from backend.pki import DEFAULT_TERMINAL_ID, DemoPki, ensure_demo_pki

_START_TIMEOUT = 10.0


class _CuttingServer(uvicorn.Server):
    """Stops like a cut cable: listeners closed, open connections aborted (RST). A graceful TLS close
    would wait for close_notify from idle keep-alive clients that never send it."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for listener in self.servers:
            listener.close()
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
        await super().shutdown(sockets)


class RunningServer:
    """A started backend. set_mode("offline") really stops listening (connections are refused) and
    set_mode to any other mode listens again on the same port."""

    def __init__(
        self,
        app: Any,
        control: ServerControl,
        pki: DemoPki,
        host: str,
        port: int,
        db_path: Path,
    ) -> None:
        self.app = app
        self.control = control
        self.pki = pki
        self.host = host
        self.port = port
        self.db_path = db_path
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # --- public -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def ca_path(self) -> Path:
        return self.pki.ca_cert

    @property
    def client_cert(self) -> Path:
        return self.pki.client_cert

    @property
    def client_key(self) -> Path:
        return self.pki.client_key

    @property
    def mode(self) -> str:
        return self.control.mode

    def set_mode(self, mode: str, *, slow_seconds: float | None = None) -> None:
        """online | offline | error | slow (slow sleeps slow_seconds, at most 60, before answering)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        with self._lock:
            if self._stopped:
                raise RuntimeError("server was stopped")
            self.control.set_mode(mode, slow_seconds=slow_seconds)
            if mode == "offline":
                self._stop_uvicorn()
            elif self._server is None:
                self._start_uvicorn(_listen(self.host, self.port))

    def fail_next(self, count: int = 1, *, after_processing: bool = False) -> None:
        """Answer the next `count` requests with 500 (after_processing: run them, then lose the answer)."""
        self.control.fail_next(count, after_processing=after_processing)

    def request_count(self, path_prefix: str = "", method: str | None = None) -> int:
        """Requests that reached the app (after TLS) since start or the last reset_counts()."""
        return self.control.request_count(path_prefix, method)

    def reset_counts(self) -> None:
        self.control.reset_counts()

    def stop(self) -> None:
        """Stop for good (idempotent)."""
        with self._lock:
            self._stopped = True
            self._stop_uvicorn()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals ------------------------------------------------------------------------------

    def _start_uvicorn(self, sock: socket.socket) -> None:
        config = uvicorn.Config(
            self.app,
            ssl_certfile=str(self.pki.server_cert),
            ssl_keyfile=str(self.pki.server_key),
            ssl_ca_certs=str(self.pki.ca_cert),
            ssl_cert_reqs=ssl.CERT_REQUIRED,  # mutual TLS: only enrolled terminals get in
            log_level="warning",
            access_log=False,  # paths carry ID numbers (/v1/pension/{ssn}): never write them to a log
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,
        )
        server = _CuttingServer(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="backend-uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(timeout=5)
                sock.close()
                raise RuntimeError("backend server did not start")
            time.sleep(0.01)
        self._server, self._thread = server, thread

    def _stop_uvicorn(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        self.control.cut()
        server.should_exit = True
        thread.join(timeout=10)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted sockets only then; without it Nagle and the
    # client's delayed ACK hold each response body back ~40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebind the same port after "offline"
    sock.bind((host, port))
    sock.listen(128)
    return sock


def start_server(
    data_dir: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    terminal_id: str = DEFAULT_TERMINAL_ID,
    receipt_base_url: str | None = None,
    slow_seconds: float = 10.0,
    **app_kwargs: Any,
) -> RunningServer:
    """Create the PKI and database under data_dir (reused if present) and serve over mutual TLS.

    port=0 picks a free port (see .url). receipt_base_url defaults to the server's own URL.
    Extra keyword arguments go to create_app (e.g. clock, demo).
    """
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    hosts = (host, "localhost") if host != "localhost" else ("localhost", "127.0.0.1")
    pki = ensure_demo_pki(data / "pki", terminal_id=terminal_id, hosts=hosts)
    sock = _listen(host, port)
    try:
        actual_port = sock.getsockname()[1]
        control = ServerControl(slow_seconds=slow_seconds)
        running = RunningServer(None, control, pki, host, actual_port, data / "backend.sqlite3")
        app = create_app(
            running.db_path, receipt_base_url or running.url, control=control, **app_kwargs
        )
        running.app = app
        running._start_uvicorn(sock)
    except BaseException:
        sock.close()
        raise
    return running
