"""gml:ids in a CityGML document: the index through which a member's xlinks are resolved, and
the ids made up for features and polygons that have none."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ingest.gml import GML_ID_31, GML_ID_32


class GeneratedIds:
    """One counter for the whole document, so that every id it makes up is unique."""

    def __init__(self) -> None:
        self.count = 0

    def next(self) -> int:
        """The next number to make an id of."""
        self.count += 1
        return self.count


class MemberIndex(dict):  # type: ignore[type-arg]
    """gml:id -> element within one member, built on the first lookup (many members have no
    xlinks), plus the polygons already read (an xlink to one is not read twice)."""

    def __init__(self, member: Any) -> None:
        super().__init__()
        self.member = member
        self.built = False
        self.polygons: dict[str, list[NDArray[np.float64]]] = {}
        self.orientable: bool | None = None

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if not self.built:
            self.built = True
            for e in self.member.iter():
                if isinstance(e.tag, str):
                    gid = e.get(GML_ID_31) or e.get(GML_ID_32)
                    if gid:
                        self[gid] = e
        return super().get(key, default)
