"""The embedded PostgreSQL is sized to the machine it runs on, not to PostgreSQL's defaults."""

from __future__ import annotations

import os

import pytest

from cim.db.cluster import machine_memory, memory_options
from cim.db.engine import local_cluster
from cim.settings import DatabaseSettings

GB = 2**30


@pytest.mark.parametrize(
    ("memory", "shared", "cache", "maintenance"),
    [
        (2 * GB, "512MB", "1536MB", "128MB"),  # a quarter, three quarters, a sixteenth
        (256 * 2**20, "128MB", "192MB", "64MB"),  # never under 128 MB of buffers
        (24 * GB, "1024MB", "18432MB", "1024MB"),  # nor over 1 GB (bulk ingests slow down)
        (256 * GB, "1024MB", "196608MB", "1024MB"),
    ],
)
def test_memory_follows_the_machine(memory: int, shared: str, cache: str, maintenance: str) -> None:
    options = memory_options(memory)
    assert options["shared_buffers"] == shared
    assert options["effective_cache_size"] == cache
    assert options["maintenance_work_mem"] == maintenance


def test_shared_buffers_can_be_chosen() -> None:
    assert memory_options(24 * GB, 1000)["shared_buffers"] == "1000MB"
    settings = DatabaseSettings(db_shared_buffers_mb=300, data_dir="/nonexistent")
    assert local_cluster(settings).server_options["shared_buffers"] == "300MB"


def test_the_machine_memory_is_read_and_capped_by_the_container() -> None:
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < machine_memory() <= physical
    auto = local_cluster(DatabaseSettings(data_dir="/nonexistent")).server_options
    assert auto == memory_options(machine_memory())
