"""Settings, one class per concern, read from environment variables with a `CIM_` prefix."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """Where the embedded database and caches live unless `CIM_DATA_DIR` says otherwise.

    As root the user's data directory sits under /root, which the `postgres` account running the
    embedded cluster cannot enter, so root gets a system location instead.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/cim")
    return Path(user_data_dir("cim"))


class DatabaseSettings(BaseSettings):
    """Which PostgreSQL + PostGIS server to use, or where to run the embedded one."""

    model_config = SettingsConfigDict(env_prefix="CIM_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of an existing PostGIS database; unset = embedded cluster.",
    )
    data_dir: Path = Field(default_factory=default_data_dir)
    db_port: int = Field(default=54329, description="Port of the embedded cluster (loopback only).")

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
    grading_private: bool = Field(
        default=False, description="Grading reads need a key too (any role); writes always do."
    )
    grading_public_drafts: bool = Field(
        default=False,
        description="Rounds that are not final are readable without a key too (a transparent "
        "process); by default only final rounds are.",
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
