"""CityGML features as city objects: their type and gml:id, simple properties, generic
attributes and addresses as attributes, other properties as nested JSON, external references,
and the features nested in them (parts, installations, boundary features) as their children."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cim.errors import IngestError
from ingest.citygml.crs import SrsNames
from ingest.citygml.generics import GenericAttributes
from ingest.citygml.geometry import GeometryReader
from ingest.citygml.ids import GeneratedIds
from ingest.citygml.values import add_attribute, address, property_value
from ingest.citygml.vocabulary import SEMANTIC, classify
from ingest.gml import GmlProblem, child_elements, gml_id, local
from ingest.model import SourceObject


class FeatureReader:
    """Turns a feature element, and the features nested in it, into city objects."""

    def __init__(
        self,
        path: Path,
        ids: GeneratedIds,
        srs: SrsNames,
        geometry: GeometryReader,
        generics: GenericAttributes,
    ) -> None:
        self._path = path
        self._ids = ids
        self._srs = srs
        self._geometry = geometry
        self._generics = generics
        self._seen: set[str] = set()  # gml:ids of the features read, each may be used once

    def _new_id(self, type_: str) -> str:
        """An id for a feature without a gml:id, unique in the document."""
        return f"{type_}_cim{self._ids.next()}"

    def read(
        self, el: Any, parent: str | None, index: dict[str, Any], fid: str | None = None
    ) -> Iterator[SourceObject]:
        """The city object of feature `el`, then those of the features nested in it.

        Raises:
            IngestError: a gml:id used twice, or a geometry that cannot be read.
        """
        type_ = local(el.tag)
        fid = fid or gml_id(el) or self._new_id(type_)
        if fid in self._seen:
            raise IngestError(self._path, f"gml:id {fid!r} is used by two features", fid)
        self._seen.add(fid)
        attributes: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        direct: list[tuple[str, str, Any]] = []  # (lod, property, geometry element)
        semantic: list[Any] = []
        children: list[tuple[str, Any]] = []
        relief_lod: str | None = None
        for prop in el:
            kind, pname, lod = classify(prop.tag)
            if kind == "semantic":
                for s in child_elements(prop):
                    if local(s.tag) in SEMANTIC:
                        semantic.append(s)
                    else:
                        children.append((gml_id(s) or self._new_id(local(s.tag)), s))
            elif kind in ("generic", "generic-holder"):
                self._generics.read(prop, attributes)
            elif kind == "geometry":
                for g in self._geometry.surfaces.resolved(prop, index):
                    direct.append((lod, pname, g))
            elif kind == "text":
                add_attribute(attributes, pname, (prop.text or "").strip())
            elif kind == "srs":
                self._srs.check(prop)
            elif kind == "relief-lod":
                relief_lod = (prop.text or "").strip()
            elif kind == "child":
                for c in child_elements(prop):
                    children.append((gml_id(c) or self._new_id(local(c.tag)), c))
            elif kind == "address":
                attributes.setdefault("address", []).append(address(prop))
            elif kind == "appearance":
                pass  # read with the whole member before its features (Appearances.begin_member)
            elif kind == "reference":
                extra.setdefault("externalReferences", []).append(property_value(prop))
            elif kind == "attribute":
                add_attribute(attributes, pname, property_value(prop))
        try:
            geometries = self._geometry.geometries(direct, semantic, index, relief_lod)
        except GmlProblem as exc:
            raise IngestError(self._path, str(exc), fid) from None
        yield SourceObject(
            id=fid,
            type=type_,
            attributes=attributes,
            parents=[parent] if parent else [],
            children=[cid for cid, _ in children],
            geometries=geometries,
            extra=extra,
        )
        for cid, child in children:
            yield from self.read(child, fid, index, cid)
