"""Every SensorThings write refuses a caller without a twin key (a grading key is not one),
in SensorThings' error shape, and refuses it before the body is read: eight megabytes sent to
it are never taken."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from grading import access


def test_writes_without_a_twin_key_are_refused(engine: Engine) -> None:
    client = TestClient(create_app(engine=engine))
    _, grading_admin = access.create_key(engine, access.cli_actor(), "admin", "admin")
    for method in ("POST", "PATCH", "PUT", "DELETE"):
        for headers in ({}, {"X-API-Key": grading_admin}, {"Authorization": "Bearer cimt_x_y"}):
            answer = client.request(method, "/v1.1/Things(1)", json={}, headers=headers)
            assert answer.status_code == 401, (method, headers, answer.text)
            assert answer.headers["content-type"] == "application/json"
            assert answer.json()["type"] == "error" and "key" in answer.json()["message"]


def test_the_body_of_a_refused_write_is_never_read(engine: Engine) -> None:
    app = create_app(engine=engine)
    body = b"[" + b"1," * 4_000_000 + b"1]"  # 8 MB
    taken = 0
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        nonlocal taken
        chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]

        async def receive() -> dict[str, Any]:
            nonlocal taken
            if not chunks:
                return {"type": "http.disconnect"}
            chunk = chunks.pop(0)
            taken += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1.1/CreateObservations",
            "raw_path": b"/v1.1/CreateObservations",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
            "scheme": "http",
            "http_version": "1.1",
        }
        await app(scope, receive, send)

    asyncio.run(run())
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 401
    assert taken == 0
