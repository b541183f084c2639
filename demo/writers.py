"""Writers of the demo city: a CityJSON document or CityJSONSeq, streamed in bounded memory."""

from __future__ import annotations

import shutil
from typing import IO

import orjson

from demo.shapes import Json, Vertex


class Sink:
    """Common bookkeeping of the two output formats: counts per type and vertex numbering."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.vertices = 0

    @property
    def base(self) -> int:
        """Index the next object's first vertex gets."""
        raise NotImplementedError

    def add(self, oid: str, obj: Json, vertices: list[Vertex]) -> None:
        """Write one CityObject whose boundaries already start at `base`."""
        self.counts[obj["type"]] = self.counts.get(obj["type"], 0) + 1
        self.vertices += len(vertices)

    def close(self) -> None:
        """Finish the file."""


class DocumentSink(Sink):
    """A CityJSON document: objects stream out, vertices go to a spool copied in at the end."""

    def __init__(self, out: IO[bytes], spool: IO[bytes], header: Json) -> None:
        super().__init__()
        self._out, self._spool = out, spool
        out.write(orjson.dumps(header)[:-1] + b',"CityObjects":{')

    @property
    def base(self) -> int:
        return self.vertices

    def add(self, oid: str, obj: Json, vertices: list[Vertex]) -> None:
        self._out.write(
            (b"," if self.counts else b"") + orjson.dumps(oid) + b":" + orjson.dumps(obj)
        )
        if vertices:
            self._spool.write((b"," if self.vertices else b"") + orjson.dumps(vertices)[1:-1])
        super().add(oid, obj, vertices)

    def close(self) -> None:
        self._out.write(b'},"vertices":[')
        self._spool.seek(0)
        shutil.copyfileobj(self._spool, self._out, 1 << 20)
        self._out.write(b"]}")


class SequenceSink(Sink):
    """CityJSONSeq: a header line, then one CityJSONFeature per object with its own vertices."""

    def __init__(self, out: IO[bytes], header: Json) -> None:
        super().__init__()
        self._out = out
        out.write(orjson.dumps({**header, "CityObjects": {}, "vertices": []}) + b"\n")

    @property
    def base(self) -> int:
        return 0

    def add(self, oid: str, obj: Json, vertices: list[Vertex]) -> None:
        feature = {
            "type": "CityJSONFeature",
            "id": oid,
            "CityObjects": {oid: obj},
            "vertices": vertices,
        }
        self._out.write(orjson.dumps(feature) + b"\n")
        super().add(oid, obj, vertices)
