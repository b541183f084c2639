"""The live digital twin: OGC SensorThings API 1.1 (Things, Datastreams, Observations)."""
