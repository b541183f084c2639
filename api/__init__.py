"""The HTTP service: OGC API Features, 3D Tiles, the grading API, the viewer and dashboard."""
