"""The live twin in the serving process: the MQTT bridge started with the app (when a broker
is there: CIM's own, or the one `CIM_MQTT_URL` names), what SensorThings writes tell it, and
the endpoints the service root announces."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from sqlalchemy import Engine

from cim.errors import CimError
from cim.settings import TwinSettings
from twin.access import sync_broker
from twin.bridge import Bridge
from twin.broker import broker_from_settings

LOG = logging.getLogger("cim.twin")


def broker_address(
    settings: TwinSettings,
) -> tuple[str, int, tuple[str, str] | None, dict[str, Any]]:
    """(host, port, credentials, endpoints) of the broker the service talks to.

    Raises:
        CimError: no broker is running here and no URL names one.
    """
    if settings.mqtt_url:
        url = urlsplit(settings.mqtt_url)
        credentials = (url.username, url.password or "") if url.username else None
        public = f"mqtt://{url.hostname}:{url.port or 1883}"
        return (
            url.hostname or "127.0.0.1",
            url.port or 1883,
            credentials,
            {"create": [public], "receive": [public]},
        )
    broker = broker_from_settings(settings)
    if broker is None or not broker.is_running():
        raise CimError("no MQTT broker: start CIM's own (cim mqtt start) or set CIM_MQTT_URL")
    host, port = urlsplit(broker.public_url).hostname, urlsplit(broker.public_url).port
    return (
        host or "127.0.0.1",
        port or 1883,
        broker.service_credentials(),
        {"create": [broker.device_url], "receive": [broker.public_url]},
    )


def install(app: FastAPI, engine: Engine, settings: TwinSettings | None) -> None:
    """Start the bridge with the app and stop it with the app; until (or unless) it runs,
    SensorThings writes tell no one and the root announces no MQTT endpoint."""
    app.state.twin_notify = lambda what: None
    app.state.twin_mqtt = lambda: {}
    app.state.twin_access_changed = lambda: None
    settings = settings or TwinSettings()

    async def start() -> None:
        try:
            host, port, credentials, endpoints = broker_address(settings)
        except CimError as exc:
            LOG.info("live twin without MQTT: %s", exc)
            return
        bridge = Bridge(engine, host, port, credentials, settings.public_url)
        try:
            bridge.start()
        except (CimError, OSError) as exc:
            LOG.warning("live twin without MQTT: %s", exc)
            return
        app.state.twin_bridge = bridge
        app.state.twin_notify = bridge.notify
        app.state.twin_mqtt = lambda: endpoints
        broker = broker_from_settings(settings)
        if broker is not None:  # CIM's own: its access lists follow the Datastreams

            def access_changed() -> None:
                try:
                    sync_broker(engine, broker)
                except CimError as exc:
                    LOG.warning("MQTT access not rewritten: %s", exc)

            app.state.twin_access_changed = access_changed

    async def stop() -> None:
        bridge = getattr(app.state, "twin_bridge", None)
        if bridge is not None:
            bridge.stop()

    app.router.on_startup.append(start)
    app.router.on_shutdown.append(stop)
