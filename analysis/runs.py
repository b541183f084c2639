"""Analyses run and kept: the one module that writes `analysis_run`.

A run is checked before anything is stored (its inputs, its city), then kept with the inputs as
the analysis read them (defaults filled in) and, when done, its results and the datasets of the
model it read (name, source checksum, when ingested), so that it can be reproduced and told
apart from a run on a model that has changed since. It runs at once (`wait=True`, the caller
waits) or in the background of this process, its state in the database for any process to
read. A run whose process died stops showing signs of life, and is read as failed.
"""

# ruff: noqa: S608  (the SQL is composed of constants only; every value is a bind parameter)
from __future__ import annotations

import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, text

from analysis.processes import get_process
from cim.errors import CimError, NotFound

log = logging.getLogger(__name__)
SILENT_AFTER = timedelta(
    minutes=30
)  # running, with no sign of life for this long: its process died
_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cim-analysis")


@dataclass(frozen=True)
class Run:
    """An analysis run: its process, inputs, state and results."""

    id: str
    city: str
    process: str
    inputs: dict[str, Any]
    status: str  # accepted, running, successful, failed
    message: str | None
    results: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None = None

    def status_info(self, base: str) -> dict[str, Any]:
        """The run as an OGC API Processes statusInfo document."""
        links = [
            {"href": f"{base}/jobs/{self.id}", "rel": "self", "type": "application/json"},
        ]
        if self.status == "successful":
            links.append(
                {
                    "href": f"{base}/jobs/{self.id}/results",
                    "rel": "http://www.opengis.net/def/rel/ogc/1.0/results",
                    "type": "application/json",
                    "title": "the results",
                }
            )
            links.append(
                {
                    "href": f"{base}/jobs/{self.id}/report",
                    "rel": "describedby",
                    "type": "application/pdf",
                    "title": "the paper to file (PDF; ?lang=en, ?f=html)",
                }
            )
        return {
            "jobID": self.id,
            "type": "process",
            "processID": self.process,
            "status": self.status,
            "message": self.message,
            "created": self.created_at.isoformat(),
            "started": self.started_at.isoformat() if self.started_at else None,
            "finished": self.finished_at.isoformat() if self.finished_at else None,
            "updated": (self.heartbeat_at or self.created_at).isoformat(),
            "progress": 100 if self.status in ("successful", "failed") else None,
            "inputs": self.inputs,
            "links": links,
        }


def _model(conn: Any, city: str) -> list[dict[str, Any]]:
    """The datasets of the city and of its design schemes, as they are now."""
    rows = conn.execute(
        text(
            "SELECT d.city_code, c.scenario, d.name, d.format, d.checksum, d.imported_at "
            "FROM dataset d JOIN city c ON c.code = d.city_code "
            "WHERE d.city_code = :c OR c.base_city = :c ORDER BY c.scenario NULLS FIRST, d.name"
        ),
        {"c": city},
    ).mappings()
    return [
        {
            "dataset": r["name"] if r["scenario"] is None else f"{r['scenario']}: {r['name']}",
            "format": r["format"],
            "sha256": r["checksum"],
            "imported_at": r["imported_at"].isoformat() if r["imported_at"] else None,
        }
        for r in rows
    ]


def submit(engine: Engine, process_id: str, inputs: dict[str, Any], *, wait: bool) -> Run:
    """Check and keep a run, and run it: now, or in the background when `wait` is False.

    Raises:
        NotFound: no such process, city, building or parcel (nothing is stored).
        InvalidInput: the inputs are wrong (nothing is stored).
    """
    process = get_process(process_id)
    checked = process.check(dict(inputs))
    city = checked["city"]
    run_id = secrets.token_hex(8)
    with engine.begin() as conn:
        process.verify(conn, checked)  # the city, and what the inputs name, exist
        conn.execute(
            text(
                "INSERT INTO analysis_run (city_code, id, process, inputs, status) "
                "VALUES (:c, :id, :p, CAST(:i AS jsonb), 'accepted')"
            ),
            {"c": city, "id": run_id, "p": process_id, "i": orjson.dumps(checked).decode()},
        )
    if wait:
        _execute(engine, run_id)
    else:
        _EXECUTOR.submit(_execute, engine, run_id)
    return get_run(engine, run_id)


def _execute(engine: Engine, run_id: str) -> None:
    with engine.begin() as conn:
        row = conn.execute(
            text(
                "UPDATE analysis_run SET status = 'running', started_at = now(), "
                "heartbeat_at = now() WHERE id = :id AND status = 'accepted' "
                "RETURNING process, inputs, city_code"
            ),
            {"id": run_id},
        ).first()
    if row is None:
        return
    process = get_process(row[0])
    try:
        with engine.connect() as conn:
            results = process.compute(conn, row[1])
            results["model"] = _model(conn, row[2])
        status, message, body = "successful", None, orjson.dumps(results).decode()
    except CimError as exc:
        status, message, body = "failed", str(exc), None
    except Exception:
        log.exception("analysis %s (%s) failed", run_id, row[0])
        status, message, body = "failed", "the analysis failed with an internal error", None
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE analysis_run SET status = :s, message = :m, results = CAST(:r AS jsonb),"
                " finished_at = now(), heartbeat_at = now() WHERE id = :id"
            ),
            {"s": status, "m": message, "r": body, "id": run_id},
        )


_COLUMNS = (
    "id, city_code, process, inputs, status, message, created_at, started_at, finished_at, "
    "heartbeat_at, now() - heartbeat_at > :silent AS silent"
)


def _run(row: Any, results: dict[str, Any] | None) -> Run:
    status, message = row["status"], row["message"]
    if status in ("accepted", "running") and row["silent"]:
        status, message = "failed", "the process that ran it stopped"
    return Run(
        row["id"],
        row["city_code"],
        row["process"],
        row["inputs"],
        status,
        message,
        results,
        row["created_at"],
        row["started_at"],
        row["finished_at"],
        row["heartbeat_at"],
    )


def get_run(engine: Engine, run_id: str, with_results: bool = False) -> Run:
    """A run, with its results when asked.

    Raises:
        NotFound: no such run.
    """
    extra = ", results" if with_results else ""
    with engine.connect() as conn:
        row = (
            conn.execute(
                text(f"SELECT {_COLUMNS}{extra} FROM analysis_run WHERE id = :id"),
                {"id": run_id, "silent": SILENT_AFTER},
            )
            .mappings()
            .first()
        )
    if row is None:
        raise NotFound(f"no job {run_id!r}")
    return _run(row, row["results"] if with_results else None)


def list_runs(engine: Engine, limit: int = 100, offset: int = 0) -> list[Run]:
    """Runs, newest first."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                text(
                    f"SELECT {_COLUMNS} FROM analysis_run ORDER BY created_at DESC, id "
                    "LIMIT :limit OFFSET :offset"
                ),
                {"limit": limit, "offset": offset, "silent": SILENT_AFTER},
            )
            .mappings()
            .all()
        )
    return [_run(r, None) for r in rows]
