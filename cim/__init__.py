"""CIM: a City Information Model service: 3D city data in PostGIS, served and graded."""

__version__ = "0.1.0"
