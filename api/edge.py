"""The request as the routes see it, settled at the service's edge: who its client is (the peer,
or behind the reverse proxies the settings trust, the address they forwarded), and that none of
its text holds a NUL character (PostgreSQL cannot store one, and no name, filter or value of
this service has one)."""

from __future__ import annotations

import ipaddress
import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def ip_of(text: str) -> Address | None:
    """The address in a peer or X-Forwarded-For entry (`1.2.3.4`, `1.2.3.4:5678`, `::1`,
    `[::1]:443`), an IPv4 address mapped into IPv6 as itself; None when it is not one."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class RealClient:
    """ASGI middleware: a request from one of the `trusted` proxies (addresses or networks) is
    from the client its X-Forwarded-For names, read from the right: each proxy appends the peer
    it saw, so the first address there that is not a trusted proxy is the client (those left
    of it are whatever the client sent). Its X-Forwarded-Proto is the request's scheme. A
    request from anyone else is from its peer, whatever it says: without trusted proxies no
    header can change who the failed-login limit counts."""

    def __init__(self, app: ASGIApp, trusted: list[str]) -> None:
        self.app = app
        self.trusted = [ipaddress.ip_network(n, strict=False) for n in trusted]

    def _trusts(self, ip: Address | None) -> bool:
        return ip is not None and any(ip in net for net in self.trusted)

    def client(self, forwarded: list[str]) -> str | None:
        """The client an X-Forwarded-For chain (its entries in order) names; None when the
        nearest entry is not an address (the proxy did not append one)."""
        chain = [ip_of(entry) for entry in forwarded]
        for ip in reversed(chain):
            if ip is None:
                return None
            if not self._trusts(ip):
                return str(ip)
        return str(chain[0]) if chain else None  # every hop a trusted proxy: the first one

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = scope.get("client")
        if not (self.trusted and scope["type"] == "http" and peer):
            await self.app(scope, receive, send)
            return
        if not self._trusts(ip_of(str(peer[0]))):
            await self.app(scope, receive, send)
            return
        forwarded: list[str] = []
        proto = None
        for name, value in scope.get("headers") or []:
            if name == b"x-forwarded-for":
                forwarded += [e for e in value.decode("latin-1").split(",") if e.strip()]
            elif name == b"x-forwarded-proto":
                proto = value.decode("latin-1").split(",")[0].strip().lower()
        changed = dict(scope)
        client = self.client(forwarded)
        if client is not None:
            changed["client"] = (client, 0)
        if proto in ("http", "https"):
            changed["scheme"] = proto
        await self.app(changed, receive, send)


NUL = "a NUL character (%00, \\u0000); no text of this service may contain one"


class NoNul:
    """ASGI middleware: a request with a NUL character in its path, query string or headers is
    refused (400) before any route runs; one in a string of a JSON body when the route reads the
    body (never earlier: the caller of a write is checked before its body is read)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = _nul_in(scope)
        if where is not None:
            response = problem(400, f"{where} holds {NUL}", scope.get("path"))
            await response(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if kind == b"application/json" or kind.endswith(b"+json"):
            receive = _json_checked(receive)
        await self.app(scope, receive, send)


def _nul_in(scope: Scope) -> str | None:
    """Which part of a request's head holds a NUL, if one does."""
    if "\x00" in scope.get("path", ""):
        return "the path"
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        return "the query string"
    if any(b"\x00" in value for _, value in scope.get("headers") or []):
        return "a header"
    return None


def _json_checked(receive: Receive) -> Receive:
    """`receive` that looks at a JSON body once it is whole, and refuses a NUL (or an unpaired
    surrogate, which no database text can hold either) in any of its strings or keys.

    Raises:
        HTTPException: 400, from the call that would have given the body's last part.
    """
    body = bytearray()

    async def checked() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                bad = _bad_text(bytes(body))
                if bad is not None:
                    raise HTTPException(400, f"the JSON body holds {bad}")
        return message

    return checked


# In JSON text a NUL or a surrogate can only be written escaped (raw, it is not JSON, and the
# route refuses the body itself); these find the escapes in the raw bytes, at C speed, without
# parsing the body on the event loop. An escaped backslash (`\\`) is taken out first, so that
# `\\u0000` (a backslash, then "u0000") is not taken for a NUL.
_ESCAPED_BACKSLASH = b"\\\\"
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"  # high, no low after
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # low, no high before
)


def _bad_text(body: bytes) -> str | None:
    """What in a JSON document's strings no database text can hold; None for none."""
    if b"\\u" not in body:
        return None
    if b"\\\\" in body:
        body = body.replace(_ESCAPED_BACKSLASH, b"")
    if b"\\u0000" in body:
        return NUL
    if (b"\\ud" in body or b"\\uD" in body) and _LONE_SURROGATE.search(body):
        return "an unpaired surrogate (\\ud800-\\udfff); text must be valid Unicode"
    return None
