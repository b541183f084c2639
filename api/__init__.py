"""The HTTP service: OGC API Features now, 3D Tiles and grading routes later."""
