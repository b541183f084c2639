"""CityGML appearances: X3D materials and textures (parameterized or georeferenced) with their
themes, and the polygons they target, matched by gml:id; a texture's coordinates are matched to
its polygon's rings by their gml:ids, read from 2.0's layout or 3.0's (`texture_targets`)."""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from lxml import etree
from numpy.typing import NDArray

from cim.errors import IngestError
from ingest.citygml.document import SAFE_PARSING
from ingest.citygml.values import number, property_value
from ingest.citygml.vocabulary import POLYGON_TAGS
from ingest.gml import (
    GML_ID_31,
    GML_ID_32,
    XLINK_HREF,
    GmlProblem,
    child_elements,
    floats,
    gml_id,
    local,
)
from ingest.model import SourceGeometry

APPEARANCE_TAGS = [
    f"{{{ns}}}Appearance"
    for ns in (
        "http://www.opengis.net/citygml/appearance/1.0",
        "http://www.opengis.net/citygml/appearance/2.0",
        "http://www.opengis.net/citygml/appearance/3.0",
    )
]
_SURFACE_DATA = [
    f"{{{ns.rsplit('}', 1)[0][1:]}}}{n}"
    for ns in APPEARANCE_TAGS
    for n in ("X3DMaterial", "ParameterizedTexture", "GeoreferencedTexture")
]


def ring_uvs(
    lists: dict[str, list[float]], ids: list[str | None], rings: list[Any], flip: bool
) -> NDArray[np.float64] | None:
    """A polygon's (u, v) per vertex from one texture's coordinate lists: each ring's found by
    its gml:id (or, for a one-ring polygon, the only list), the closing repeat dropped and
    reversed with the ring; None when a ring has none or they do not fit."""
    per_ring = []
    for rid, ring in zip(ids, rings, strict=False):
        uv = lists.get(rid) if rid else None
        if uv is None and len(rings) == 1 and len(lists) == 1:
            uv = next(iter(lists.values()))
        pairs = np.asarray(uv if uv is not None else [], dtype=np.float64)
        pairs = pairs[: len(pairs) // 2 * 2].reshape(-1, 2)
        if len(pairs) == len(ring) + 1:
            pairs = pairs[:-1]
        if len(pairs) != len(ring):
            return None
        per_ring.append(pairs[::-1] if flip else pairs)
    return np.concatenate(per_ring) if per_ring and len(per_ring) == len(rings) else None


def _uri(text: str | None) -> str:
    """A local reference ("#id") as the gml:id it names."""
    return (text or "").strip().lstrip("#")


def texture_targets(data: Any, ids: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(surface gml:id, ring gml:id -> texture coordinates) of each surface a texture targets,
    in either encoding:

    - CityGML 1.0/2.0: `app:target uri="#surface"` holding the `app:TexCoordList`, each
      `app:textureCoordinates` naming its ring in a `ring` attribute (a GeoreferencedTexture's
      targets are the same element with the surface as text, and no coordinates);
    - CityGML 3.0: `app:textureParameterization` holding an `app:TextureAssociation` (inline,
      or by xlink to one elsewhere in `ids`) whose `app:target` (`app:uri` in drafts of the
      standard, as the tum-gis converter writes) names the surface, beside an
      `app:textureParameterization` whose `app:TexCoordList` lists the coordinates and the
      rings as sibling elements, the n-th `app:ring` naming the ring of the n-th
      `app:textureCoordinates`.

    A TexCoordGen parameterization (a matrix, no coordinates) gives no rings: its polygons are
    counted as textures that do not fit.

    Raises:
        GmlProblem: texture coordinates that are not numbers.
    """
    for prop in data:
        if not isinstance(prop.tag, str):
            continue
        name = local(prop.tag)
        if name == "target":
            key = _uri(prop.get("uri") or prop.text)
            rings = {
                _uri(c.get("ring")): floats(c.text, "texture coordinates")
                for c in prop.iter("{*}textureCoordinates")
            }
        elif name == "textureParameterization":
            href = prop.get(XLINK_HREF)
            association = ids.get(_uri(href)) if href else next(iter(child_elements(prop)), None)
            if association is None:
                continue
            key, coordinates, ring_ids = "", [], []
            for part in child_elements(association):
                if local(part.tag) in ("target", "uri"):
                    key = _uri(part.get(XLINK_HREF) or part.text)
                elif local(part.tag) == "textureParameterization":
                    for c in part.iter("{*}textureCoordinates", "{*}ring"):
                        if local(c.tag) == "ring":
                            ring_ids.append(_uri(c.get(XLINK_HREF) or c.text))
                        else:
                            coordinates.append(floats(c.text, "texture coordinates"))
            # a list whose ring is not named keeps the key "" (a one-ring polygon takes it)
            ring_ids += [""] * (len(coordinates) - len(ring_ids))
            rings = dict(zip(ring_ids, coordinates, strict=False))
        else:
            continue
        if key:
            yield key, rings


class Appearances:
    """A document's appearances: the dataset's list of materials and textures, and what they
    dress, both for the member being read and for the document's top-level appearance members."""

    def __init__(self, path: Path) -> None:
        self._path = path
        # shared with the pipeline, which colours surfaces by these materials as they arrive
        self.dataset: dict[str, Any] = {"materials": [], "textures": []}
        self._listed: dict[tuple[str, str], int] = {}
        self._members = 0  # top-level appearance members
        self._global_targets = 0
        self._global_material_of: dict[str, int] = {}
        self._global_textures_of: dict[str, list[dict[str, Any]]] = {}
        self._linked = 0  # polygons dressed by a global appearance
        self._material_of: dict[str, int] = {}  # polygon gml:id -> material, within a member
        self._textures_of: dict[str, list[dict[str, Any]]] = {}  # polygon gml:id -> textures
        # polygon gml:id -> its rings' gml:ids, and whether they were reversed (member's own)
        self.ring_ids: dict[str, tuple[list[str | None], bool]] = {}
        self._unfit_textures = 0

    @property
    def textured(self) -> bool:
        """Whether textures may target the member's polygons (their rings' ids matter then)."""
        return bool(self._textures_of or self._global_textures_of)

    def read_global(self) -> None:
        """A first, quick pass over the appearance members at the document's top level (they
        often come after the features they dress), so that the main pass can link them."""
        path = str(self._path)
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            if m.find(b"appearanceMember") < 0:
                return
        context = etree.iterparse(path, events=("end",), tag="{*}appearanceMember", **SAFE_PARSING)
        for _, el in context:
            parent = el.getparent()
            if parent is None or parent.getparent() is not None:
                continue  # not at the top level
            self._members += 1
            self._global_targets += self._read_or_refuse(el)
            el.clear()
        self._global_material_of, self._material_of = self._material_of, {}
        self._global_textures_of, self._textures_of = self._textures_of, {}

    def begin_member(self, member: Any) -> None:
        """Forget the last member's own appearances and read this one's."""
        self._material_of, self._textures_of, self.ring_ids = {}, {}, {}
        if next(member.iter(*APPEARANCE_TAGS), None) is not None:
            self._read_or_refuse(member)

    def _read_or_refuse(self, scope: Any) -> int:
        """`_read`, a problem in it refused with the file's name.

        Raises:
            IngestError: a colour or texture coordinates that are not numbers.
        """
        try:
            return self._read(scope)
        except GmlProblem as exc:
            raise IngestError(self._path, f"appearance: {exc}") from None

    def dress(self, geometry: SourceGeometry, polys: list[tuple[str | None, list[Any]]]) -> None:
        """Materials (drawn: their diffuse colour) and textures (kept: image, ring coordinates)
        that the member's appearances give this geometry's polygons."""
        local_m, local_t = self._material_of, self._textures_of
        global_m, global_t = self._global_material_of, self._global_textures_of
        if not (local_m or local_t or global_m or global_t):
            return
        ids = [pid for pid, _ in polys]
        materials = [local_m.get(pid, global_m.get(pid)) if pid else None for pid in ids]
        if any(m is not None for m in materials):
            geometry.structure["material"] = {"citygml": {"values": materials}}
        textures: dict[str, list[dict[str, Any]]] = {}
        for pid in ids:
            found = local_t.get(pid) or global_t.get(pid) if pid else None
            if pid and found:
                textures[pid] = found
        self._linked += sum(1 for pid in ids if pid and (pid in global_m or pid in global_t))
        if textures:
            geometry.structure["textures"] = textures
            self._drawable_textures(geometry, polys, textures)

    def _drawable_textures(
        self,
        geometry: SourceGeometry,
        polys: list[tuple[str | None, list[Any]]],
        textures: dict[str, list[dict[str, Any]]],
    ) -> None:
        """Each polygon's first texture whose coordinates fit its rings, resolved to (u, v) per
        vertex (a GeoreferencedTexture has none). Polygons with none that fits stay plain."""
        uvs = np.full((len(geometry.vertices), 2), np.nan)
        chosen = [-1] * len(polys)
        at = 0
        for n, (pid, rings) in enumerate(polys):
            size = sum(len(r) for r in rings)
            found = textures.get(pid) if pid else None
            if pid and found:
                ids, flip = self.ring_ids.get(pid, ([None] * len(rings), False))
                fitting = (
                    (entry["texture"], uv)
                    for entry in found
                    if (uv := ring_uvs(entry["rings"], ids, rings, flip)) is not None
                )
                texture, uv = next(fitting, (-1, None))
                if uv is not None:
                    uvs[at : at + size] = uv
                    chosen[n] = int(texture)
                else:
                    self._unfit_textures += 1
            at += size
        if any(c >= 0 for c in chosen):
            geometry.uvs, geometry.polygon_textures = uvs, chosen

    def _shared(self, kind: str, entry: dict[str, Any]) -> int:
        """The index of an equal material or texture already listed, else of this one: the
        dataset lists each once however many members use it (memory stays bounded)."""
        key = (kind, repr(sorted(entry.items())))
        if key not in self._listed:
            self._listed[key] = len(self.dataset[kind])
            self.dataset[kind].append(entry)
        return self._listed[key]

    def _read(self, scope: Any) -> int:
        """Read every Appearance under `scope` (a member, or a global appearanceMember):
        materials join the dataset's list, textures its image list, and their targets are
        remembered for the member's polygons. Returns how many targets were read."""
        targets = 0
        ids = {gid: e for e in scope.iter() if isinstance(e.tag, str) and (gid := gml_id(e))}

        def polygons(key: str) -> list[str]:
            """A target's polygons: itself, or those of the surface aggregate it names (an
            unnamed polygon gets a generated gml:id so that the match survives)."""
            el = ids.get(key)
            if el is None or el.tag in POLYGON_TAGS:
                return [key]
            out = []
            for n, poly in enumerate(el.iter(*POLYGON_TAGS)):
                pid = gml_id(poly)
                if pid is None:
                    pid = f"{key}_cim{n}"
                    poly.set(GML_ID_32 if "3.2" in poly.tag else GML_ID_31, pid)
                out.append(pid)
            return out

        for app in scope.iter(*APPEARANCE_TAGS):
            theme = next((c.text for c in app if local(c.tag) == "theme"), None) or ""
            for data in app.iter(*_SURFACE_DATA):
                kind = local(data.tag)
                entry: dict[str, Any] = {"theme": theme}
                for prop in data:
                    name = local(prop.tag)
                    if name in ("target", "appearanceTarget"):
                        continue
                    if name in ("diffuseColor", "emissiveColor", "specularColor"):
                        entry[name] = floats(prop.text, name)[:3]
                    elif name in ("transparency", "shininess", "ambientIntensity"):
                        entry[name] = number(prop.text or "")
                    elif isinstance(prop.tag, str):
                        entry[name] = property_value(prop)
                if kind == "X3DMaterial":
                    m = self._shared("materials", entry)
                    for t in data.iter("{*}target"):
                        key = (t.text or "").strip().lstrip("#")
                        if key:
                            for pid in polygons(key):
                                self._material_of[pid] = m
                            targets += 1
                elif kind in ("ParameterizedTexture", "GeoreferencedTexture"):
                    t_index = self._shared(
                        "textures",
                        {
                            "image": entry.get("imageURI"),
                            "type": entry.get("mimeType"),
                            "theme": theme,
                        },
                    )
                    for key, rings in texture_targets(data, ids):
                        self._textures_of.setdefault(key, []).append(
                            {"texture": t_index, "rings": rings}
                        )
                        targets += 1
        return targets

    def finish(self, metadata: dict[str, Any], warnings: list[str]) -> None:
        """Say, once the document is read, what the global appearances linked and which
        textures could not be drawn."""
        if self._global_targets:
            metadata["global_appearances"] = {
                "members": self._members,
                "targets": self._global_targets,
                "linked_polygons": self._linked,
            }
        if self._global_targets and not self._linked:
            warnings.append(
                f"{self._members} global appearance members target {self._global_targets} "
                "surfaces, none of which is a polygon of this file: they are listed in the "
                "dataset only"
            )
        if self._unfit_textures:
            warnings.append(
                f"{self._unfit_textures} textured polygons have texture coordinates that do not "
                "match their rings: kept in the geometry's structure, drawn without the texture"
            )
