"""The names an object's attributes are published under, by one rule for every output (Features
API properties, queryables and schemas; 3D Tiles property tables and batch tables): an attribute
keeps its name unless CIM needs it — one of CIM's own properties, the feature's id or geometry, a
query parameter of the items — or it begins with `attribute_`; such a name gets the prefix
`attribute_` (an attribute `type` is `attribute_type`). The rule depends on the name alone, so a
name means the same property in every object and city, and no two attributes can end up with
the same name.

One difference: a tile's property table also has CIM's `cim_id` and `height` (the object's
measured height, which the viewer colours by), so there an attribute `height` is
`attribute_height`, while the Features API, whose own heights are `height_min` and
`height_max`, keeps it as `height` (`?height=23` filters by it)."""

from __future__ import annotations

PREFIX = "attribute_"
# CIM's own properties of a feature (api.properties), and those a tile's property table adds
OWN_PROPERTIES = frozenset(
    {
        "id",
        "type",
        "dataset",
        "lods",
        "parents",
        "children",
        "height_min",
        "height_max",
    }
)
TILE_PROPERTIES = frozenset({"cim_id", "height"})
# the query parameters of a collection's items: an attribute filter may not take their names
ITEMS_PARAMETERS = frozenset(
    {"bbox", "bbox-crs", "crs", "limit", "offset", "type", "dataset", "datetime", "f", "scenario"}
)
RESERVED = frozenset(
    {*OWN_PROPERTIES, *ITEMS_PARAMETERS, "geometry", "geometries", "extra", "links"}
)


def published_name(key: str, also: frozenset[str] = frozenset()) -> str:
    """The property an attribute is published as (see the module's rule); `also`: the names an
    output adds to CIM's own (a tile's `TILE_PROPERTIES`)."""
    taken = key in RESERVED or key in also or key.startswith(PREFIX)
    return PREFIX + key if taken else key


def attribute_key(name: str) -> str:
    """The attribute a property name stands for (the inverse of `published_name`)."""
    key = name.removeprefix(PREFIX)
    return key if key != name and published_name(key) == name else name
