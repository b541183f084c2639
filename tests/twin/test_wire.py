"""The bridge's own MQTT client: packets cut anywhere by the network are read whole, QoS 1
messages are acknowledged by their packet ids, and against the real mosquitto it connects,
is refused with the reason, subscribes, and moves messages both ways."""

from __future__ import annotations

import random
import struct
import threading
from collections.abc import Callable

import pytest

from tests.twin.conftest import Client
from twin.broker import LocalBroker
from twin.wire import Wire, WireError, _length, publish_packet


def qos1_packet(topic: str, packet_id: int, payload: bytes) -> bytes:
    body = struct.pack("!H", len(topic)) + topic.encode() + struct.pack("!H", packet_id) + payload
    return b"\x32" + _length(len(body)) + body


def test_packets_cut_anywhere_are_read_whole() -> None:
    rng = random.Random(7)
    packets, expected = [], []
    for n in range(300):
        topic = f"devices/v1.1/Datastreams({n})/Observations"
        payload = b'{"result": %d}' % n + b" " * rng.randrange(0, 400)  # lengths over 127 too
        if n % 2:
            packets.append(qos1_packet(topic, n + 1, payload))
        else:
            packets.append(publish_packet(topic, payload))
        expected.append((topic, payload))
    stream = b"\x90\x03\x00\x01\x01" + b"".join(packets)  # a SUBACK first
    wire = Wire("unused", 1, "test")
    got: list[tuple[str, bytes]] = []
    sent: list[bytes] = []
    wire.on_messages = got.extend
    wire._send = sent.append  # type: ignore[method-assign]
    buffer = bytearray()
    at = 0
    while at < len(stream):
        step = rng.randrange(1, 700)
        buffer += stream[at : at + step]
        at += step
        del buffer[: wire._parse(buffer)]
    assert not buffer
    assert got == expected
    assert wire.subscribed.is_set()
    acks = b"".join(sent)
    assert acks == b"".join(b"\x40\x02" + struct.pack("!H", n + 1) for n in range(1, 300, 2))


def test_against_mosquitto(broker: LocalBroker, mqtt_client: Callable[..., Client]) -> None:
    user, password = broker.service_credentials()
    with pytest.raises(WireError, match="refused CIM: not authorised"):
        Wire("127.0.0.1", broker.port, "wrong", (user, "not the password")).connect()
    arrived = threading.Event()
    got: list[tuple[str, bytes]] = []

    def take(batch: list[tuple[str, bytes]]) -> None:
        got.extend(batch)
        if len(got) >= 3:
            arrived.set()

    wire = Wire("127.0.0.1", broker.port, "wire-test", (user, password), on_messages=take)
    wire.connect()
    try:
        wire.subscribe(["v1.1/+/Observations"], qos=1)
        listener = mqtt_client(broker.public_url)
        listener.connect()
        listener.subscribe("v1.1/Things")
        # published by the service itself (cim-service may write v1.1/#), read back by both
        wire.publish([(f"v1.1/Datastreams({n})/Observations", b"%d" % n) for n in range(3)])
        wire.publish([("v1.1/Things", b"a thing")])
        assert arrived.wait(5)
        assert got == [(f"v1.1/Datastreams({n})/Observations", b"%d" % n) for n in range(3)]
        assert listener.next_message() == ("v1.1/Things", b"a thing")
    finally:
        wire.close()
