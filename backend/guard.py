"""Checks every request passes before the app sees it: body size and JSON the app can safely parse.

Done once here, as pure ASGI middleware, so no endpoint can forget it and no odd body reaches a 500:
- bodies over the limit: 413 body_too_large (by Content-Length, or counted while reading);
- JSON nested deeper than MAX_DEPTH, strings (or keys) with NUL characters or lone surrogates ("\\ud800"),
  bytes that are not UTF-8, or not JSON at all: 422 invalid_request.
"""

from __future__ import annotations

import json
from typing import Any

MAX_BODY = 64 * 1024
MAX_DEPTH = 32


def _error(status: int, code: str, message: str, **extra: Any) -> tuple[int, bytes]:
    return status, json.dumps({"code": code, "message": message, **extra}, ensure_ascii=False).encode("utf-8")


def _too_deep(raw: bytes, limit: int) -> bool:
    """Nesting depth of JSON text, counted outside strings, without parsing (the parser recurses)."""
    depth, in_string, escaped = 0, False, False
    for b in raw:
        if in_string:
            if escaped:
                escaped = False
            elif b == 0x5C:  # backslash
                escaped = True
            elif b == 0x22:  # quote
                in_string = False
        elif b == 0x22:
            in_string = True
        elif b in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif b in (0x5D, 0x7D):
            depth -= 1
    return False


def _bad_string(value: Any) -> str | None:
    """The problem of the first unacceptable string in a parsed JSON value, or None."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                return "string_nul"
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return "string_lone_surrogate"
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def check_json(raw: bytes) -> str | None:
    """Why this body is refused (a field-problem type), or None when it is acceptable JSON."""
    if _too_deep(raw, MAX_DEPTH):
        return "json_too_deep"
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "json_not_utf8"
    except (ValueError, RecursionError):
        return "json_invalid"
    return _bad_string(value)


class BodyGuard:
    """Pure ASGI middleware: reads the whole (bounded) body, checks it, then hands it on unchanged.

    raw: (method, path prefix, limit) of routes whose body is raw bytes (not JSON) with their own limit."""

    def __init__(self, app: Any, max_body: int = MAX_BODY, raw: tuple[tuple[str, str, int], ...] = ()) -> None:
        self.app, self.max_body, self.raw = app, max_body, raw

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, is_raw = self.max_body, False
        for method, prefix, raw_limit in self.raw:
            if scope["method"] == method and scope["path"].startswith(prefix):
                limit, is_raw = raw_limit, True
        too_large = (
            _error(413, "attachment_invalid", f"附件过大（上限 {limit // 1024} KB）") if is_raw
            else _error(413, "body_too_large", f"请求内容过大（上限 {limit // 1024} KiB）")
        )
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False  # h11 already refuses malformed lengths
                if too_big:
                    await _send(send, *too_large)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _send(send, *too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body.strip() and not is_raw:
            problem = check_json(body)
            if problem is not None:
                await _send(
                    send,
                    *_error(
                        422, "invalid_request", "请求内容不完整或格式不对", fields=[{"loc": ["body"], "type": problem}]
                    ),
                )
                return
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would

        await self.app(scope, replay, send)


async def _send(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
