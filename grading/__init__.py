"""Smart-city star grading: catalogues, scoring, awards, rounds with evidence, keys and audit,
indicators computed from the city model, templates, charts and the report."""
