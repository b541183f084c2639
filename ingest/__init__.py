"""Readers that turn city-model files into city objects, and the writer that puts them in PostGIS."""
