"""A response's head and body go out together (api.protocol.Coalesced), and nothing written is
held back: a lone write leaves at the end of the event loop's turn, and everything before a
close. Real sockets on uvloop, the loop `cim serve` runs on."""

from __future__ import annotations

import asyncio
import socket

import uvloop

from api.protocol import Coalesced


async def _through(writes: list[bytes], close: bool) -> tuple[bytes, int]:
    """What a peer reads of these writes made through a Coalesced transport (until EOF when
    `close`, else until it has them all), and how many reads that took."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    coalesced = Coalesced(transport, loop)
    for data in writes:
        coalesced.write(data)
    if close:
        coalesced.close()
    expected = b"".join(writes)
    got, reads = b"", 0
    while (len(got) < len(expected)) or close:
        chunk = await asyncio.wait_for(loop.sock_recv(theirs, 1 << 20), 5)  # held: fails
        reads += 1
        if not chunk:
            break
        got += chunk
    theirs.close()
    if not close:
        transport.close()
    return got, reads


def test_writes_arrive_whole_and_in_order() -> None:
    head, body = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", b"hello"
    assert uvloop.run(_through([head, body], close=False))[0] == head + body
    # three writes: two go together, the third at the end of the turn
    parts = [b"a" * 10, b"b" * 70_000, b"c" * 3]
    assert uvloop.run(_through(parts, close=False))[0] == b"".join(parts)


def test_a_lone_write_is_not_held() -> None:
    got, _ = uvloop.run(_through([b"HTTP/1.1 100 Continue\r\n\r\n"], close=False))
    assert got == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_what_is_held_goes_out_before_the_close() -> None:
    got, _ = uvloop.run(_through([b"HTTP/1.1 408 Request Timeout\r\n\r\n"], close=True))
    assert got == b"HTTP/1.1 408 Request Timeout\r\n\r\n"
