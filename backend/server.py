"""Run the reference backend: the API over HTTPS with mutual TLS, the public receipt-verification listener
(HTTPS, no client certificate asked) and the township worklist (HTTPS, clerk sign-in; backend/worklist.py),
each a uvicorn server in a background thread.

uvicorn does not hand the peer certificate to the app, so the mTLS listener uses a small h11 protocol subclass
that puts it into the ASGI scope as the standard "tls" extension once the handshake is done (backend/identity.py
reads the terminal from it).
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from backend.app import MODES, ServerControl, create_app
from backend.db import Database
from backend.identity import Terminal, WithClientCert, terminal_from_pem, tls_extension
from backend.pki import DEFAULT_SITE_ID, DEFAULT_TERMINAL_ID, DemoPki, ensure_demo_pki

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


class _PeerCertH11(H11Protocol):
    """h11 protocol that shows the app the client certificate of this connection (ASGI "tls" extension).

    asyncio calls connection_made only after the TLS handshake, so the verified certificate is known here;
    the extension is built once per connection, and no header can stand in for it."""

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.app = WithClientCert(self.config.loaded_app, tls_extension(der))


class _Listener:
    """One uvicorn server on one socket, in its own thread."""

    def __init__(self, app: Any, name: str, **ssl_options: Any) -> None:
        self.app, self.name, self.ssl_options = app, name, ssl_options
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self, sock: socket.socket) -> None:
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,  # never write request lines (paths, queries) to a log
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,
            # Clients connect directly: X-Forwarded-For from a loopback client must not pick the address the
            # per-client rate limit counts (uvicorn trusts it from 127.0.0.1 by default).
            proxy_headers=False,
            **self.ssl_options,
        )
        server = _CuttingServer(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=self.name, daemon=True)
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(timeout=5)
                sock.close()
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.01)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout=10)


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
        verify_port: int = 0,
        worklist_port: int = 0,
    ) -> None:
        self.app = app
        self.control = control
        self.pki = pki
        self.host = host
        self.port = port
        self.verify_port = verify_port
        self.worklist_port = worklist_port
        self.db_path = db_path
        self._lock = threading.Lock()
        self._main: _Listener | None = None
        self._verify: _Listener | None = None
        self._worklist: _Listener | None = None
        self._stopped = False

    # --- public -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API (mutual TLS)."""
        return _url(self.host, self.port)

    @property
    def verify_url(self) -> str:
        """The public receipt-verification listener (server certificate only, no client certificate)."""
        return _url(self.host, self.verify_port)

    @property
    def worklist_url(self) -> str:
        """The township worklist (server certificate only; the clerk signs in with a password)."""
        return _url(self.host, self.worklist_port)

    @property
    def keys_dir(self) -> Path:
        """Signing keys and the clerk password hash."""
        return self.db_path.parent / "keys"

    def revoke(self, cert_path: str | os.PathLike[str]) -> Terminal:
        """Revoke a terminal certificate (see revoke_certificate)."""
        return revoke_certificate(self.db_path.parent, cert_path)

    @property
    def terminal_id(self) -> str:
        return self.pki.terminal_id

    @property
    def site_id(self) -> str:
        return self.pki.site_id

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
            elif self._main is None or not self._main.running:
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
            if self._verify is not None:
                self._verify.stop()
            if self._worklist is not None:
                self._worklist.stop()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals ------------------------------------------------------------------------------

    def _start_uvicorn(self, sock: socket.socket) -> None:
        self._main = _Listener(
            self.app,
            "backend-uvicorn",
            http=_PeerCertH11,
            ssl_certfile=str(self.pki.server_cert),
            ssl_keyfile=str(self.pki.server_key),
            ssl_ca_certs=str(self.pki.ca_cert),
            ssl_cert_reqs=ssl.CERT_REQUIRED,  # mutual TLS: only enrolled terminals get in
        )
        self._main.start(sock)

    def _start_verify(self, sock: socket.socket) -> None:
        self._verify = _Listener(
            self.app.state.verify_app,
            "backend-verify",
            ssl_certfile=str(self.pki.server_cert),
            ssl_keyfile=str(self.pki.server_key),
            ssl_cert_reqs=ssl.CERT_NONE,  # public: a resident's phone has no certificate
        )
        self._verify.start(sock)

    def _start_worklist(self, sock: socket.socket) -> None:
        self._worklist = _Listener(
            self.app.state.worklist_app,
            "backend-worklist",
            ssl_certfile=str(self.pki.server_cert),
            ssl_keyfile=str(self.pki.server_key),
            ssl_cert_reqs=ssl.CERT_NONE,  # a clerk's browser: password sign-in, no certificate
        )
        self._worklist.start(sock)

    def _stop_uvicorn(self) -> None:
        if self._main is None or not self._main.running:
            return
        self.control.cut()
        self._main.stop()


def revoke_certificate(data_dir: str | os.PathLike[str], cert_path: str | os.PathLike[str]) -> Terminal:
    """Revoke a terminal certificate in the backend under data_dir (running or not): from the next request on it
    opens nothing, and the sessions it opened are dead. The terminal needs a new certificate to work again."""
    terminal = terminal_from_pem(Path(cert_path).read_text(encoding="ascii"))
    if terminal is None:
        raise ValueError("not a terminal certificate (CN = terminal id, OU = site id)")
    when = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    Database(Path(data_dir) / "backend.sqlite3").revoke_certificate(
        terminal.fingerprint, terminal.terminal_id, terminal.site_id, when
    )
    return terminal


def _url(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


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
    site_id: str = DEFAULT_SITE_ID,
    receipt_base_url: str | None = None,
    slow_seconds: float = 10.0,
    demo: bool = False,
    verify_port: int | None = None,
    worklist_port: int | None = None,
    **app_kwargs: Any,
) -> RunningServer:
    """Create the PKI and database under data_dir (reused if present) and serve: the API over mutual TLS
    (.url) and the public verify listener (.verify_url).

    port / verify_port / worklist_port 0 (or None) pick a free port (.worklist_url: the township worklist). receipt_base_url (printed in receipt QR codes) defaults
    to the verify listener's URL. demo: also serve /v1/demo/*. Extra keyword arguments go to create_app
    (e.g. clock).
    """
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    hosts = (host, "localhost") if host != "localhost" else ("localhost", "127.0.0.1")
    pki = ensure_demo_pki(data / "pki", terminal_id=terminal_id, hosts=hosts, site_id=site_id)
    sock = _listen(host, port)
    try:
        vsock = _listen(host, verify_port or 0)
    except BaseException:
        sock.close()
        raise
    try:
        wsock = _listen(host, worklist_port or 0)
    except BaseException:
        sock.close()
        vsock.close()
        raise
    running: RunningServer | None = None
    try:
        control = ServerControl(slow_seconds=slow_seconds)
        running = RunningServer(
            None, control, pki, host, sock.getsockname()[1], data / "backend.sqlite3", vsock.getsockname()[1],
            wsock.getsockname()[1],
        )
        running.app = create_app(
            running.db_path, receipt_base_url or running.verify_url, control=control, demo=demo, **app_kwargs
        )
        running._start_verify(vsock)
        running._start_worklist(wsock)
        running._start_uvicorn(sock)
    except BaseException:
        if running is not None:
            running.stop()
        sock.close()
        vsock.close()
        wsock.close()
        raise
    return running
