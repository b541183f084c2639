"""CityGML 1.0, 2.0 and 3.0 to city objects, streamed.

The document is read with lxml's `iterparse`, one `cityObjectMember` at a time (each is cleared
once read), so memory is bounded by the largest member, not the file. Every feature inside a
member becomes a city object (a Building, its BuildingParts, a ReliefFeature and its TINRelief,
...) with its parent/children links. Semantic boundary surfaces (WallSurface, RoofSurface, ...,
openings included) become the semantics of their object's geometry, matched through their
`gml:id` when a solid refers to them by xlink. Simple properties, generic attributes and
addresses become attributes; any other property is kept as nested JSON, so nothing is dropped.

Safe XML: a document type declaration (DTD) is refused before parsing, and the parser resolves
no entities, loads no DTD and opens no network connection.

The modules follow the format: `document` (version, root, safe parsing), `crs` (srsName),
`reader` (the stream of members), `features` (city objects and their attributes), `geometry`
(LoD properties, semantic surfaces, implicit geometry), `surfaces` (the GML under them),
`appearance` (materials and textures, in 2.0's layout and 3.0's), `ids` (gml:id and xlinks),
`generics` (generic attributes, by the type they declare), `vocabulary` and `values`.
"""

from ingest.citygml.document import VERSIONS, sniff
from ingest.citygml.reader import CityGmlReader

__all__ = ["VERSIONS", "CityGmlReader", "sniff"]
