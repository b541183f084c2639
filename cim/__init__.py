"""The core every other package shares, and nothing more: settings, errors, CRS and geometry
helpers, tiling keys, the garbage collector's setting for bulk work, and the database (engine,
models, migrations, the embedded cluster, backup). It imports none of the packages above it
(pyproject.toml's [tool.cim] layers)."""

__version__ = "0.1.0"
