"""A throwaway PostGIS cluster for benchmarks (or CIM_BENCH_DATABASE_URL when set)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cim.db.cluster import LocalCluster, machine_memory, memory_options
from cim.db.engine import make_engine, upgrade


@contextmanager
def bench_database() -> Iterator[str]:
    """Yield the URL of a migrated, empty database; remove the cluster afterwards."""
    given = os.environ.get("CIM_BENCH_DATABASE_URL")
    if given:
        upgrade(make_engine(given))
        yield given
        return
    root = Path(tempfile.mkdtemp(prefix="cim-bench-pg-"))
    root.chmod(0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # sized to the machine as CIM's embedded cluster is (PostgreSQL's defaults are not)
    cluster = LocalCluster(root, port, memory_options(machine_memory()))
    cluster.start()
    try:
        url = cluster.url()
        upgrade(make_engine(url))
        yield url
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
