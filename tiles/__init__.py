"""3D Tiles from the city model (built in a later issue)."""
