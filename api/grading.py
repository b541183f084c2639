"""The grading API under /grading: catalogues, rounds, values with evidence, scores with their
explanations, ranking, allocation (and what-if), audit log, reports, and the dashboard page.

Reads are open unless `CIM_API_GRADING_PRIVATE=true`; every write needs an API key
(`Authorization: Bearer <key>` or `X-API-Key: <key>`) with a strong enough role, and is audited
(see api/dependencies.py). Each route parses, calls the grading package and serialises.
"""

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.dependencies import (
    DB,
    Cache,
    HeavySlot,
    ReadDB,
    Reader,
    ReportCache,
    Reports,
    RoundReader,
    Settings,
    Upload,
    Writer,
    upload,
)
from api.limits import worker_engine
from cim.errors import InvalidInput
from grading import (
    access,
    areas,
    comparison,
    evidence,
    exemptions,
    jobs,
    outcome,
    platform,
    rounds,
    values,
)
from grading.awards import BUILT_IN_POLICIES, AwardPolicy, built_in_policy, load_policy
from grading.catalogue import (
    BUILT_IN,
    MAX_AREAS,
    MAX_INDICATORS,
    NAME,
    TEXT,
    Catalogue,
    built_in,
    load_catalogue,
)
from grading.cim_indicators import Parameters
from grading.regions import REGIONS
from grading.report import city_radar, render_html, render_pdf
from grading.results import what_if
from grading.templates import import_values as import_template
from grading.templates import round_template, template_bytes

WEB = Path(__file__).resolve().parent / "web"
Lang = Literal["zh", "en"]
# uploads are the raw request body, described as such in the OpenAPI document
BINARY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
# uploads under a plain file name (no folder, no control characters); templates are .csv or .xlsx
EvidenceUpload = Annotated[Upload, Depends(upload(r"^[^\x00-\x1f/\\]{1,200}$"))]
TemplateUpload = Annotated[
    Upload, Depends(upload(r"^[^\x00-\x1f/\\]{1,200}\.([cC][sS][vV]|[xX][lL][sS][xX])$"))
]
TEMPLATE_MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

router = APIRouter(prefix="/grading", tags=["Grading"])


class CityIn(BaseModel):
    """A city taking part in a round."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=64)
    name_zh: str = Field(min_length=1, max_length=NAME)
    name_en: str = Field(min_length=1, max_length=NAME)
    previous_stars: int | None = Field(None, ge=0, le=5)
    previous_total: float | None = Field(None, ge=0, allow_inf_nan=False)


class RoundIn(BaseModel):
    """A new round: the catalogue and policy by built-in id or in full."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64)
    year: int = Field(ge=2000, le=2100)
    title: str | None = Field(None, min_length=1, max_length=TEXT)
    catalogue: str | Catalogue
    policy: str | AwardPolicy
    cities: str | list[CityIn] = Field(
        description="'shandong' or a list of cities", max_length=rounds.MAX_CITIES
    )

    def members(self) -> list[rounds.CityEntry]:
        """The round's cities: a named region's, or the ones listed.

        Raises:
            InvalidInput: an unknown region.
        """
        if not isinstance(self.cities, str):
            return [rounds.CityEntry(**c.model_dump()) for c in self.cities]
        if self.cities not in REGIONS:
            raise InvalidInput(f"cities: {self.cities!r} is not one of {', '.join(REGIONS)}")
        return REGIONS[self.cities]


class StatusIn(BaseModel):
    """A lifecycle move."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["draft", "submitted", "reviewed", "final"]
    reason: str = Field(min_length=1, max_length=2000, description="why (kept in the audit log)")


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
    reason: str | None = Field(None, max_length=2000, description="why the value changes")


def attachment(filename: str, disposition: str = "attachment") -> str:
    """A Content-Disposition header: an ASCII name for every client, the real one (RFC 6266)."""
    ascii_name = "".join(
        c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in filename
    )
    return f"{disposition}; filename=\"{ascii_name or 'file'}\"; filename*=UTF-8''{quote(filename)}"


# ---------------------------------------------------------------- catalogues and policies
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


# ---------------------------------------------------------------- rounds
@router.get("/rounds", summary="Assessment rounds")
def list_rounds(actor: Reader, engine: ReadDB, settings: Settings) -> list[dict[str, Any]]:
    # without a key, only final rounds (or every round, when drafts are public)
    show_all = actor is not None or settings.grading_public_drafts
    return [r.summary() for r in rounds.list_rounds(engine) if show_all or r.status == "final"]


@router.post("/rounds", status_code=201, summary="Create a round (admin)")
def create_round(spec: RoundIn, actor: Writer, engine: DB) -> dict[str, Any]:
    access.require(actor, "admin")
    cat = built_in(spec.catalogue) if isinstance(spec.catalogue, str) else spec.catalogue
    pol = built_in_policy(spec.policy) if isinstance(spec.policy, str) else spec.policy
    title = spec.title or f"{cat.title_zh} {spec.year}"
    members = spec.members()
    return rounds.create_round(
        engine, actor, spec.id, title, spec.year, cat, pol, members
    ).summary()


@router.get("/rounds/{round_id}", summary="A round, its cities and how many values each has")
def get_round(round_id: str, _: RoundReader, engine: ReadDB) -> dict[str, Any]:
    rnd = rounds.get_round(engine, round_id)
    entered = values.entered(engine, round_id)
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
def move(round_id: str, move: StatusIn, actor: Writer, engine: DB) -> dict[str, Any]:
    return rounds.move(engine, actor, round_id, move.status, move.reason).summary()


@router.put("/rounds/{round_id}/policy", summary="Replace the award policy (admin)")
def set_policy(round_id: str, policy: AwardPolicy, actor: Writer, engine: DB) -> dict[str, Any]:
    rounds.set_policy(engine, actor, round_id, policy)
    return rounds.get_round(engine, round_id).summary()


# ---------------------------------------------------------------- values and evidence
@router.get("/rounds/{round_id}/values", summary="Every value with its source and evidence")
def get_values(round_id: str, _: RoundReader, engine: DB) -> dict[str, Any]:
    return values.entered(engine, round_id)


@router.put(
    "/rounds/{round_id}/cities/{city}/values/{indicator}",
    summary="Enter one value (assessor of the city, or higher)",
)
def put_value(
    round_id: str, city: str, indicator: str, value: ValueIn, actor: Writer, engine: DB
) -> dict[str, Any]:
    # what the body does not give (source, link, note, evidence) the value keeps
    entry = values.ValueEntry(
        city=city, indicator=indicator, **value.model_dump(exclude_unset=True)
    )
    changed = values.set_values(engine, actor, round_id, [entry])
    return _changed(engine, round_id, city, indicator, changed)


class ChoiceIn(BaseModel):
    """Which of a city's two values of an indicator counts, and why."""

    model_config = ConfigDict(extra="forbid")
    counts: Literal["reported", "computed"]
    reason: str = Field(min_length=1, max_length=10000)


@router.put(
    "/rounds/{round_id}/cities/{city}/choices/{indicator}",
    summary="Choose which value counts: reported or computed from the model (reviewer, admin)",
)
def put_choice(
    round_id: str, city: str, indicator: str, choice: ChoiceIn, actor: Writer, engine: DB
) -> dict[str, Any]:
    changed = values.choose(engine, actor, round_id, city, indicator, **choice.model_dump())
    return _changed(engine, round_id, city, indicator, changed)


def _changed(engine: Any, round_id: str, city: str, indicator: str, changed: Any) -> dict[str, Any]:
    """What a change answers: whether anything changed, and the value that counts now."""
    return {
        "changed": changed,
        "value": values.entered(engine, round_id).get(city, {}).get(indicator),
    }


@router.post(
    "/rounds/{round_id}/evidence",
    status_code=201,
    summary="Upload an evidence file (the request body); returns its SHA-256",
    openapi_extra=BINARY_BODY,
)
async def upload_evidence(
    round_id: str, actor: Writer, engine: DB, file: EvidenceUpload
) -> dict[str, Any]:
    proof = evidence.EvidenceFile(file.filename, file.content, file.media_type)
    digest = await run_in_threadpool(evidence.add_evidence, engine, actor, round_id, proof)
    return {"sha256": digest, "size": len(file.content), "filename": file.filename}


class ExemptionIn(BaseModel):
    """Why a required value of a city (or every value of it) may be missing."""

    model_config = ConfigDict(extra="forbid")
    indicator: str | None = Field(None, description="default: every indicator of the city")
    reason: str = Field(min_length=1, max_length=10000)


@router.put(
    "/rounds/{round_id}/cities/{city}/exemptions",
    summary="Record why a required value may be missing at submission (admin)",
)
def put_exemption(
    round_id: str, city: str, exemption: ExemptionIn, actor: Writer, engine: DB
) -> dict[str, Any]:
    exemptions.exempt(engine, actor, round_id, city, exemption.indicator, exemption.reason)
    return {"city": city, "indicator": exemption.indicator, "reason": exemption.reason}


@router.get(
    "/rounds/{round_id}/cities/{city}/values/{indicator}/history",
    summary="Every change of one value: when, who, old -> new, why",
)
def value_history(
    round_id: str, city: str, indicator: str, _: RoundReader, engine: DB
) -> list[dict[str, Any]]:
    return values.history(engine, round_id, city, indicator)


@router.get("/rounds/{round_id}/evidence/{sha256}", summary="Download an evidence file")
def get_evidence(round_id: str, sha256: str, _: RoundReader, engine: DB) -> Response:
    name, media, content = evidence.get_evidence(engine, round_id, sha256)
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
def template(round_id: str, fmt: Literal["csv", "xlsx"], _: RoundReader, engine: DB) -> Response:
    name = f"{round_id}-values.{fmt}"
    data = template_bytes(round_template(engine, round_id), name)
    headers = {"Content-Disposition": attachment(name)}
    return Response(data, media_type=TEMPLATE_MEDIA[fmt], headers=headers)


@router.post(
    "/rounds/{round_id}/imports",
    summary="Import a filled template (the request body, .csv or .xlsx): all rows or none",
    openapi_extra=BINARY_BODY,
)
async def import_values(
    round_id: str, actor: Writer, engine: DB, file: TemplateUpload
) -> dict[str, Any]:
    done = await run_in_threadpool(
        import_template, engine, actor, round_id, file.content, file.filename
    )
    return {"read": done.read, "changed": done.changed, "empty": done.empty}


@router.post(
    "/rounds/{round_id}/cities/{city}/cim-indicators",
    status_code=202,
    summary="Start computing the indicators the city model proves (a job: GET its Location)",
)
def cim_indicators(
    round_id: str,
    city: str,
    actor: Writer,
    engine: DB,
    response: Response,
    params: Parameters | None = None,
    model_city: Annotated[
        str | None,
        Query(description="another city's model, named on purpose (admin; recorded)"),
    ] = None,
    only: Annotated[
        list[str], Query(description="only these indicators (ids or CIM names); default: all")
    ] = [],  # noqa: B006  (FastAPI copies the default)
) -> dict[str, Any]:
    job = jobs.start(engine, actor, round_id, city, model_city, params, tuple(only))
    response.headers["Location"] = f"/grading/rounds/{quote(round_id)}/jobs/{job.id}"
    return job.to_dict()


@router.get(
    "/rounds/{round_id}/jobs/{job_id}",
    summary="A computation's progress and outcome (running, done with its values, or failed)",
)
def get_job(round_id: str, job_id: str, _: RoundReader, engine: DB) -> dict[str, Any]:
    return jobs.get_job(engine, round_id, job_id).to_dict()


AreaUpload = Annotated[
    Upload,
    Depends(
        upload(
            r"^[^\x00-\x1f/\\]{1,200}\.([gG][eE][oO])?([jJ][sS][oO][nN]|[gG][pP][kK][gG]|"
            r"[kK][mM][lL]|[zZ][iI][pP])$"
        )
    ),
]


@router.put(
    "/rounds/{round_id}/cities/{city}/area",
    summary="Declare the area a city's coverage and densities are computed over (admin)",
    description="The request body is the boundary file (GeoJSON, GeoPackage, KML or a zipped "
    "Shapefile); it is kept as evidence under its SHA-256.",
    openapi_extra=BINARY_BODY,
)
async def put_area(
    round_id: str,
    city: str,
    actor: Writer,
    engine: DB,
    kind: Annotated[Literal["built_up", "administrative"], Query()],
    reason: Annotated[str, Query(min_length=1, max_length=10000)],
    file: AreaUpload,
    name: Annotated[str, Query(max_length=200)] = "",
    crs: Annotated[str | None, Query(description="the file's CRS when it names none")] = None,
) -> dict[str, Any]:
    proof = evidence.EvidenceFile(file.filename, file.content, file.media_type)
    area = await run_in_threadpool(
        areas.declare_area, engine, actor, round_id, city, proof, kind, reason, crs, name
    )
    return {"city": city, **area.summary()}


@router.get("/rounds/{round_id}/areas", summary="The declared areas of a round (no geometry)")
def get_areas(round_id: str, _: RoundReader, engine: DB) -> list[dict[str, Any]]:
    return [{"city": a.city, **a.summary()} for a in areas.list_areas(engine, round_id)]


@router.get(
    "/rounds/{round_id}/cities/{city}/area",
    summary="A city's declared area as a GeoJSON feature (lon/lat)",
)
def get_area(round_id: str, city: str, _: RoundReader, engine: DB) -> JSONResponse:
    area = areas.area_of(engine, round_id, city)
    feature = {
        "type": "Feature",
        "id": city,
        "properties": {"city": city, **area.summary()},
        "geometry": orjson.loads(area.geojson),
    }
    return JSONResponse(feature, media_type="application/geo+json")


# the seven function groups, so that the API document lists them
FunctionGroup = Enum("FunctionGroup", {g: g for g in platform.FUNCTION_GROUPS}, type=str)  # type: ignore[misc]


class PlatformFunctionIn(BaseModel):
    """A function group the city's CIM platform offers, with its evidence (uploaded first)."""

    model_config = ConfigDict(extra="forbid")
    evidence_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    note: str = Field("", max_length=10000)


@router.get(
    "/rounds/{round_id}/cities/{city}/platform-functions",
    summary="The CIM platform function groups a city declared (CJJ/T 315-2022 §4.3.2)",
)
def get_platform_functions(round_id: str, city: str, _: RoundReader, engine: DB) -> dict[str, Any]:
    declared = platform.platform_functions(engine, round_id, city)
    offered = {f["group"] for f in declared}
    return {
        "declared": declared,
        "missing": [g for g in platform.FUNCTION_GROUPS if g not in offered],
        "rule": platform.RULE,
    }


@router.put(
    "/rounds/{round_id}/cities/{city}/platform-functions/{group}",
    summary="Declare a function group the city's CIM platform offers, with its evidence",
)
def put_platform_function(
    round_id: str,
    city: str,
    group: FunctionGroup,
    body: PlatformFunctionIn,
    actor: Writer,
    engine: DB,
) -> dict[str, Any]:
    changed = platform.declare_function(
        engine, actor, round_id, city, group.value, body.evidence_sha256, body.note
    )
    return {"changed": changed, "group": group.value, **body.model_dump()}


@router.delete(
    "/rounds/{round_id}/cities/{city}/platform-functions/{group}",
    summary="Withdraw a declared function group, with the reason",
    status_code=204,
)
def delete_platform_function(
    round_id: str,
    city: str,
    group: FunctionGroup,
    reason: Annotated[str, Query(min_length=1, max_length=10000)],
    actor: Writer,
    engine: DB,
) -> Response:
    platform.withdraw_function(engine, actor, round_id, city, group.value, reason)
    return Response(status_code=204)


@router.get("/rounds/{round_id}/results", summary="Scores, ranking and allocation in full")
def results(round_id: str, _: RoundReader, engine: ReadDB, cache: Cache) -> dict[str, Any]:
    return outcome.results(engine, round_id, cache).to_dict()


@router.get("/rounds/{round_id}/ranking", summary="Cities in merit order")
def ranking(round_id: str, _: RoundReader, engine: ReadDB, cache: Cache) -> dict[str, Any]:
    return outcome.results(engine, round_id, cache).ranking_dict()


@router.get("/rounds/{round_id}/cities/{city}", summary="One city's scores, explained")
def city_scores(
    round_id: str, city: str, _: RoundReader, engine: ReadDB, cache: Cache
) -> dict[str, Any]:
    return outcome.results(engine, round_id, cache).city_dict(city)


@router.get("/rounds/{round_id}/cities/{city}/radar.svg", summary="A city's radar chart")
def radar(
    round_id: str, city: str, _: RoundReader, engine: ReadDB, cache: Cache, lang: Lang = "zh"
) -> Response:
    res = outcome.results(engine, round_id, cache)
    return Response(city_radar(res, res.city(city), lang), media_type="image/svg+xml")


@router.get("/rounds/{round_id}/allocation", summary="The award allocation with reasons")
def allocation(round_id: str, _: RoundReader, engine: ReadDB, cache: Cache) -> dict[str, Any]:
    return outcome.results(engine, round_id, cache).allocation_dict()


XLSX_FILE = {TEMPLATE_MEDIA["xlsx"]: {"schema": {"type": "string", "format": "binary"}}}


@router.get(
    "/rounds/{round_id}/export.xlsx",
    summary="Ranking, allocation and values as an Excel workbook (DRAFT marked until final)",
    response_class=Response,
    responses={200: {"content": XLSX_FILE}},
)
def export_workbook(
    round_id: str, _: RoundReader, engine: DB, cache: Cache, lang: Lang = "zh"
) -> Response:
    from grading.workbook import export  # imported here: this block is the route, whole

    return Response(
        export(engine, round_id, lang, cache),
        media_type=TEMPLATE_MEDIA["xlsx"],
        headers={"Content-Disposition": attachment(f"{round_id}-results.xlsx")},
    )


# The body is read as bytes and handed to a heavy worker process as they are: parsing it (a
# catalogue of 500 indicators is 5 ms of JSON) and pickling what that makes, on the serving
# process, held the interpreter's lock while every other request waited. Its schema is WhatIfIn's.
WHAT_IF_BODY_SCHEMA = {
    key: value
    for key, value in WhatIfIn.model_json_schema(
        ref_template="#/components/schemas/{model}"
    ).items()
    if key != "$defs"  # the catalogue's and policy's parts: components of the document already
}


@router.post(
    "/rounds/{round_id}/what-if",
    summary="Score and allocate with another policy or catalogue, side by side (changes nothing)",
    description="Open to whoever may read the round (without a key: a final round, or any round "
    "when drafts are public). The body is at most 256 KiB; a catalogue has at most "
    f"{MAX_AREAS} areas and {MAX_INDICATORS} indicators. A few what-ifs run at a time.",
    openapi_extra={
        "x-read-only": True,  # a POST for its body; readers may use it
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": WHAT_IF_BODY_SCHEMA}},
        },
    },
)
async def compare(
    round_id: str, request: Request, _: RoundReader, heavy: HeavySlot, engine: DB
) -> dict[str, Any]:
    body = await request.body()  # read only now: the caller may read the round
    url = engine.url.render_as_string(hide_password=False)
    done, answer = await run_in_threadpool(heavy.run, what_if_work, url, round_id, body)
    if done == "invalid":
        raise RequestValidationError(answer)
    return answer  # type: ignore[no-any-return]


# a heavy worker process's results of the rounds as they are (computed again when they change)
WHAT_IF_RESULTS = outcome.ResultsCache(size=8)


def what_if_work(
    db: Engine | str, round_id: str, body: bytes | object
) -> tuple[Literal["done", "invalid"], Any]:
    """A what-if's work (in a heavy worker process, see `HeavyGate.run`, where `db` is the
    database's URL): the body (JSON bytes, or what they parse to) parsed and checked, the round
    computed again with it and set beside its current results. ("done", the answer), or
    ("invalid", the body's errors as FastAPI words them).

    Raises:
        InvalidInput: the body gives neither a policy nor a catalogue.
    """
    if isinstance(body, bytes):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return "invalid", [
                {"type": "json_invalid", "loc": ("body", exc.pos), "msg": f"not JSON: {exc.msg}"}
            ]
    try:
        change = WhatIfIn.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        return "invalid", [{**e, "loc": ("body", *e["loc"])} for e in errors]
    if change.policy is None and change.catalogue is None:
        raise InvalidInput("give a policy, a catalogue or both to compare with")
    engine = worker_engine(db) if isinstance(db, str) else db
    current = outcome.results(engine, round_id, WHAT_IF_RESULTS)
    other = outcome.recompute(engine, round_id, policy=change.policy, catalogue=change.catalogue)
    return "done", {
        "a": {"policy": current.policy["id"], "catalogue": current.catalogue.id},
        "b": {"policy": other.policy["id"], "catalogue": other.catalogue.id},
        "allocated": {"a": current.allocation.allocated, "b": other.allocation.allocated},
        "cities": what_if(current, other),
    }


class PreviousIn(BaseModel):
    """The round this one is compared with (None: no previous round), and why."""

    model_config = ConfigDict(extra="forbid")
    previous_round: str | None = Field(description="a final round of an earlier year, or null")
    reason: str = Field(min_length=1, max_length=10000)


@router.put("/rounds/{round_id}/previous", summary="Link the previous round (admin, in a draft)")
def put_previous(round_id: str, link: PreviousIn, actor: Writer, engine: DB) -> dict[str, Any]:
    changed = rounds.link_previous(engine, actor, round_id, link.previous_round, link.reason)
    return {"changed": changed, "previous_round": link.previous_round}


@router.get(
    "/rounds/{round_id}/comparison",
    summary="Each city compared with the previous round: rank, stars, score, award, areas",
)
def get_comparison(round_id: str, _: RoundReader, engine: DB, cache: Cache) -> dict[str, Any]:
    return comparison.compare(engine, round_id, cache).to_dict()


@router.get("/rounds/{round_id}/audit", summary="The round's audit log, oldest first")
def audit(round_id: str, _: RoundReader, engine: DB) -> list[dict[str, Any]]:
    rounds.get_round(engine, round_id)
    return access.audit_log(engine, round_id)


@router.get(
    "/rounds/{round_id}/report.{fmt}",
    summary="The round report (html or pdf)",
    description="Rendered once for the results, round and comparison it shows, then kept: the "
    "report of a draft changes with its values, and shows the time it was rendered.",
)
async def report(  # async: it waits for a heavy slot without holding a worker thread
    round_id: str,
    fmt: Literal["html", "pdf"],
    _: RoundReader,
    engine: DB,
    cache: Cache,
    reports: Reports,
    lang: Lang = "zh",
) -> Any:
    key, render = await run_in_threadpool(_report, engine, round_id, cache, reports, fmt, lang)
    if fmt == "html":
        return HTMLResponse(await reports.made(key, render))
    return Response(
        await reports.made(key, render),
        media_type="application/pdf",
        headers={"Content-Disposition": attachment(f"{round_id}-report.pdf", "inline")},
    )


def _report(
    engine: Engine,
    round_id: str,
    cache: outcome.ResultsCache,
    reports: ReportCache,
    fmt: str,
    lang: str,
) -> tuple[str, Callable[[], bytes]]:
    """A report's key (what it shows) and how to render it (a PDF in a heavy worker process)."""
    res = outcome.results(engine, round_id, cache)
    info = rounds.get_round(engine, round_id).summary()
    cmp = comparison.linked_comparison(engine, round_id, cache)
    shown = {"results": res.sha256(), "round": info, "cmp": cmp and cmp.to_dict()}
    key = reports.key(fmt=fmt, lang=lang, **shown)
    if fmt == "html":
        return key, lambda: render_html(res, info, lang, cmp).encode()
    return key, lambda: reports.gate.run(render_pdf, res, info, lang, cmp)


@router.get("/dashboard", summary="The grading dashboard (web page)", response_class=HTMLResponse)
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
