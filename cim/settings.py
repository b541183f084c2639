"""Settings, one class per concern, read from environment variables with a `CIM_` prefix."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated

from platformdirs import user_data_dir
from pydantic import BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def default_data_dir() -> Path:
    """Where the embedded database and caches live unless `CIM_DATA_DIR` says otherwise.

    As root the user's data directory sits under /root, which the `postgres` account running the
    embedded cluster cannot enter, so root gets a system location instead.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/cim")
    return Path(user_data_dir("cim"))


def _urls(value: object) -> list[str]:
    """Database URLs from a list, a JSON list or a comma-separated string."""
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else text.split(",")
    if not isinstance(value, list):
        raise ValueError("a list of database URLs, e.g. postgresql://cim:pw@standby:5432/cim")
    urls = [str(v).strip() for v in value if str(v).strip()]
    for url in urls:
        if not url.startswith(("postgresql", "postgres://")):
            raise ValueError(f"{url.split('@')[-1]!r} is not a postgresql:// URL")
    return urls


class DatabaseSettings(BaseSettings):
    """Which PostgreSQL + PostGIS server to use, or where to run the embedded one."""

    model_config = SettingsConfigDict(env_prefix="CIM_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of an existing PostGIS database; unset = embedded cluster.",
    )
    data_dir: Path = Field(default_factory=default_data_dir)
    db_port: int = Field(default=54329, description="Port of the embedded cluster (loopback only).")
    db_shared_buffers_mb: int | None = Field(
        default=None,
        ge=16,
        description="Shared buffers of the embedded cluster in MB; unset = a quarter of the "
        "machine's (or container's) memory, from 128 MB to 1 GB. Takes effect when it starts.",
    )
    database_read_urls: Annotated[list[str], NoDecode, BeforeValidator(_urls)] = Field(
        default_factory=list,
        description="URLs of hot standbys of the database (comma-separated or a JSON list): "
        "tiles, features and dashboard reads go to them, writes to the primary; none by "
        "default: everything on the primary.",
    )
    read_wait_s: float = Field(
        default=0.5,
        ge=0,
        description="How long a read waits for a standby to replay the primary's latest "
        "commits before it goes to the primary instead, in seconds.",
    )
    read_retry_s: float = Field(
        default=5.0, gt=0, description="Seconds an unreachable standby is left out of reads."
    )

    @property
    def embedded(self) -> bool:
        """True when CIM runs its own private cluster."""
        return not self.database_url


class IngestSettings(BaseSettings):
    """Limits that protect the ingest from hostile or broken files."""

    model_config = SettingsConfigDict(env_prefix="CIM_INGEST_", extra="ignore")

    max_line_bytes: int = Field(
        default=64 * 1024 * 1024, description="Longest CityJSONSeq line accepted, in bytes."
    )
    batch_size: int = Field(default=2000, description="City objects written per COPY batch.")
    max_abs_coordinate: float = Field(
        default=1e8, description="Coordinates beyond this magnitude are rejected as absurd."
    )


def _networks(value: object) -> list[str]:
    """Addresses and networks (an address is a network of one), from a list, a JSON list or a
    comma-separated string; a typo is an error at start-up rather than a proxy not trusted."""
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else text.split(",")
    if not isinstance(value, list):
        raise ValueError("a list of addresses or networks, e.g. 10.0.0.2,172.16.0.0/12")
    out = []
    for item in (str(v).strip() for v in value):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return out


Networks = Annotated[list[str], NoDecode, BeforeValidator(_networks)]


class ApiSettings(BaseSettings):
    """How the HTTP service listens and pages."""

    model_config = SettingsConfigDict(env_prefix="CIM_API_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    default_limit: int = 10
    max_limit: int = 10000
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    cesium_dir: Path | None = Field(
        default=None, description="CesiumJS Build/Cesium folder (default: the npm package)"
    )
    auth_failures: int = Field(
        default=10, ge=1, description="Failed authentications a client may make per window"
    )
    auth_window_s: float = Field(
        default=60.0, gt=0, description="The window of auth_failures, in seconds"
    )
    trusted_proxies: Networks = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of the reverse proxies in front of the "
        "service, whose X-Forwarded-For and X-Forwarded-Proto are believed (comma-separated or "
        "a JSON list); none by default: the client is the connection's peer",
    )
    max_offset: int = Field(
        default=1_000_000, ge=0, description="The deepest item a Features page may start at"
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a client has to send a request's head, from its connection or its "
        "previous response; then 408 and the connection is closed",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a client has to send a request's body, one more for every "
        "body_min_rate bytes it sent; then 408 and the connection is closed",
    )
    body_min_rate: int = Field(
        default=1000, gt=0, description="Bytes a second a slow body must keep up (see above)"
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Connections each server process holds at once; a request beyond gets 503",
    )
    grading_private: bool = Field(
        default=False, description="Grading reads need a key too (any role); writes always do."
    )
    twin_private: bool = Field(
        default=False,
        description="SensorThings reads (/v1.1) need a twin key too (any role); writes always do.",
    )
    grading_public_drafts: bool = Field(
        default=False,
        description="Rounds that are not final are readable without a key too (a transparent "
        "process); by default only final rounds are.",
    )
    heavy_requests: int = Field(
        default=2,
        ge=1,
        description="Heavy requests (large feature pages, report renders, what-ifs) each server "
        "process runs at once; more wait for a slot",
    )
    heavy_wait_s: float = Field(
        default=10.0, ge=0, description="How long a heavy request waits for a slot before a 503"
    )
    heavy_page: int = Field(
        default=1000, ge=1, description="A feature page of more objects than this is heavy"
    )


class TileSettings(BaseSettings):
    """How 3D Tiles contents are made and kept."""

    model_config = SettingsConfigDict(env_prefix="CIM_TILES_", extra="ignore")

    meshopt: bool = Field(
        default=True,
        description="Compress 3D Tiles 1.1 content with EXT_meshopt_compression (0 = plain glTF).",
    )
    memory_mb: int = Field(
        default=256, ge=0, description="Tile contents each serving process keeps in memory, in MB."
    )
    content_max_kb: int = Field(
        default=2000,
        ge=1,
        description="The most a tile content may take, in KB before HTTP compression: the objects"
        " of a fuller tile are given out to finer cells (implicit tilesets).",
    )


def settings_problem(exc: ValidationError) -> str:
    """What is wrong with the environment, naming each variable as it is set (for the command
    line, which otherwise would show pydantic's traceback)."""
    prefix = next(
        (
            str(cls.model_config.get("env_prefix", ""))
            for cls in BaseSettings.__subclasses__()
            if cls.__name__ == exc.title
        ),
        "CIM_",
    )
    return "; ".join(
        f"{prefix}{'_'.join(map(str, e['loc'])).upper()}={e['input']!r}: {e['msg']}"
        for e in exc.errors()
    )


def _mqtt_url(value: object) -> object:
    """An MQTT broker's URL, or None for an empty one (unset means the embedded broker)."""
    if isinstance(value, str):
        value = value.strip() or None
        if value and not value.startswith("mqtt://"):
            raise ValueError("an mqtt://host:port URL of a broker (mqtts:// is not supported)")
    return value


class TwinSettings(BaseSettings):
    """Which MQTT broker carries the live twin (SensorThings' MQTT extension): the one
    `CIM_MQTT_URL` names, or CIM's own mosquitto beside the embedded database."""

    model_config = SettingsConfigDict(env_prefix="CIM_", extra="ignore")

    mqtt_url: Annotated[str | None, BeforeValidator(_mqtt_url)] = Field(
        default=None,
        description="mqtt://[user:password@]host:port of an existing broker; unset = CIM runs "
        "its own (cim mqtt start).",
    )
    mqtt_port: int = Field(
        default=18830,
        ge=1,
        le=65535,
        description="Public port of the embedded broker: anyone subscribes to v1.1/# there; "
        "only CIM publishes.",
    )
    mqtt_device_port: int = Field(
        default=18831,
        ge=1,
        le=65535,
        description="Device port of the embedded broker: devices publish Observations there "
        "with the keys CIM issued.",
    )
    mqtt_host: str = Field(
        default="127.0.0.1",
        description="Address the embedded broker listens on (0.0.0.0 for every interface).",
    )
    data_dir: Path = Field(default_factory=default_data_dir)
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The service's address as clients see it: the links in what the MQTT "
        "bridge publishes (@iot.selfLink) start with it.",
    )

    @property
    def embedded(self) -> bool:
        """True when CIM runs its own private broker."""
        return not self.mqtt_url
