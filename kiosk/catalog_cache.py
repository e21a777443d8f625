"""The last good service catalog on disk, with its ETag, so a terminal that starts offline still offers every
service it knew. Written atomically (temporary file, fsync, rename, fsync of the folder): a power cut leaves
the old catalog or the new one, never half of one."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from kiosk.backend_client import BackendClient, BackendFailure

log = logging.getLogger("kiosk.catalog")

FILE_NAME = "catalog.json"


class CatalogCache:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.path = self.dir / FILE_NAME

    def _read(self) -> tuple[list[dict[str, Any]], str | None]:
        try:
            data = json.loads(self.path.read_bytes())
            services = data["services"]
            etag = data.get("etag")
            if not isinstance(services, list) or not all(isinstance(s, dict) for s in services):
                raise ValueError("services is not a list of objects")
            if etag is not None and not isinstance(etag, str):
                etag = None
            return services, etag
        except FileNotFoundError:
            return [], None
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("catalog cache %s unreadable (%s): starting with no services", self.path, type(e).__name__)
            return [], None

    def load(self) -> list[dict[str, Any]]:
        """The cached services (raw ServiceInfo dicts; each is checked on its own by kiosk.forms), or []."""
        return self._read()[0]

    @property
    def etag(self) -> str | None:
        return self._read()[1]

    def refresh(self, client: BackendClient) -> list[dict[str, Any]]:
        """Ask the backend (If-None-Match: the cached ETag); store a new catalog; on 304 or any failure
        answer the cached one."""
        services, etag = self._read()
        got = client.services(etag if services else None)
        if isinstance(got, BackendFailure):
            log.info("catalog not refreshed (%s %s): using the cached one", got.kind.value, got.code)
            return services
        catalog, new_etag = got
        if catalog is None:
            return services
        try:
            self._write(catalog.services, new_etag)
        except OSError as e:
            log.warning("catalog cache not written (%s): using the new catalog in memory", e.strerror)
        return catalog.services

    def _write(self, services: list[dict[str, Any]], etag: str | None) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        raw = json.dumps({"etag": etag, "services": services}, ensure_ascii=False).encode()
        tmp = self.path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
