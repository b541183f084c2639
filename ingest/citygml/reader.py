"""The CityGML reader: the document streamed with lxml's `iterparse`, one top-level member at a
time, each member's features turned into city objects, then cleared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from cim.errors import IngestError
from ingest.citygml.appearance import Appearances
from ingest.citygml.crs import SrsNames
from ingest.citygml.document import SAFE_PARSING, read_head
from ingest.citygml.features import FeatureReader
from ingest.citygml.generics import GenericAttributes
from ingest.citygml.geometry import GeometryReader
from ingest.citygml.ids import GeneratedIds, MemberIndex
from ingest.citygml.surfaces import SurfaceReader
from ingest.citygml.vocabulary import MEMBERS
from ingest.gml import child_elements, local
from ingest.model import SourceObject


class CityGmlReader:
    """A CityGML document, streamed one city-object member at a time."""

    format = "CityGML"
    axis_order = "crs"

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._path = path
        head = read_head(path)
        self.format_version: str | None = head.version
        self._root_name = head.root_name
        self.crs_name: str | None = head.crs_name
        self.metadata: dict[str, Any] = {}
        self._appearances = Appearances(path)
        self.appearance: dict[str, Any] = self._appearances.dataset
        self.warnings: list[str] = []
        self.total_objects: int | None = None
        ids = GeneratedIds()  # one counter for made-up feature and polygon ids alike
        self._srs = SrsNames(self.crs_name)
        self._surfaces = SurfaceReader(ids, self._appearances)
        self._generics = GenericAttributes()  # on objects and their surfaces alike
        geometry = GeometryReader(self._surfaces, self._srs, self._appearances, self._generics)
        self._features = FeatureReader(path, ids, self._srs, geometry, self._generics)

    def objects(self) -> Iterator[SourceObject]:
        """Yield every city object of the document, members in file order."""
        root = None
        try:
            self._appearances.read_global()
            # lxml reports only these elements: Python sees one event per member, not per node
            context = etree.iterparse(
                self.path,
                events=("start", "end"),
                tag=[f"{{*}}{t}" for t in (*MEMBERS, "appearanceMember", "CityModel")],
                remove_comments=True,
                remove_pis=True,
                **SAFE_PARSING,
            )
            for event, el in context:
                if root is None:
                    root = el if el.getparent() is None else el.getroottree().getroot()
                    info = root.getroottree().docinfo
                    if info.doctype or info.internalDTD is not None:
                        raise IngestError(
                            self._path,
                            "the XML has a document type declaration (<!DOCTYPE>); CityGML "
                            "needs none, and CIM refuses it",
                        )
                    if local(root.tag) != "CityModel":
                        raise IngestError(
                            self._path,
                            f"not CityGML: the root element is {local(root.tag)!r}, not CityModel",
                        )
                if event == "start" or el.getparent() is not root:
                    continue
                if local(el.tag) == "appearanceMember":
                    pass  # read before this pass (Appearances.read_global)
                else:
                    self._appearances.begin_member(el)
                    index = MemberIndex(el)
                    for feature in child_elements(el):
                        yield from self._features.read(feature, None, index)
                el.clear()
                while el.getprevious() is not None:
                    del root[0]
        except etree.XMLSyntaxError as exc:
            raise IngestError(self._path, f"not well-formed XML: {exc}") from None
        if root is None:
            raise IngestError(
                self._path, f"not CityGML: the root element is {self._root_name!r}, not CityModel"
            )
        self._finish_warnings()

    def _finish_warnings(self) -> None:
        """Say what was read otherwise than written, once the whole document has been read."""
        if self._surfaces.unresolved:
            self.warnings.append(
                f"{self._surfaces.unresolved} xlink references point outside their "
                "cityObjectMember or to nothing, and were not resolved"
            )
        self.warnings.extend(self._srs.warnings())
        self.warnings.extend(self._generics.warnings())
        self._appearances.finish(self.metadata, self.warnings)
        if self._surfaces.skipped_rings:
            self.warnings.append(
                f"{self._surfaces.skipped_rings} rings with fewer than 3 vertices were left out"
            )

    def close(self) -> None:
        """Nothing to release: the parser closes the file when the stream ends."""
