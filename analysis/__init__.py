"""Planning review on the city model: parcel indicators, height limits (and, to come, sunlight
hours and design schemes), each an OGC API process whose runs are kept with their inputs."""
