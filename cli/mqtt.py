"""`cim mqtt`: the embedded MQTT broker of the live twin, or the one CIM_MQTT_URL names."""

from __future__ import annotations

import sys
from typing import Any

import click

from cim.errors import CimError
from cim.settings import TwinSettings
from cli.common import fail


@click.group()
def mqtt() -> None:
    """The MQTT broker of SensorThings' MQTT extension: CIM's own mosquitto, or the broker
    named by CIM_MQTT_URL.

    \b
    CIM's own broker has two ports (loopback unless CIM_MQTT_HOST says otherwise):
      CIM_MQTT_PORT (18830)         public: anyone subscribes to v1.1/# without a password,
                                    and receives what CIM stored (with its @iot.id); only
                                    CIM publishes there, as the user cim-service
      CIM_MQTT_DEVICE_PORT (18831)  devices: each logs in with its key (user = the key id,
                                    password = the key) and publishes to
                                    v1.1/Datastreams(N)/Observations of its own Datastreams
    Keys come from `cim twin keys create … --role device`; creating or revoking one rewrites
    the broker's password and access files, which it reloads without a restart. CIM's own
    password is made at the first start and kept in the broker's folder (mode 0600).

    \b
    Example:
      cim mqtt start
      mosquitto_sub -p 18830 -t 'v1.1/Datastreams(1)/Observations'
      mosquitto_pub -p 18831 -u KEY_ID -P KEY -t 'v1.1/Datastreams(1)/Observations' \\
          -m '{"result": 21.5}'
    """


def _broker_or_none(settings: TwinSettings) -> Any:
    from twin.broker import broker_from_settings

    broker = broker_from_settings(settings)
    if broker is None:
        click.echo("CIM_MQTT_URL is set: using that broker, no embedded one.")
    return broker


@mqtt.command("start")
def mqtt_start() -> None:
    """Start the embedded broker (writing its configuration on first use)."""
    broker = _broker_or_none(TwinSettings())
    if broker is None:
        return
    try:
        broker.start()
    except CimError as exc:
        fail(exc)
    click.echo(
        f"embedded MQTT broker running: subscribers on {broker.public_url}, devices on "
        f"{broker.device_url} (data in {broker.root})"
    )


@mqtt.command("stop")
def mqtt_stop() -> None:
    """Stop the embedded broker (devices and subscribers are disconnected)."""
    broker = _broker_or_none(TwinSettings())
    if broker is None:
        return
    try:
        broker.stop()
    except CimError as exc:
        fail(exc)
    click.echo("embedded MQTT broker stopped")


@mqtt.command("status")
def mqtt_status() -> None:
    """Say whether the embedded broker runs and where (exit status 1 when it is stopped)."""
    broker = _broker_or_none(TwinSettings())
    if broker is None:
        return
    state = broker.status()
    if not state["running"]:
        click.echo(f"embedded MQTT broker: stopped (data in {state['folder']})")
        sys.exit(1)
    click.echo(
        f"embedded MQTT broker: running (pid {state['pid']}); subscribers on "
        f"{state['public_url']}, devices on {state['device_url']}; data and log in "
        f"{state['folder']}"
    )
