"""A small MQTT 3.1.1 client for the bridge, which moves tens of thousands of messages a second.

paho-mqtt spent 35 µs on each publish and as long on each message received (its per-message
callbacks, locks and packet objects): a bridge that stores and republishes 20,000 Observations
a second would have needed two cores for paho alone. This client reads what arrives in large
chunks and parses every complete packet in it, hands the messages over in batches, acknowledges
a batch with one write, and writes a batch of publishes (QoS 0) with one write too.

It speaks only what the bridge needs: CONNECT with a user name and password, SUBSCRIBE (shared
subscriptions are mosquitto's, on any protocol version), PUBLISH in both directions (QoS 0 and
1 in, QoS 0 out), PUBACK, PINGREQ every `keepalive / 2` seconds; and it connects again, and
subscribes again, when the broker goes away.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterable

from cim.errors import CimError

LOG = logging.getLogger("cim.twin")
CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}
PINGREQ = b"\xc0\x00"


class WireError(CimError):
    """The broker refused the connection, or could not be reached."""


def _length(n: int) -> bytes:
    """MQTT's variable-length remaining length."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def publish_packet(topic: str, payload: bytes) -> bytes:
    """A QoS 0 PUBLISH."""
    return _publish(_text(topic), payload)


def _publish(topic: bytes, payload: bytes) -> bytes:
    """A QoS 0 PUBLISH of a payload to a topic already encoded (`_text`)."""
    n = len(topic) + len(payload)
    if n < 0x80:
        return b"\x30" + bytes((n,)) + topic + payload
    if n < 0x4000:
        return b"\x30" + bytes((n & 0x7F | 0x80, n >> 7)) + topic + payload
    return b"\x30" + _length(n) + topic + payload


class Wire:
    """One connection to the broker (see the module). `on_messages` gets each batch of
    (topic, payload) on the reading thread; keep it quick or hand the batch on."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        credentials: tuple[str, str] | None = None,
        keepalive: int = 30,
        on_messages: Callable[[list[tuple[str, bytes]]], None] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.client_id = client_id
        self.credentials = credentials
        self.keepalive = keepalive
        self.on_messages = on_messages
        self.filters: list[tuple[str, int]] = []
        self.sock: socket.socket | None = None
        self.send_lock = threading.Lock()
        self.closing = threading.Event()
        self.subscribed = threading.Event()
        self.connected = threading.Event()
        self.reader: threading.Thread | None = None
        self.pinger: threading.Thread | None = None
        self._packet_id = 0

    # --- connecting

    def connect(self, timeout: float = 10) -> None:
        """Connect (and keep connecting again after a loss, until `close`).

        Raises:
            WireError: the broker cannot be reached, or refuses the credentials.
        """
        self._open(timeout)
        self.reader = threading.Thread(target=self._read, name="cim-mqtt-read", daemon=True)
        self.reader.start()
        self.pinger = threading.Thread(target=self._ping, name="cim-mqtt-ping", daemon=True)
        self.pinger.start()

    def _open(self, timeout: float) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except OSError as exc:
            raise WireError(f"the MQTT broker at {self.host}:{self.port}: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        flags = 0x02  # clean session
        payload = _text(self.client_id)
        if self.credentials:
            flags |= 0xC0
            payload += _text(self.credentials[0]) + _text(self.credentials[1])
        variable = _text("MQTT") + bytes([4, flags]) + struct.pack("!H", self.keepalive)
        body = variable + payload
        sock.sendall(b"\x10" + _length(len(body)) + body)
        answer = _recv_exactly(sock, 4)
        if answer[0] != 0x20 or answer[3] != 0:
            sock.close()
            reason = CONNACK_REASONS.get(answer[3], f"code {answer[3]}")
            raise WireError(f"the MQTT broker at {self.host}:{self.port} refused CIM: {reason}")
        sock.settimeout(None)
        self.sock = sock
        self.connected.set()

    def subscribe(self, filters: Iterable[str], qos: int = 1, timeout: float = 10) -> None:
        """Subscribe (again after each reconnection); waits for the broker's SUBACK.

        Raises:
            WireError: no SUBACK in time.
        """
        self.filters = [(f, qos) for f in filters]
        self.subscribed.clear()
        self._send_subscribe()
        if not self.subscribed.wait(timeout):
            raise WireError(f"the MQTT broker did not confirm the subscription to {self.filters}")

    def _send_subscribe(self) -> None:
        self._packet_id = self._packet_id % 65535 + 1
        body = struct.pack("!H", self._packet_id) + b"".join(
            _text(f) + bytes([q]) for f, q in self.filters
        )
        self._send(b"\x82" + _length(len(body)) + body)

    def close(self) -> None:
        self.closing.set()
        sock = self.sock
        if sock is not None:
            try:
                self._send(b"\xe0\x00")  # DISCONNECT
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in (self.reader, self.pinger):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5)

    # --- writing

    def _send(self, data: bytes) -> None:
        sock = self.sock
        if sock is None:
            raise OSError("not connected")
        with self.send_lock:
            sock.sendall(data)

    def publish(self, messages: Iterable[tuple[str, bytes]]) -> int:
        """Publish (QoS 0) with one write; returns how many. A lost connection loses them
        (the caller's log says so): subscribers of a twin want the present, not a replay."""
        return self._write(b"".join(publish_packet(t, p) for t, p in messages))

    def publish_twice(self, topics: Iterable[str], common: str, payloads: Iterable[bytes]) -> int:
        """Publish (QoS 0) each payload to its topic and to `common`, with one write (the
        bridge's Observations, to their Datastream's topic and to all Observations')."""
        shared = _text(common)
        encoded: dict[str, bytes] = {}
        parts = []
        for topic, payload in zip(topics, payloads, strict=True):
            head = encoded.get(topic)
            if head is None:
                head = encoded[topic] = _text(topic)
            parts.append(_publish(head, payload))
            parts.append(_publish(shared, payload))
        return self._write(b"".join(parts))

    def _write(self, data: bytes) -> int:
        if not data:
            return 0
        try:
            self._send(data)
        except OSError:
            LOG.warning("MQTT: not connected; %d bytes of notifications not sent", len(data))
            return 0
        return 1

    def _ping(self) -> None:
        while not self.closing.wait(self.keepalive / 2):
            try:
                self._send(PINGREQ)
            except OSError:
                pass  # the reader reconnects

    # --- reading

    def _read(self) -> None:
        buffer = bytearray()
        while not self.closing.is_set():
            sock = self.sock
            try:
                chunk = sock.recv(1 << 20) if sock is not None else b""
            except OSError:
                chunk = b""
            if not chunk:
                if self.closing.is_set():
                    return
                buffer.clear()
                self._reconnect()
                continue
            buffer += chunk
            used = self._parse(buffer)
            del buffer[:used]

    def _reconnect(self) -> None:
        self.connected.clear()
        LOG.warning("MQTT: the broker at %s:%d went away; connecting again", self.host, self.port)
        while not self.closing.is_set():
            try:
                self._open(10)
                if self.filters:
                    self._send_subscribe()
                LOG.warning("MQTT: connected again")
                return
            except (WireError, OSError) as exc:
                LOG.warning("MQTT: %s; trying again in 2 s", exc)
                self.closing.wait(2)

    def _parse(self, buffer: bytearray) -> int:
        """Handle every complete packet at the start of `buffer`; returns the bytes used."""
        view = memoryview(buffer)
        end = len(buffer)
        at = 0
        messages: list[tuple[str, bytes]] = []
        acks = bytearray()
        while at + 2 <= end:
            first = view[at]
            length, shift, i, complete = 0, 0, at + 1, False
            while i < end and i <= at + 4:
                byte = view[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    complete = True
                    break
                shift += 7
            if not complete or i + length > end:
                break
            kind = first >> 4
            if kind == 3:  # PUBLISH
                qos = (first >> 1) & 0x03
                topic_len = (view[i] << 8) | view[i + 1]
                topic = bytes(view[i + 2 : i + 2 + topic_len]).decode()
                start = i + 2 + topic_len
                if qos:
                    acks += b"\x40\x02" + bytes(view[start : start + 2])
                    start += 2
                messages.append((topic, bytes(view[start : i + length])))
            elif kind == 9:  # SUBACK
                self.subscribed.set()
            at = i + length
        view.release()
        if messages and self.on_messages is not None:
            try:
                self.on_messages(messages)
            except Exception:  # noqa: BLE001 - the connection outlives a bad batch
                LOG.exception("MQTT: a batch of %d messages was not handled", len(messages))
        if acks:
            try:
                self._send(bytes(acks))
            except OSError:
                pass
        return at


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise WireError("the MQTT broker closed the connection")
        data += chunk
    return data
