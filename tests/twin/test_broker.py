"""CIM's own mosquitto with real paho clients: who may read and write on which listener, what a
subscriber sees, and keys revoked while the broker runs.

"Not delivered" is checked without waiting for nothing: after the refused publish is
acknowledged (so the broker has handled it), cim-service publishes a marker to the same
subscriber; the broker delivers in order, so the marker arriving first proves the refused
message was dropped.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from cim.errors import InvalidInput
from cim.settings import TwinSettings
from tests.conftest import free_port
from tests.twin.conftest import Client, broker_dir
from twin.broker import (
    BrokerUnavailable,
    DeviceAccess,
    LocalBroker,
    broker_from_settings,
    hash_password,
)

DS1 = "v1.1/Datastreams(1)/Observations"
DS2 = "v1.1/Datastreams(2)/Observations"
NOT_AUTHORIZED = 135  # MQTT 5 reason code
MakeClient = Callable[..., Client]


def service(broker: LocalBroker, mqtt_client: MakeClient) -> Client:
    client = mqtt_client(broker.public_url, *broker.service_credentials())
    assert not client.connect().is_failure
    return client


def device(
    broker: LocalBroker, mqtt_client: MakeClient, name: str, password: str, **kw: object
) -> Client:
    return mqtt_client(broker.device_url, name, password, **kw)


def assert_next_is_marker(subscriber: Client, publisher: Client, topic: str) -> None:
    """Nothing reaches `subscriber` before a marker `publisher` sends now (see the module)."""
    assert publisher.publish(topic, b"marker") == 0
    assert subscriber.next_message() == (topic, b"marker")


def test_anyone_reads_the_public_port_but_only_cim_publishes(
    broker: LocalBroker, mqtt_client: MakeClient
) -> None:
    svc = service(broker, mqtt_client)
    for protocol in (mqtt.MQTTv5, mqtt.MQTTv311):
        anonymous = mqtt_client(broker.public_url, protocol=protocol)
        assert not anonymous.connect().is_failure
        assert anonymous.subscribe(DS1)[0] == 1  # granted QoS 1
        assert svc.publish(DS1, b'{"@iot.id": 7}') == 0
        assert anonymous.next_message() == (DS1, b'{"@iot.id": 7}')

        refused = anonymous.publish(DS1, b"forged")
        # MQTT 5 says so in the PUBACK; 3.1.1 has no way to, and mosquitto acknowledges it
        assert refused == (NOT_AUTHORIZED if protocol == mqtt.MQTTv5 else 0)
        assert_next_is_marker(anonymous, svc, DS1)


def test_a_device_publishes_its_own_datastreams_for_cim_only(
    broker: LocalBroker, mqtt_client: MakeClient
) -> None:
    broker.write_access([DeviceAccess("station-1", hash_password("s3cret"), (1,))])
    svc = service(broker, mqtt_client)
    assert svc.subscribe("devices/#")[0] == 1
    shared = mqtt_client(broker.public_url, *broker.service_credentials())
    assert not shared.connect().is_failure
    # the bridge reads devices' messages through a shared subscription
    assert shared.subscribe("$share/cim/devices/v1.1/+/Observations")[0] == 1
    anonymous = mqtt_client(broker.public_url)
    assert not anonymous.connect().is_failure
    assert anonymous.subscribe("v1.1/#")[0] == 1

    station = device(broker, mqtt_client, "station-1", "s3cret")
    assert not station.connect().is_failure
    assert station.publish(DS1, b'{"result": 21.5}') == 0
    assert svc.next_message() == (f"devices/{DS1}", b'{"result": 21.5}')
    assert shared.next_message() == (f"devices/{DS1}", b'{"result": 21.5}')
    # the raw message is not on the public topic: subscribers wait for the stored one
    assert_next_is_marker(anonymous, svc, DS1)

    assert station.publish(DS2, b'{"result": 1}') == NOT_AUTHORIZED
    assert station.publish(DS1, b"next") == 0
    assert svc.next_message() == (f"devices/{DS1}", b"next")


def test_a_manager_key_publishes_any_datastream_with_one_grant(
    broker: LocalBroker, mqtt_client: MakeClient
) -> None:
    broker.write_access([DeviceAccess("gateway", hash_password("g"), (), every=True)])
    # one wildcard line, not one per Datastream: mosquitto reads the list at each publish
    acl = (broker.root / "devices.acl").read_text()
    assert acl.count("topic write") == 2, acl
    svc = service(broker, mqtt_client)
    assert svc.subscribe("devices/#")[0] == 1
    gateway = device(broker, mqtt_client, "gateway", "g")
    assert not gateway.connect().is_failure
    for topic in (DS1, "v1.1/Datastreams(987654)/Observations", "v1.1/Observations"):
        assert gateway.publish(topic, b'{"result": 2}') == 0
        assert svc.next_message() == (f"devices/{topic}", b'{"result": 2}')
    # Observations only: not other entities, nor anything deeper
    for topic in ("v1.1/Things", "v1.1/Datastreams(1)/Observations/x", "elsewhere"):
        assert gateway.publish(topic, b"{}") == NOT_AUTHORIZED, topic
    assert gateway.publish(DS2, b"next") == 0
    assert svc.next_message() == (f"devices/{DS2}", b"next")


def test_strangers_are_refused_at_connect(broker: LocalBroker, mqtt_client: MakeClient) -> None:
    broker.write_access([DeviceAccess("station-1", hash_password("s3cret"), (1,))])
    wrong = device(broker, mqtt_client, "station-1", "guess")
    assert wrong.connect() == NOT_AUTHORIZED
    anonymous = mqtt_client(broker.device_url)
    assert anonymous.connect() == NOT_AUTHORIZED
    old = mqtt_client(broker.device_url, protocol=mqtt.MQTTv311)
    assert old.connect() == NOT_AUTHORIZED  # paho gives 3.1.1's code 5 as MQTT 5's name
    # a device key does not open the public port: it has a password file of its own
    elsewhere = mqtt_client(broker.public_url, "station-1", "s3cret")
    assert elsewhere.connect() == NOT_AUTHORIZED


def test_hashes_of_mosquitto_passwd_and_ours_both_log_in(
    broker: LocalBroker, mqtt_client: MakeClient, tmp_path: Path
) -> None:
    tool = shutil.which("mosquitto_passwd")
    assert tool, "mosquitto_passwd is part of the mosquitto package"
    passwd = tmp_path / "passwd"
    subprocess.run([tool, "-c", "-b", str(passwd), "made-by-tool", "pw-one"], check=True)
    theirs = passwd.read_text().strip().split(":", 1)[1]
    ours = hash_password("pw-two")
    # the same scheme: $7$, iterations, a 12-byte salt, a 64-byte PBKDF2-SHA512
    _, scheme, rounds, salt, digest = ours.split("$")
    assert (scheme, rounds) == ("7", "101") == tuple(theirs.split("$")[1:3])
    expected = hashlib.pbkdf2_hmac("sha512", b"pw-two", base64.b64decode(salt), 101, 64)
    assert base64.b64decode(digest) == expected and len(base64.b64decode(salt)) == 12
    broker.write_access(
        [DeviceAccess("made-by-tool", theirs, (1,)), DeviceAccess("made-by-cim", ours, (1,))]
    )
    assert device(broker, mqtt_client, "made-by-tool", "pw-one").connect() == 0
    assert device(broker, mqtt_client, "made-by-cim", "pw-two").connect() == 0
    assert device(broker, mqtt_client, "made-by-cim", "pw-one").connect() == NOT_AUTHORIZED


def test_a_revoked_key_is_cut_off_without_a_restart(
    broker: LocalBroker, mqtt_client: MakeClient
) -> None:
    keep = DeviceAccess("station-keep", hash_password("k"), (1,))
    drop = DeviceAccess("station-drop", hash_password("d"), (2,))
    broker.write_access([keep, drop])
    pid = broker.pid()
    svc = service(broker, mqtt_client)
    assert svc.subscribe("devices/#")[0] == 1
    kept = device(broker, mqtt_client, "station-keep", "k")
    dropped = device(broker, mqtt_client, "station-drop", "d")
    assert kept.connect() == 0 and dropped.connect() == 0
    assert dropped.publish(DS2, b"before") == 0
    assert svc.next_message() == (f"devices/{DS2}", b"before")

    broker.write_access([keep])
    assert dropped.disconnected.wait(5), "the revoked device is still connected"
    again = device(broker, mqtt_client, "station-drop", "d")
    assert again.connect() == NOT_AUTHORIZED
    # the other key goes on as before, on the same broker process
    assert not kept.disconnected.is_set()
    assert kept.publish(DS1, b"still here") == 0
    assert svc.next_message() == (f"devices/{DS1}", b"still here")

    # a Datastream taken from a key: its next publish there is refused, the connection stays
    broker.write_access([DeviceAccess(keep.username, keep.password_hash, (2,))])
    assert kept.publish(DS1, b"no longer") == NOT_AUTHORIZED
    assert kept.publish(DS2, b"now this one") == 0
    assert svc.next_message() == (f"devices/{DS2}", b"now this one")
    assert not kept.disconnected.is_set()
    assert broker.pid() == pid


def test_access_that_cannot_be_written_is_refused(broker: LocalBroker) -> None:
    good = hash_password("x")
    for bad in (
        DeviceAccess("two words", good, (1,)),
        DeviceAccess("cim-service", good, (1,)),
        DeviceAccess("station", "plain text", (1,)),
        DeviceAccess("station", good + "\nuser x", (1,)),
        DeviceAccess("station", good, (0,)),
    ):
        with pytest.raises(InvalidInput):
            broker.write_access([bad])
    with pytest.raises(InvalidInput, match="twice"):
        broker.write_access([DeviceAccess("a", good, (1,)), DeviceAccess("a", good, (2,))])


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_start_is_idempotent_and_stop_stops(mqtt_client: MakeClient) -> None:
    root = broker_dir("cim-test-mqtt-life-")
    broker = LocalBroker(root / "mqtt", free_port(), free_port())
    try:
        assert broker.status()["running"] is False
        broker.start()
        pid = broker.pid()
        password = broker.service_credentials()[1]
        broker.start()
        assert broker.pid() == pid and broker.service_credentials()[1] == password
        assert (broker.root / "service-password").stat().st_mode & 0o077 == 0
        state = broker.status()
        assert state == {
            "running": True,
            "pid": pid,
            "public_url": f"mqtt://127.0.0.1:{broker.port}",
            "device_url": f"mqtt://127.0.0.1:{broker.device_port}",
            "folder": str(broker.root),
            "log": str(broker.root / "mosquitto.log"),
        }
        # another LocalBroker of the same folder (another `cim` command) sees it and stops it
        same = LocalBroker(broker.root, broker.port, broker.device_port)
        assert same.is_running()
        same.stop()
        assert not broker.is_running() and not same.is_running()
        assert not _listens(broker.port) and not _listens(broker.device_port)
        broker.stop()  # stopping a stopped broker is no error

        # started again, it has the same service password and reloads nothing it lost
        broker.start()
        assert broker.service_credentials()[1] == password
        assert not service(broker, mqtt_client).connack.is_failure
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_port_in_use_is_a_clear_error(broker: LocalBroker) -> None:
    root = broker_dir("cim-test-mqtt-busy-")
    other = LocalBroker(root / "mqtt", free_port(), broker.device_port)
    try:
        with pytest.raises(BrokerUnavailable, match=f"port {broker.device_port} .* in use"):
            other.start()
        assert not other.is_running()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_config_for_other_ports_is_not_started(broker: LocalBroker) -> None:
    root = broker_dir("cim-test-mqtt-moved-")
    first = LocalBroker(root / "mqtt", free_port(), free_port())
    try:
        first.start()
        first.stop()
        moved = LocalBroker(first.root, free_port(), first.device_port)
        with pytest.raises(BrokerUnavailable, match="delete it"):
            moved.start()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_settings_choose_the_embedded_broker_or_none(tmp_path: Path) -> None:
    settings = TwinSettings(data_dir=tmp_path, mqtt_port=1234, mqtt_device_port=1235)
    local = broker_from_settings(settings)
    assert local is not None and local.root == tmp_path / "mqtt"
    assert (local.public_url, local.device_url) == (
        "mqtt://127.0.0.1:1234",
        "mqtt://127.0.0.1:1235",
    )
    assert broker_from_settings(TwinSettings(mqtt_url="mqtt://broker.example:1883")) is None
    assert TwinSettings(mqtt_url="").embedded


def test_access_written_while_stopped_is_what_it_starts_with(mqtt_client: MakeClient) -> None:
    root = broker_dir("cim-test-mqtt-early-")
    broker = LocalBroker(root / "mqtt", free_port(), free_port())
    try:
        broker.write_access([DeviceAccess("early", hash_password("pw"), (1,))])
        assert not broker.is_running()
        broker.start()
        assert device(broker, mqtt_client, "early", "pw").connect() == 0
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_folder_the_broker_cannot_reach_is_a_clear_error(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    broker = LocalBroker(closed / "mqtt", free_port(), free_port())
    if os.geteuid() == 0:
        # as root, mosquitto runs as its own account, which may not enter a 0700 folder of root
        with pytest.raises(BrokerUnavailable, match=f"cannot enter {closed}"):
            broker.start()
    else:
        # as anyone else mosquitto runs as that user, who owns the folder
        try:
            broker.start()
            assert broker.is_running()
        finally:
            broker.stop()
