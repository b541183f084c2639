"""Reads served again when a hot standby is lost under them (see cim.db.replicas)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cim.db.replicas import StandbyLost, primary_only

READS = frozenset({"GET", "HEAD"})


class StandbyRetry:
    """ASGI middleware: a GET or HEAD whose standby broke before its answer began is served
    again (its standby is then left out, so the read goes to another one), at most `attempts`
    times, the last time on the primary alone. A read changes nothing, so running it again is
    safe; once an answer has begun it is not retried (the client sees the error)."""

    def __init__(self, app: ASGIApp, attempts: int = 3) -> None:
        self.app = app
        self.attempts = max(1, attempts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in READS:
            await self.app(scope, receive, send)
            return
        for attempt in range(self.attempts):
            started = False

            async def watched(message: Message) -> None:
                nonlocal started
                started = True
                await send(message)

            last = attempt == self.attempts - 1
            token = primary_only.set(True) if last else None
            try:
                await self.app(scope, receive if attempt == 0 else _again(receive), watched)
                return
            except StandbyLost:
                if started or last:
                    raise
            finally:
                if token is not None:
                    primary_only.reset(token)


def _again(receive: Receive) -> Receive:
    """`receive` for a rerun: the (empty) body of a GET once more, then the client's own."""
    given = False

    async def again() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return await receive()

    return again
