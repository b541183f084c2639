"""CIM: a City Information Model service — ingest 3D city data into PostGIS, serve it, grade cities."""

__version__ = "0.1.0"
