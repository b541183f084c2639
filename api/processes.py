"""OGC API Processes (Part 1: Core, 1.0) for the planning analyses: `/processes`, each
process's description, its execution (synchronous by default, a job when the request says
`Prefer: respond-async`), and `/jobs` with their status and results. Every execution is kept as
a job with its inputs (`analysis.runs`), synchronous ones too: its results can be read again at
`/jobs/{id}/results`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Header, Query, Request, Response
from sqlalchemy import Engine

from analysis import runs
from analysis.processes import PROCESSES, get_process
from cim.errors import InvalidInput, NotFound

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/ogc-process-description",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/job-list",
]
RESULTS_REL = "http://www.opengis.net/def/rel/ogc/1.0/results"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def processes_router(engine: Engine) -> APIRouter:
    """Routes of the Processes API bound to `engine`."""
    router = APIRouter(tags=["Processes"])

    @router.get("/processes", summary="The analyses this service runs")
    def processes(request: Request) -> Response:
        base = _base(request)
        return _json(
            {
                "processes": [
                    {
                        **p.summary(),
                        "links": [
                            {
                                "href": f"{base}/processes/{p.id}",
                                "rel": "self",
                                "type": "application/json",
                                "title": "its description",
                            }
                        ],
                    }
                    for p in PROCESSES.values()
                ],
                "links": [{"href": f"{base}/processes", "rel": "self", "type": "application/json"}],
            }
        )

    @router.get("/processes/{process_id}", summary="A process's inputs and outputs")
    def process(process_id: str, request: Request) -> Response:
        base = _base(request)
        doc = get_process(process_id).description_doc()
        doc["links"] = [
            {"href": f"{base}/processes/{process_id}", "rel": "self", "type": "application/json"},
            {
                "href": f"{base}/processes/{process_id}/execution",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/execute",
                "title": "execute it",
            },
        ]
        return _json(doc)

    @router.post(
        "/processes/{process_id}/execution",
        summary="Run a process: its results at once, or a job with `Prefer: respond-async`",
        # an analysis reads the model: anyone may run one, as anyone may read (unless reads
        # are private); what it keeps is the run itself
        openapi_extra={"x-read-only": True},
    )
    def execute(
        process_id: str,
        request: Request,
        body: Annotated[dict[str, Any], Body(examples=[{"inputs": {"city": "370100"}}])],
        prefer: Annotated[str | None, Header()] = None,
    ) -> Response:
        get_process(process_id)  # 404 before the body is read
        inputs = body.get("inputs", {})
        if not isinstance(inputs, dict):
            raise InvalidInput("'inputs' is an object of input names and values")
        wait = "respond-async" not in (prefer or "").replace(" ", "").split(",")
        run = runs.submit(engine, process_id, inputs, wait=wait)
        base = _base(request)
        where = f"{base}/jobs/{run.id}"
        if not wait:
            return _json(
                run.status_info(base),
                201,
                {"Location": where, "Preference-Applied": "respond-async"},
            )
        if run.status != "successful":
            done = runs.get_run(engine, run.id)
            return _json(
                {
                    "type": "about:blank",
                    "title": "the analysis failed",
                    "status": 400,
                    "detail": done.message,
                    "jobID": run.id,
                },
                400,
                {"Location": where},
            )
        results = runs.get_run(engine, run.id, with_results=True).results
        return Response(
            orjson.dumps(results),
            media_type="application/json",
            headers={"Location": where, "Link": f'<{where}>; rel="monitor"'},
        )

    @router.get("/jobs", summary="The analyses run, newest first")
    def jobs(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> Response:
        base = _base(request)
        found = runs.list_runs(engine, limit, offset)
        links = [
            {
                "href": f"{base}/jobs?limit={limit}&offset={offset}",
                "rel": "self",
                "type": "application/json",
            }
        ]
        if len(found) == limit:
            links.append(
                {
                    "href": f"{base}/jobs?limit={limit}&offset={offset + limit}",
                    "rel": "next",
                    "type": "application/json",
                }
            )
        return _json({"jobs": [r.status_info(base) for r in found], "links": links})

    @router.get("/jobs/{job_id}", summary="A job's status")
    def job(job_id: str, request: Request) -> Response:
        return _json(runs.get_run(engine, job_id).status_info(_base(request)))

    @router.get("/jobs/{job_id}/results", summary="A job's results")
    def job_results(job_id: str) -> Response:
        run = runs.get_run(engine, job_id, with_results=True)
        if run.status == "failed":
            raise InvalidInput(f"job {job_id} failed: {run.message}")
        if run.status != "successful" or run.results is None:
            raise NotFound(f"job {job_id} is {run.status}: its results are not ready")
        return _json(run.results)

    @router.get(
        "/jobs/{job_id}/report",
        summary="A job's paper to file: inputs, model, rule, figures and a plan of the model",
        responses={200: {"content": {"application/pdf": {}, "text/html": {}}}},
    )
    def job_report(
        job_id: str,
        lang: Annotated[Literal["zh", "en"], Query(description="zh (default) or en")] = "zh",
        f: Annotated[Literal["pdf", "html"], Query(description="pdf (default) or html")] = "pdf",
    ) -> Response:
        from analysis.report import render_html, render_pdf

        if f == "html":
            return Response(render_html(engine, job_id, lang), media_type="text/html")
        name = f"cim-{job_id}-{lang}.pdf"
        return Response(
            render_pdf(engine, job_id, lang),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return router
