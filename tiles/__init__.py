"""3D Tiles from the city model in PostGIS: tileset tree, GLB/B3DM content, cache, seeding."""
