"""The grading API under /grading: catalogues, rounds, values with evidence, scores with their
explanations, ranking, allocation (and what-if), audit log, reports, and the dashboard page.

Reads are open unless `CIM_API_GRADING_PRIVATE=true`; every write needs an API key
(`Authorization: Bearer <key>` or `X-API-Key: <key>`) with a strong enough role, and is audited.
"""

import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.limits import FailureLimiter
from cim.errors import InvalidInput, NotFound, TooLarge, Unauthorized
from cim.settings import ApiSettings
from grading import access, rounds
from grading.access import ROLES
from grading.awards import BUILT_IN_POLICIES, AwardPolicy, built_in_policy, load_policy
from grading.catalogue import BUILT_IN, Catalogue, built_in, load_catalogue
from grading.cim_indicators import Parameters
from grading.regions import REGIONS
from grading.results import what_if

WEB = Path(__file__).resolve().parent / "web"
_bearer = HTTPBearer(auto_error=False, description="A CIM grading API key")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="A CIM grading API key")
Lang = Literal["zh", "en"]
# uploads are the raw request body, described as such in the OpenAPI document
BINARY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


class CityIn(BaseModel):
    """A city taking part in a round."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=64)
    name_zh: str
    name_en: str
    previous_stars: int | None = Field(None, ge=0, le=5)
    previous_total: float | None = None


class RoundIn(BaseModel):
    """A new round: the catalogue and policy by built-in id or in full."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64)
    year: int = Field(ge=2000, le=2100)
    title: str | None = None
    catalogue: str | Catalogue
    policy: str | AwardPolicy
    cities: str | list[CityIn] = Field(description="'shandong' or a list of cities")


class StatusIn(BaseModel):
    """A lifecycle move."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["draft", "submitted", "reviewed", "final"]


class WhatIfIn(BaseModel):
    """Another policy and/or catalogue to compute the round with."""

    # at least one of the two, given (the schema says so, so clients can know)
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["policy"], "properties": {"policy": {"type": "object"}}},
                {"required": ["catalogue"], "properties": {"catalogue": {"type": "object"}}},
            ]
        },
    )
    policy: AwardPolicy | None = None
    catalogue: Catalogue | None = None


class ValueIn(BaseModel):
    """One indicator value and where it comes from."""

    model_config = ConfigDict(extra="forbid")
    value: float | bool | str | None
    unit: str = ""
    source: str = Field("", max_length=2000)
    link: str | None = Field(None, max_length=2000)
    note: str | None = Field(None, max_length=10000)
    evidence_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


def attachment(filename: str, disposition: str = "attachment") -> str:
    """A Content-Disposition header: an ASCII name for every client, the real one (RFC 6266)."""
    ascii_name = "".join(
        c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in filename
    )
    return f"{disposition}; filename=\"{ascii_name or 'file'}\"; filename*=UTF-8''{quote(filename)}"


def grading_router(engine: Engine, settings: ApiSettings) -> APIRouter:
    """The /grading routes bound to `engine`."""
    router = APIRouter(prefix="/grading", tags=["Grading"])

    limiter = FailureLimiter(settings.auth_failures, settings.auth_window_s)

    def authenticated(request: Request, key: str | None) -> access.Actor:
        """The key's actor; failures are counted per client address, and a client that fails
        too often is refused for a while, whatever key it brings."""
        client = request.client.host if request.client else "unknown"
        limiter.check(client)
        try:
            if key == "":
                raise Unauthorized("the credentials are empty or not a bearer token")
            return access.authenticate(engine, key)
        except Unauthorized:
            if key is not None:  # a missing key is not a guess
                limiter.failed(client)
            raise

    def presented(
        request: Request, bearer: HTTPAuthorizationCredentials | None, header: str | None
    ) -> str | None:
        """The key the request brings; "" for credentials that are there but empty or not a
        bearer token (refused like a wrong key); None only when it brings none at all."""
        if bearer is not None or header:
            return bearer.credentials if bearer is not None else header
        scheme = request.headers.get("authorization", "").split(" ")[0].lower()
        if "x-api-key" in request.headers or scheme == "bearer":
            return ""
        return None  # e.g. Basic credentials of a proxy in front: not ours

    def writer(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header: Annotated[str | None, Depends(_header)],
    ) -> access.Actor:
        actor = authenticated(request, presented(request, bearer, header))
        # refused before the operation runs: a viewer changes nothing (finer roles are checked
        # by the operation itself)
        access.require(actor, ROLES[1])
        return actor

    def reader(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header: Annotated[str | None, Depends(_header)],
    ) -> access.Actor | None:
        key = presented(request, bearer, header)
        if settings.grading_private or key is not None:
            return authenticated(request, key)
        return None

    Writer = Annotated[access.Actor, Depends(writer)]
    Reader = Annotated[access.Actor | None, Depends(reader)]

    async def body(request: Request, limit: int) -> bytes:
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise TooLarge(f"the upload is larger than the limit of {limit:,} bytes")
        return bytes(data)

    # ------------------------------------------------------------ catalogues and policies
    @router.get("/catalogues", summary="The built-in indicator catalogues")
    def catalogues(_: Reader) -> list[dict[str, Any]]:
        out = []
        for path in sorted(BUILT_IN.glob("*.yaml")):
            cat = load_catalogue(path)
            out.append(
                {
                    "id": cat.id,
                    "version": cat.version,
                    "standard": cat.standard,
                    "title_zh": cat.title_zh,
                    "title_en": cat.title_en,
                    "areas": len(cat.areas),
                    "indicators": len(cat.indicators),
                }
            )
        return out

    @router.get("/catalogues/{catalogue_id}", summary="A built-in catalogue in full")
    def catalogue(catalogue_id: str, _: Reader) -> dict[str, Any]:
        return built_in(catalogue_id).model_dump(mode="json")

    @router.get("/policies", summary="The built-in award policies (examples)")
    def policies(_: Reader) -> list[dict[str, Any]]:
        return [
            load_policy(p).model_dump(mode="json") for p in sorted(BUILT_IN_POLICIES.glob("*.yaml"))
        ]

    # ------------------------------------------------------------ rounds
    @router.get("/rounds", summary="Assessment rounds")
    def list_rounds(_: Reader) -> list[dict[str, Any]]:
        return [r.summary() for r in rounds.list_rounds(engine)]

    @router.post("/rounds", status_code=201, summary="Create a round (admin)")
    def create_round(spec: RoundIn, actor: Writer) -> dict[str, Any]:
        access.require(actor, "admin")
        cat = built_in(spec.catalogue) if isinstance(spec.catalogue, str) else spec.catalogue
        pol = built_in_policy(spec.policy) if isinstance(spec.policy, str) else spec.policy
        if isinstance(spec.cities, str):
            if spec.cities not in REGIONS:
                raise InvalidInput(f"cities: {spec.cities!r} is not one of {', '.join(REGIONS)}")
            members = REGIONS[spec.cities]
        else:
            members = [rounds.CityEntry(**c.model_dump()) for c in spec.cities]
        rnd = rounds.create_round(
            engine,
            actor,
            spec.id,
            spec.title or f"{cat.title_zh} {spec.year}",
            spec.year,
            cat,
            pol,
            members,
        )
        return rnd.summary()

    @router.get("/rounds/{round_id}", summary="A round, its cities and how many values each has")
    def get_round(round_id: str, _: Reader) -> dict[str, Any]:
        rnd = rounds.get_round(engine, round_id)
        entered = rounds.values(engine, round_id)
        return {
            **rnd.summary(),
            "policy": rnd.policy.model_dump(mode="json"),
            "cities": [
                {
                    "code": c.code,
                    "name_zh": c.name_zh,
                    "name_en": c.name_en,
                    "values": len(entered.get(c.code, {})),
                    "indicators": len(rnd.catalogue.indicators),
                }
                for c in rounds.cities(engine, round_id)
            ],
        }

    @router.post("/rounds/{round_id}/status", summary="Move a round along its lifecycle")
    def move(round_id: str, move: StatusIn, actor: Writer) -> dict[str, Any]:
        return rounds.move(engine, actor, round_id, move.status).summary()

    @router.put("/rounds/{round_id}/policy", summary="Replace the award policy (admin)")
    def set_policy(round_id: str, policy: AwardPolicy, actor: Writer) -> dict[str, Any]:
        rounds.set_policy(engine, actor, round_id, policy)
        return rounds.get_round(engine, round_id).summary()

    # ------------------------------------------------------------ values and evidence
    @router.get("/rounds/{round_id}/values", summary="Every value with its source and evidence")
    def get_values(round_id: str, _: Reader) -> dict[str, Any]:
        return rounds.values(engine, round_id)

    @router.put(
        "/rounds/{round_id}/cities/{city}/values/{indicator}",
        summary="Enter one value (assessor of the city, or higher)",
    )
    def put_value(
        round_id: str, city: str, indicator: str, value: ValueIn, actor: Writer
    ) -> dict[str, Any]:
        entry = rounds.ValueEntry(city=city, indicator=indicator, **value.model_dump())
        changed = rounds.set_values(engine, actor, round_id, [entry])
        stored = rounds.values(engine, round_id).get(city, {}).get(indicator)
        return {"changed": changed, "value": stored}

    @router.post(
        "/rounds/{round_id}/evidence",
        status_code=201,
        summary="Upload an evidence file (the request body); returns its SHA-256",
        openapi_extra=BINARY_BODY,
    )
    async def upload_evidence(
        round_id: str,
        request: Request,
        actor: Writer,
        filename: Annotated[str, Query(pattern=r"^[^\x00-\x1f/\\]{1,200}$")],
    ) -> dict[str, Any]:
        access.require(actor, "assessor")
        content = await body(request, rounds.MAX_EVIDENCE_BYTES)
        media = request.headers.get("content-type", "application/octet-stream")
        digest = await run_in_threadpool(
            rounds.add_evidence,
            engine,
            actor,
            round_id,
            rounds.EvidenceFile(filename, content, media),
        )
        return {"sha256": digest, "size": len(content), "filename": filename}

    @router.get("/rounds/{round_id}/evidence/{sha256}", summary="Download an evidence file")
    def get_evidence(round_id: str, sha256: str, _: Reader) -> Response:
        name, media, content = rounds.get_evidence(engine, round_id, sha256)
        return Response(
            content,
            media_type=media,
            headers={
                "Content-Disposition": attachment(name),
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "sandbox",
            },
        )

    @router.get("/rounds/{round_id}/template.{fmt}", summary="The value template (csv or xlsx)")
    def template(round_id: str, fmt: Literal["csv", "xlsx"], _: Reader) -> Response:
        from grading.templates import template_rows, write_template

        rnd = rounds.get_round(engine, round_id)
        rows = template_rows(
            rnd.catalogue, rounds.cities(engine, round_id), rounds.values(engine, round_id)
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{round_id}-values.{fmt}"
            write_template(path, rows)
            data = path.read_bytes()
        media = (
            "text/csv; charset=utf-8"
            if fmt == "csv"
            else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        return Response(
            data,
            media_type=media,
            headers={"Content-Disposition": attachment(f"{round_id}-values.{fmt}")},
        )

    @router.post(
        "/rounds/{round_id}/imports",
        summary="Import a filled template (the request body, .csv or .xlsx): all rows or none",
        openapi_extra=BINARY_BODY,
    )
    async def import_values(
        round_id: str,
        request: Request,
        actor: Writer,
        filename: Annotated[
            str, Query(pattern=r"^[^\x00-\x1f/\\]{1,200}\.([cC][sS][vV]|[xX][lL][sS][xX])$")
        ],
    ) -> dict[str, Any]:
        access.require(actor, "assessor")
        content = await body(request, rounds.MAX_EVIDENCE_BYTES)
        return await run_in_threadpool(import_file, round_id, actor, filename, content)

    def import_file(
        round_id: str, actor: access.Actor, filename: str, content: bytes
    ) -> dict[str, Any]:
        from grading.templates import read_values

        rnd = rounds.get_round(engine, round_id)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / filename
            path.write_bytes(content)
            try:
                entries, _, empty = read_values(path, rnd.catalogue, files_allowed=False)
            except InvalidInput as exc:
                raise InvalidInput(str(exc).replace(str(path), filename)) from None
        entries = [
            rounds.ValueEntry(**{**e.__dict__, "where": e.where.replace(str(path), filename)})
            for e in entries
        ]
        changed = rounds.set_values(engine, actor, round_id, entries)
        return {"read": len(entries), "changed": changed, "empty": empty}

    @router.post(
        "/rounds/{round_id}/cities/{city}/cim-indicators",
        summary="Compute the indicators the city model proves and enter them, with the query",
    )
    def cim_indicators(
        round_id: str,
        city: str,
        actor: Writer,
        params: Parameters | None = None,
        model_city: str | None = None,
    ) -> list[dict[str, Any]]:
        access.require(actor, "assessor", city)
        done = rounds.enter_cim_indicators(engine, actor, round_id, city, model_city, params)
        return [
            {
                "indicator": ind_id,
                "name": c.name,
                "value": c.value,
                "unit": c.unit,
                "inputs": c.inputs,
                "evidence": c.evidence,
            }
            for ind_id, c in done
        ]

    # ------------------------------------------------------------ results
    @router.get("/rounds/{round_id}/results", summary="Scores, ranking and allocation in full")
    def results(round_id: str, _: Reader) -> dict[str, Any]:
        return rounds.results(engine, round_id)

    @router.get("/rounds/{round_id}/ranking", summary="Cities in merit order")
    def ranking(round_id: str, _: Reader) -> dict[str, Any]:
        res = rounds.results(engine, round_id)
        return {
            "merit_rule": res["merit_rule"],
            "cities": [
                {
                    k: c[k]
                    for k in (
                        "rank",
                        "code",
                        "name_zh",
                        "name_en",
                        "stars",
                        "subtype",
                        "total",
                        "bonus",
                        "score",
                        "amount",
                    )
                }
                for c in res["cities"]
            ],
        }

    @router.get("/rounds/{round_id}/cities/{city}", summary="One city's scores, explained")
    def city_scores(round_id: str, city: str, _: Reader) -> dict[str, Any]:
        res = rounds.results(engine, round_id)
        for c in res["cities"]:
            if c["code"] == city:
                return c
        raise NotFound(f"city {city!r} is not in round {round_id!r}")

    @router.get("/rounds/{round_id}/cities/{city}/radar.svg", summary="A city's radar chart")
    def radar(round_id: str, city: str, _: Reader, lang: Lang = "zh") -> Response:
        from grading.report import city_radar

        res = rounds.results(engine, round_id)
        found = [c for c in res["cities"] if c["code"] == city]
        if not found:
            raise NotFound(f"city {city!r} is not in round {round_id!r}")
        return Response(city_radar(res, found[0], lang), media_type="image/svg+xml")

    @router.get("/rounds/{round_id}/allocation", summary="The award allocation with reasons")
    def allocation(round_id: str, _: Reader) -> dict[str, Any]:
        res = rounds.results(engine, round_id)
        return {
            "policy": res["policy"],
            "merit_rule": res["merit_rule"],
            "allocation": res["allocation"],
            "cities": [
                {
                    k: c[k]
                    for k in (
                        "rank",
                        "code",
                        "name_zh",
                        "name_en",
                        "stars",
                        "score",
                        "amount",
                        "award_reason",
                    )
                }
                for c in res["cities"]
            ],
        }

    @router.post(
        "/rounds/{round_id}/what-if",
        summary="Score and allocate with another policy or catalogue, side by side (changes "
        "nothing)",
        openapi_extra={"x-read-only": True},  # a POST for its body; readers may use it
    )
    def compare(round_id: str, change: WhatIfIn, _: Reader) -> dict[str, Any]:
        if change.policy is None and change.catalogue is None:
            raise InvalidInput("give a policy, a catalogue or both to compare with")
        current = rounds.results(engine, round_id)
        other = rounds.results(engine, round_id, change.policy, change.catalogue)
        return {
            "a": {"policy": current["policy"]["id"], "catalogue": current["catalogue"]["id"]},
            "b": {"policy": other["policy"]["id"], "catalogue": other["catalogue"]["id"]},
            "allocated": {
                "a": current["allocation"]["allocated"],
                "b": other["allocation"]["allocated"],
            },
            "cities": what_if(current, other),
        }

    @router.get("/rounds/{round_id}/audit", summary="The round's audit log, oldest first")
    def audit(round_id: str, _: Reader) -> list[dict[str, Any]]:
        rounds.get_round(engine, round_id)
        return rounds.audit_log(engine, round_id)

    @router.get("/rounds/{round_id}/report.{fmt}", summary="The round report (html or pdf)")
    def report(round_id: str, fmt: Literal["html", "pdf"], _: Reader, lang: Lang = "zh") -> Any:
        from grading.report import render_html, render_pdf

        res = rounds.results(engine, round_id)
        info = rounds.get_round(engine, round_id).summary()
        if fmt == "html":
            return HTMLResponse(render_html(res, info, lang))
        return Response(
            render_pdf(res, info, lang),
            media_type="application/pdf",
            headers={"Content-Disposition": attachment(f"{round_id}-report.pdf", "inline")},
        )

    @router.get(
        "/dashboard", summary="The grading dashboard (web page)", response_class=HTMLResponse
    )
    def dashboard() -> Any:
        return FileResponse(WEB / "grading.html", media_type="text/html")

    @router.get("", summary="Links to the grading resources", include_in_schema=True)
    def landing(request: Request, _: Reader) -> JSONResponse:
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "title": "CIM smart-city grading",
                "links": [
                    {"href": f"{base}/grading/catalogues", "rel": "catalogues"},
                    {"href": f"{base}/grading/policies", "rel": "policies"},
                    {"href": f"{base}/grading/rounds", "rel": "rounds"},
                    {"href": f"{base}/grading/dashboard", "rel": "dashboard", "type": "text/html"},
                ],
            }
        )

    return router
