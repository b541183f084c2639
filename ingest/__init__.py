"""Readers that turn city-model files into city objects, and the writer into PostGIS."""
