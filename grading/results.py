"""A round's results as one typed document: every city's scores with reasons, its rank and award,
the allocation totals and what a reader needs of the catalogue (`grading.assessment` makes it;
a final round freezes it).

The API (and through it the dashboard), the command line and the report all read `RoundResults`;
its JSON forms are written here and nowhere else: `to_dict` (the whole document; `to_json` gives
the canonical bytes a final round's SHA-256 is of), `ranking_dict`, `allocation_dict` and
`what_if`.
"""

from __future__ import annotations

import hashlib
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from functools import cache
from typing import Any, TypeVar, cast, get_args, get_origin, get_type_hints

import orjson

from cim.errors import NotFound
from grading.catalogue import Catalogue

# what the ranking and allocation views show of each city
RANKING_FIELDS = (
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
ALLOCATION_FIELDS = (
    "rank",
    "code",
    "name_zh",
    "name_en",
    "stars",
    "score",
    "amount",
    "award_reason",
)
# where an entered value came from, as each scored indicator carries it (see ScoredIndicator)
PROVENANCE_FIELDS = (
    "source",
    "link",
    "note",
    "evidence_sha256",
    "evidence_filename",
    "computed",
    "entered_by",
    "entered_at",
)


def canonical_json(data: Any) -> bytes:
    """The bytes whose SHA-256 identifies a result: sorted keys, no whitespace."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


# a field that the document carries only when it has something to say: results of rounds that
# never needed it keep their bytes, and so their SHA-256
WHEN_SET = {"when_set": True}


def _plain(value: Any) -> Any:
    """JSON-ready data: dataclasses as dicts in field order, tuples as lists (copied)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in fields(value)
            if not (f.metadata.get("when_set") and getattr(value, f.name) is None)
        }
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _pick(value: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: _plain(getattr(value, name)) for name in names}


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _typed(hint: Any, value: Any) -> Any:
    """JSON-ready data as `hint` says: the inverse of `_plain`. A member that a document lacks
    (results frozen by an older version) takes the field's default, or None: a final round's
    record stays readable when the results grow a field."""
    if isinstance(hint, type) and is_dataclass(hint):
        hints = _hints(hint)
        return hint(
            **{
                f.name: _typed(hints[f.name], value[f.name]) if f.name in value else _absent(f)
                for f in fields(hint)
            }
        )
    if get_origin(hint) is tuple:  # tuple[X, ...]
        return tuple(_typed(get_args(hint)[0], v) for v in value)
    return value


def _absent(member: Field[Any]) -> Any:
    if member.default is not MISSING:
        return member.default
    if member.default_factory is not MISSING:
        return member.default_factory()
    return None


D = TypeVar("D", bound="Document")


class Document:
    """A part of the results document that can be written as JSON and read back."""

    def to_dict(self) -> dict[str, Any]:
        """This part as JSON-ready data, in the document's key order."""
        return dict(_plain(self))

    @classmethod
    def from_dict(cls: type[D], data: dict[str, Any]) -> D:
        """The part `to_dict` wrote (e.g. a final round's frozen results)."""
        return cast(D, _typed(cls, data))


@dataclass(frozen=True)
class RoundMeta(Document):
    """Which round the results are of."""

    id: str
    title: str
    year: int


@dataclass(frozen=True)
class AreaSummary(Document):
    """An area of the catalogue, as a reader of the results needs it."""

    id: str
    name_zh: str
    name_en: str
    weight: float
    bonus: bool
    cap: float | None
    provisional: bool


@dataclass(frozen=True)
class IndicatorSummary(Document):
    """An indicator of the catalogue, as a reader of the results needs it."""

    id: str
    name_zh: str
    name_en: str
    area: str
    weight: float
    unit: str
    direction: str
    method: str
    veto: bool
    bonus: bool
    computed_from_cim: str | None
    provisional: bool
    provenance: str


@dataclass(frozen=True)
class CatalogueSummary(Document):
    """What a reader of the results needs of the catalogue."""

    id: str
    version: str
    standard: str
    title_zh: str
    title_en: str
    scale: float
    areas: tuple[AreaSummary, ...]
    indicators: tuple[IndicatorSummary, ...]
    star_thresholds: dict[str, float]
    star_rule_provisional: bool

    @classmethod
    def of(cls, catalogue: Catalogue) -> CatalogueSummary:
        """The summary of a catalogue."""
        heading = ("id", "version", "standard", "title_zh", "title_en", "scale")
        return cls(
            **{k: getattr(catalogue, k) for k in heading},
            areas=tuple(
                AreaSummary(
                    a.id,
                    a.name_zh,
                    a.name_en,
                    a.weight,
                    a.bonus,
                    a.cap,
                    a.provenance.status == "provisional",
                )
                for a in catalogue.areas
            ),
            indicators=tuple(
                IndicatorSummary(
                    i.id,
                    i.name_zh,
                    i.name_en,
                    i.area,
                    i.weight,
                    i.unit,
                    i.direction,
                    i.scoring.method,
                    i.veto,
                    i.bonus,
                    i.computed_from_cim,
                    i.provenance.status == "provisional",
                    i.provenance.source,
                )
                for i in catalogue.indicators
            ),
            star_thresholds={str(k): v for k, v in sorted(catalogue.stars.thresholds.items())},
            star_rule_provisional=catalogue.stars.provenance.status == "provisional",
        )


@dataclass(frozen=True)
class AreaShare(Document):
    """A city's points in one area, and their share of what the area's indicators can give."""

    id: str
    points: float
    weight: float
    bonus: bool
    share: float


@dataclass(frozen=True)
class ScoredIndicator(Document):
    """One indicator of a city: value -> level -> points with the reason, and where the value
    came from (source, link, evidence, the query of a model-computed value, who entered it)."""

    id: str
    value: Any
    level: float
    points: float
    reason: str
    reason_zh: str
    source: str | None
    link: str | None
    note: str | None
    evidence_sha256: str | None
    evidence_filename: str | None
    computed: dict[str, Any] | None
    entered_by: str | None
    entered_at: str | None
    # the city's other value of the indicator (reported, or computed from the city model), and
    # the committee's choice of which counts, with its reason
    alternative: dict[str, Any] | None = field(default=None, metadata=WHEN_SET)
    choice: dict[str, Any] | None = field(default=None, metadata=WHEN_SET)


@dataclass(frozen=True)
class RankedCity(Document):
    """A city's scores with their reasons, its place in merit order and its award."""

    # the city, as the round lists it
    code: str
    name_zh: str
    name_en: str
    previous_stars: int | None
    previous_total: float | None
    # its place: merit order (None: not assessed), star level (基础型/成长型 subtype), points
    # without and with bonus
    rank: int | None
    stars: int
    subtype: str | None
    total: float
    bonus: float
    score: float
    # why: indicators that vetoed a star, and the star rule's reasons
    vetoed: tuple[str, ...]
    reasons: tuple[str, ...]
    reasons_zh: tuple[str, ...]
    # the award and why
    amount: float
    award_reason: str
    award_reason_zh: str
    # the detail: indicators without a value, each area, each indicator
    missing: tuple[str, ...]
    areas: tuple[AreaShare, ...]
    indicators: tuple[ScoredIndicator, ...]
    # 未评: no value at all, so neither ranked among the assessed cities nor given stars
    not_assessed: bool | None = field(default=None, metadata=WHEN_SET)


@dataclass(frozen=True)
class AllocationTotals(Document):
    """The budget, what was allocated and left, and how many cities were eligible."""

    budget: float
    allocated: float
    left: float
    eligible: int


@dataclass(frozen=True)
class RoundResults(Document):
    """A round's results: cities in merit order with scores, reasons and awards."""

    round: RoundMeta
    catalogue: CatalogueSummary
    policy: dict[str, Any]  # the award policy as JSON, exactly as the results record it
    merit_rule: str
    merit_rule_zh: str
    cities: tuple[RankedCity, ...]
    allocation: AllocationTotals

    def to_json(self) -> bytes:
        """The canonical bytes of the document (what a final round's SHA-256 is of)."""
        return canonical_json(self.to_dict())

    def sha256(self) -> str:
        """The SHA-256 of the canonical bytes, as a final round freezes it."""
        return hashlib.sha256(self.to_json()).hexdigest()

    def city(self, code: str) -> RankedCity:
        """One city's results.

        Raises:
            NotFound: the city is not in the round.
        """
        for city in self.cities:
            if city.code == code:
                return city
        raise NotFound(f"city {code!r} is not in round {self.round.id!r}")

    def ranking_dict(self) -> dict[str, Any]:
        """The cities in merit order, with the rule, as JSON-ready data; `provisional` marks a
        city whose stars or score rest on a provisional weight, threshold or star rule."""
        return {
            "merit_rule": self.merit_rule,
            "cities": [
                {**_pick(c, RANKING_FIELDS), "provisional": self.scores_provisional()}
                for c in self.cities
            ],
        }

    def allocation_dict(self) -> dict[str, Any]:
        """The policy, the totals and each city's amount with its reason, as JSON-ready data;
        `provisional` marks an amount that rests on a provisional number (of the catalogue, or
        a placeholder of the policy)."""
        return {
            "policy": _plain(self.policy),
            "merit_rule": self.merit_rule,
            "allocation": self.allocation.to_dict(),
            "cities": [
                {**_pick(c, ALLOCATION_FIELDS), "provisional": self.amounts_provisional()}
                for c in self.cities
            ],
        }

    def city_dict(self, code: str) -> dict[str, Any]:
        """One city's results as JSON-ready data, each indicator and the city marked
        `provisional` where they rest on a provisional number.

        Raises:
            NotFound: the city is not in the round.
        """
        flagged = {i.id: i.provisional for i in self.catalogue.indicators}
        doc = self.city(code).to_dict()
        for row in doc["indicators"]:
            row["provisional"] = flagged.get(row["id"], False)
        doc["provisional"] = self.scores_provisional()
        return doc

    def scores_provisional(self) -> bool:
        """True when scores and stars rest on a provisional weight, threshold or star rule."""
        cat = self.catalogue
        return (
            cat.star_rule_provisional
            or any(a.provisional for a in cat.areas)
            or any(i.provisional for i in cat.indicators)
        )

    def amounts_provisional(self) -> bool:
        """True when award amounts rest on a provisional number (scores, or the policy)."""
        policy = self.policy
        placeholder = bool(policy.get("placeholders")) or (
            policy.get("provenance", {}).get("status") == "provisional"
        )
        return placeholder or self.scores_provisional()

    def provisional_numbers(self) -> list[dict[str, str]]:
        """Every provisional number the results rest on, with its basis (the report's annex)."""
        cat, out = self.catalogue, []
        if cat.star_rule_provisional:
            out.append(
                {"what": "star rule", "value": str(cat.star_thresholds), "basis": "provisional"}
            )
        for a in cat.areas:
            if a.provisional:
                out.append({"what": f"area {a.id} weight", "value": f"{a.weight:g}", "basis": ""})
        for i in cat.indicators:
            if i.provisional:
                out.append(
                    {
                        "what": f"indicator {i.id} weight and thresholds",
                        "value": f"{i.weight:g}",
                        "basis": i.provenance,
                    }
                )
        for name in self.policy.get("placeholders", []):
            out.append(
                {
                    "what": f"policy {name}",
                    "value": str(self.policy.get(name)),
                    "basis": self.policy.get("provenance", {}).get("source", ""),
                }
            )
        return out


def _rank_change(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a - b


def what_if(a: RoundResults, b: RoundResults) -> list[dict[str, Any]]:
    """Two results of the same round side by side (e.g. two policies or two catalogues), in the
    order of the second, with the change of rank, stars and amount, as JSON-ready rows.

    Raises:
        ValueError: the two results are not of the same cities.
    """
    first = {c.code: c for c in a.cities}
    if set(first) != {c.code for c in b.cities}:
        raise ValueError("the two results are not of the same cities")
    compared = ("rank", "stars", "score", "amount")
    return [
        {
            "code": c.code,
            "name_zh": c.name_zh,
            "name_en": c.name_en,
            "a": _pick(first[c.code], compared),
            "b": _pick(c, compared),
            "amount_change": c.amount - first[c.code].amount,
            "rank_change": _rank_change(first[c.code].rank, c.rank),
        }
        for c in b.cities
    ]
