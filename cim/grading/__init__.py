"""Smart-city star grading: indicator catalogues and the pure scoring engine."""
