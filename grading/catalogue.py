"""Indicator catalogues: what a grading committee scores by, as a file it can copy, edit and sign.

Every weight and threshold carries its provenance: published (with the source) or provisional
(assumed here because the source is not public). Loading checks that the numbers add up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from cim.errors import InvalidInput, NotFound
from grading.cim_indicators import NAMES as CIM_INDICATORS

BUILT_IN = Path(__file__).resolve().parent / "catalogues"
# validation context of a catalogue copied into a round (it may predate rules added since)
STORED = {"stored": True}
TOLERANCE = 1e-6
M = TypeVar("M", bound=BaseModel)
# Bounds that hold wherever a catalogue comes from (a file, the API, a what-if): real ones are far
# smaller (DB37/T 3890.1 has 6 areas and 49 city indicators), and checking and scoring one cost
# in proportion to them
MAX_AREAS = 50
MAX_INDICATORS = 500
MAX_GRADES = 20  # named grades of a qualitative indicator
ID = 100  # characters of an id
NAME = 200  # of a name, a unit, a version
TEXT = 2000  # of a title, a standard, a source


class Provenance(BaseModel):
    """Where a number comes from."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["published", "provisional"]
    source: str = Field(
        min_length=1, max_length=TEXT, description="document and clause, or why it is assumed"
    )


class Thresholds(BaseModel):
    """Star level 1..5 reached when the value reaches each threshold (in the indicator's
    direction); below the first threshold the level is 0."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["thresholds"]
    thresholds: list[float] = Field(min_length=5, max_length=5)


class Linear(BaseModel):
    """Level 0 at `worst`, 5 at `best`, linear in between (a fractional level)."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["linear"]
    worst: float
    best: float

    @model_validator(mode="after")
    def _distinct(self) -> Linear:
        if self.worst == self.best:
            raise ValueError("linear scoring needs worst != best")
        return self


class YesNo(BaseModel):
    """Level 5 for yes, 0 for no."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["yes_no"]


class Qualitative(BaseModel):
    """Named grades with their levels, e.g. {"excellent": 5, "good": 4, ...}."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["levels"]
    levels: dict[str, float] = Field(min_length=1, max_length=MAX_GRADES)

    def best_first(self) -> list[str]:
        """The grades from the highest level down (a stored copy may not keep the file's order)."""
        return sorted(self.levels, key=lambda g: (-self.levels[g], g))


Scoring = Annotated[Thresholds | Linear | YesNo | Qualitative, Field(discriminator="method")]


class ValueRange(BaseModel):
    """The values an indicator can take at all: e.g. 0 to 100 for a percentage or a score on a
    100-point scale, a whole number from 0 for a count. A value outside is refused, never
    scored (-3 incidents is not a perfect record; 150 % is a typing error)."""

    model_config = ConfigDict(extra="forbid")
    min: float | None = None
    max: float | None = None
    integer: bool = Field(False, description="whole numbers only (counts)")

    @model_validator(mode="after")
    def _ordered(self) -> ValueRange:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"range: min ({self.min:g}) must be below max ({self.max:g})")
        return self

    def holds(self, number: float) -> bool:
        """True when the number is a value of this range."""
        return (
            (self.min is None or number >= self.min)
            and (self.max is None or number <= self.max)
            and (not self.integer or float(number).is_integer())
        )

    def describe(self, unit: str) -> str:
        """The range in words, e.g. 'a number from 0 to 100 %', 'a whole number from 0'."""
        kind = "a whole number" if self.integer else "a number"
        unit = f" {unit}" if unit and unit not in ("count",) else ""
        if self.min is not None and self.max is not None:
            return f"{kind} from {self.min:g} to {self.max:g}{unit}"
        if self.min is not None:
            return f"{kind} from {self.min:g}{unit} up"
        if self.max is not None:
            return f"{kind} up to {self.max:g}{unit}"
        return kind


# Ranges of catalogues stored before ranges were declared, by unit: only the units whose range
# admits no doubt (a share, a count)
UNIT_RANGES = {"%": ValueRange(min=0, max=100), "count": ValueRange(min=0, integer=True)}


class Indicator(BaseModel):
    """One indicator: its weight (maximum points) and how a value becomes a star level."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(max_length=ID, pattern=r"^[A-Za-z0-9_.\-]+$")
    name_zh: str = Field(max_length=NAME)
    name_en: str = Field(max_length=NAME)
    area: str = Field(max_length=ID)
    weight: float = Field(ge=0)
    unit: str = Field("", max_length=NAME)
    range: ValueRange | None = Field(
        None, description="the values the indicator can take; numeric indicators declare it"
    )
    direction: Literal["higher", "lower"] = "higher"
    scoring: Scoring
    veto: bool = Field(False, description="level 0 here fails the whole city")
    bonus: bool = Field(False, description="points on top of the total, capped by the area")
    provenance: Provenance
    computed_from_cim: str | None = Field(
        None, description="name of the CIM-computed indicator that can supply the value"
    )

    def numeric(self) -> bool:
        """True when values are numbers (scored by thresholds or linearly)."""
        return isinstance(self.scoring, Thresholds | Linear)

    def valid_range(self) -> ValueRange | None:
        """The declared range, or for a catalogue stored before ranges were declared, the one
        its unit admits (None: nothing to check)."""
        return self.range if self.range is not None else UNIT_RANGES.get(self.unit)

    @model_validator(mode="after")
    def _ranged(self, info: ValidationInfo) -> Indicator:
        stored = bool(info.context and info.context.get("stored"))
        if self.numeric() and not stored and (self.range is None or not self.unit):
            raise ValueError(
                f"indicator {self.id}: a numeric indicator declares its unit and the range of "
                'values it can take, e.g. unit: "%", range: {min: 0, max: 100}; '
                "unit: count, range: {min: 0, integer: true}"
            )
        r, s = self.range, self.scoring
        if r is not None and isinstance(s, Thresholds | Linear):
            edges = s.thresholds if isinstance(s, Thresholds) else [s.worst, s.best]
            outside = [e for e in edges if not ValueRange(min=r.min, max=r.max).holds(e)]
            if outside:
                raise ValueError(
                    f"indicator {self.id}: scoring point(s) {', '.join(f'{e:g}' for e in outside)}"
                    f" outside its range ({r.describe(self.unit)})"
                )
        return self

    @model_validator(mode="after")
    def _ordered(self) -> Indicator:
        if self.computed_from_cim is not None and self.computed_from_cim not in CIM_INDICATORS:
            raise ValueError(
                f"indicator {self.id}: computed_from_cim {self.computed_from_cim!r} is not one of "
                f"{', '.join(CIM_INDICATORS)}"
            )
        if isinstance(self.scoring, Thresholds):
            t = self.scoring.thresholds
            rising = all(a < b for a, b in zip(t, t[1:], strict=False))
            falling = all(a > b for a, b in zip(t, t[1:], strict=False))
            if (self.direction == "higher" and not rising) or (
                self.direction == "lower" and not falling
            ):
                raise ValueError(
                    f"indicator {self.id}: thresholds must be strictly "
                    f"{'increasing' if self.direction == 'higher' else 'decreasing'} "
                    f"for direction '{self.direction}'"
                )
        return self


class Area(BaseModel):
    """A first-level area (数字惠民, 数字政府, ...) and its weight."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(max_length=ID)
    name_zh: str = Field(max_length=NAME)
    name_en: str = Field(max_length=NAME)
    weight: float = Field(ge=0)
    bonus: bool = False
    cap: float | None = Field(None, ge=0, description="most bonus points the area can add")
    unallocated: float = Field(0, ge=0, description="weight no indicator is known to carry")
    provenance: Provenance


class StarRule(BaseModel):
    """From total points to the city's star level."""

    model_config = ConfigDict(extra="forbid")
    thresholds: dict[int, float] = Field(
        max_length=5, description="star level -> minimum total points"
    )
    min_area_share: dict[int, float] = Field(
        default_factory=dict,
        max_length=5,
        description="star level -> every (non-bonus) area must reach this share of its weight",
    )
    growth_points: float | None = Field(
        None,
        description="a four-star city whose total rose by this much since the previous "
        "round is 成长型 (growth); otherwise 基础型 (basic). Without it no city gets a type: "
        "how the standard assigns them is not public",
    )
    bonus_counts: bool = Field(
        True,
        description="whether bonus points count toward the star level (they always count in "
        "the score the ranking uses)",
    )
    provenance: Provenance

    @model_validator(mode="after")
    def _levels(self) -> StarRule:
        levels = sorted(self.thresholds)
        if not levels or levels[0] < 1 or levels[-1] > 5:
            raise ValueError("star thresholds are for levels 1 to 5")
        values = [self.thresholds[k] for k in levels]
        if any(a >= b for a, b in zip(values, values[1:], strict=False)):
            raise ValueError("a higher star level needs a higher total")
        return self


class Catalogue(BaseModel):
    """A versioned indicator catalogue."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(max_length=ID, pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    version: str = Field(max_length=NAME)
    standard: str = Field(max_length=TEXT)
    title_zh: str = Field(max_length=TEXT)
    title_en: str = Field(max_length=TEXT)
    scale: float = Field(100, gt=0, description="points of a perfect city, bonus excluded")
    areas: list[Area] = Field(min_length=1, max_length=MAX_AREAS)
    indicators: list[Indicator] = Field(min_length=1, max_length=MAX_INDICATORS)
    stars: StarRule

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        """Too many areas or indicators refused before any of them is checked, saying so."""
        if isinstance(data, dict):
            for name, most in (("areas", MAX_AREAS), ("indicators", MAX_INDICATORS)):
                given = data.get(name)
                if isinstance(given, list) and len(given) > most:
                    raise ValueError(
                        f"a catalogue has at most {most} {name}; this one has {len(given):,}"
                    )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Catalogue:
        # one pass over the areas and one over the indicators: the cost grows with their sum
        areas = {a.id: a for a in self.areas}
        if len(areas) != len(self.areas):
            raise ValueError("area ids must be unique")
        ids = {i.id for i in self.indicators}
        if len(ids) != len(self.indicators):
            raise ValueError("indicator ids must be unique")
        carried = dict.fromkeys(areas, 0.0)  # indicator weight per area
        for ind in self.indicators:
            if ind.area not in areas:
                raise ValueError(f"indicator {ind.id}: unknown area {ind.area!r}")
            if ind.bonus != areas[ind.area].bonus:
                raise ValueError(f"indicator {ind.id}: bonus indicators belong to bonus areas")
            carried[ind.area] += ind.weight
        regular = sum(a.weight for a in self.areas if not a.bonus)
        if abs(regular - self.scale) > TOLERANCE:
            raise ValueError(f"area weights add up to {regular:g}, not the scale {self.scale:g}")
        for area in self.areas:
            total = carried[area.id]
            if abs(total + area.unallocated - area.weight) > TOLERANCE:
                raise ValueError(
                    f"area {area.id}: indicator weights ({total:g}) plus unallocated "
                    f"({area.unallocated:g}) must equal the area weight ({area.weight:g})"
                )
        return self


def parse_model(cls: type[M], text: str, source: str) -> M:
    """A pydantic model from YAML or JSON text.

    Raises:
        InvalidInput: not YAML/JSON, or the content breaks a rule; the message says where.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source}: not valid YAML or JSON: {exc}") from None
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInput(f"{source}: {problems}") from None


def read_text(path: Path) -> str:
    """A UTF-8 file's text.

    Raises:
        InvalidInput: unreadable.
    """
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None


def parse_catalogue(text: str, source: str = "catalogue") -> Catalogue:
    """A catalogue from YAML or JSON text (see `parse_model`)."""
    return parse_model(Catalogue, text, source)


def load_catalogue(path: Path) -> Catalogue:
    """A catalogue file.

    Raises:
        InvalidInput: unreadable or invalid.
    """
    return parse_catalogue(read_text(path), str(path))


def built_in_file(folder: Path, kind: str, name: str) -> Path:
    """The YAML file of a built-in `kind` (catalogue, policy) by its id.

    Raises:
        NotFound: no such file, naming the ones there are.
    """
    path = folder / f"{name}.yaml"
    if "/" in name or "\\" in name or not path.exists():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise NotFound(f"no built-in {kind} {name!r} (built in: {known})")
    return path


def built_in(catalogue_id: str) -> Catalogue:
    """One of the catalogues that ship with CIM.

    Raises:
        NotFound: no such catalogue.
    """
    return load_catalogue(built_in_file(BUILT_IN, "catalogue", catalogue_id))


def json_schema() -> str:
    """The published JSON Schema of catalogue files."""
    return json.dumps(Catalogue.model_json_schema(), indent=2, ensure_ascii=False)
