"""Computing a city's CIM indicators as a job: checked at once (who asks, the round, what the
indicators need), then run in the background, with its progress in the database, so that no
request waits minutes for a large city's model.

One job runs per city of a round at a time (a unique index refuses a second, from any process).
A job whose process died stops showing signs of life: it is marked failed when the city is next
computed, or seen as such when read. The command line runs the same job in the foreground.
"""

from __future__ import annotations

import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from cim.errors import CimError, Conflict, NotFound
from grading import cim_indicators
from grading.access import Actor
from grading.computed import Progress, plan_cim_indicators, run_plan

log = logging.getLogger(__name__)
SILENT_AFTER = timedelta(minutes=15)  # no progress for this long: the job's process is gone
WORKERS = 2  # jobs computed at once by one process (each holds one database connection)
_EXECUTOR = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="cim-job")


@dataclass(frozen=True)
class Job:
    """A computation of one city's CIM indicators."""

    id: str
    round_id: str
    city: str
    status: str  # running, done or failed
    request: dict[str, Any]
    progress: dict[str, Any] | None
    result: list[dict[str, Any]] | None
    error: str | None
    requested_by: str
    created_at: datetime
    heartbeat_at: datetime
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for k in ("created_at", "heartbeat_at", "finished_at"):
            out[k] = out[k].isoformat() if out[k] else None
        return out


def start(
    engine: Engine,
    actor: Actor,
    round_id: str,
    city: str,
    model_city: str | None = None,
    params: cim_indicators.Parameters | None = None,
    only: tuple[str, ...] = (),
    background: bool = True,
    progress: Progress | None = None,
) -> Job:
    """Check and start the computation of a city's CIM indicators; in the background (returns
    at once, the job running) or not (returns when it is done, raising what it raised).

    Raises:
        as `grading.computed.plan_cim_indicators`; Conflict: a job of the city is running.
    """
    plan = plan_cim_indicators(engine, actor, round_id, city, model_city, params, only)
    request = {
        "model_city": plan.model,
        "only": list(only),
        "parameters": None if params is None else params.model_dump(mode="json"),
    }
    job_id = secrets.token_hex(8)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE grading_job SET status = 'failed', finished_at = now(), error = "
                "'stopped: no sign of life since ' || heartbeat_at::text WHERE round_id = :r "
                "AND city_code = :c AND status = 'running' AND heartbeat_at < now() - :silent"
            ),
            {"r": round_id, "c": city, "silent": SILENT_AFTER},
        )
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO grading_job (id, round_id, city_code, request, requested_by) "
                    "VALUES (:id, :r, :c, CAST(:req AS jsonb), :by)"
                ),
                {
                    "id": job_id,
                    "r": round_id,
                    "c": city,
                    "req": orjson.dumps(request).decode(),
                    "by": actor.name,
                },
            )
    except IntegrityError:
        running = running_job(engine, round_id, city)
        raise Conflict(
            f"city {city}'s CIM indicators are being computed (job {running}, round "
            f"{round_id}): wait for it (GET /grading/rounds/{round_id}/jobs/{running})"
        ) from None
    if background:
        _EXECUTOR.submit(_run, engine, actor, plan, job_id, None, False)
    else:
        _run(engine, actor, plan, job_id, progress, True)
    return get_job(engine, round_id, job_id)


def _run(
    engine: Engine,
    actor: Actor,
    plan: Any,
    job_id: str,
    progress: Progress | None,
    raise_errors: bool,
) -> None:
    def tell(step: str, done: int, of: int) -> None:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE grading_job SET progress = CAST(:p AS jsonb), heartbeat_at = now() "
                    "WHERE id = :id"
                ),
                {"id": job_id, "p": orjson.dumps({"step": step, "done": done, "of": of}).decode()},
            )
        if progress:
            progress(step, done, of)

    try:
        done = run_plan(engine, actor, plan, tell)
    except Exception as exc:
        known = isinstance(exc, CimError)
        if not known:
            log.exception("job %s failed", job_id)
        _finish(engine, job_id, "failed", None, str(exc) if known else "internal error")
        if raise_errors:
            raise
        return
    result = [
        {"indicator": i, "name": c.name, "value": c.value, "unit": c.unit, "inputs": c.inputs}
        for i, c in done
    ]
    _finish(engine, job_id, "done", result, None)


def _finish(engine: Engine, job_id: str, status: str, result: Any, error: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE grading_job SET status = :s, result = CAST(:res AS jsonb), error = :e, "
                "finished_at = now(), heartbeat_at = now() WHERE id = :id"
            ),
            {"id": job_id, "s": status, "res": orjson.dumps(result).decode(), "e": error},
        )


_JOB = (
    "SELECT id, round_id, city_code, status, request, progress, result, error, requested_by, "
    "created_at, heartbeat_at, finished_at, heartbeat_at < now() - :silent AS silent "
    "FROM grading_job"
)


def get_job(engine: Engine, round_id: str, job_id: str) -> Job:
    """A job of a round (a running one without signs of life is shown failed).

    Raises:
        NotFound: no such job in the round.
    """
    with engine.connect() as conn:
        row = conn.execute(
            text(_JOB + " WHERE id = :id AND round_id = :r"),
            {"id": job_id, "r": round_id, "silent": SILENT_AFTER},
        ).first()
    if row is None:
        raise NotFound(f"no job {job_id!r} in round {round_id!r}")
    status, error = row.status, row.error
    if status == "running" and row.silent:
        status, error = "failed", f"stopped: no sign of life since {row.heartbeat_at.isoformat()}"
    return Job(
        row.id,
        row.round_id,
        row.city_code,
        status,
        row.request,
        row.progress,
        row.result,
        error,
        row.requested_by,
        row.created_at,
        row.heartbeat_at,
        row.finished_at,
    )


def running_job(engine: Engine, round_id: str, city: str) -> str | None:
    """The id of the city's running job, if any."""
    with engine.connect() as conn:
        found: str | None = conn.execute(
            text(
                "SELECT id FROM grading_job WHERE round_id = :r AND city_code = :c "
                "AND status = 'running'"
            ),
            {"r": round_id, "c": city},
        ).scalar()
    return found


def wait(engine: Engine, round_id: str, job_id: str, timeout_s: float = 600.0) -> Job:
    """The job once it is no longer running (for scripts and tests).

    Raises:
        TimeoutError: still running after `timeout_s`.
    """
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        job = get_job(engine, round_id, job_id)
        if job.status != "running":
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still running after {timeout_s:.0f} s")
        time.sleep(0.05)
