"""Smart-city star grading: catalogues, scoring, awards, rounds with evidence, keys and audit,
indicators computed from the city model, templates, charts and the report.

Where things are: `catalogue`, `scoring` and `awards` are the rules (pure); `assessment` applies
them to a round's inputs and makes a `results.RoundResults`, the typed document every reader
reads. In the database: `rounds` (create, read, the lifecycle, the policy), `values` and
`evidence` (what is entered, only in a draft), `outcome` (results computed or frozen, their
cache, verification), `access` (keys, roles, the audit log), with `store` the round's rows they
share. `templates` writes and reads the value spreadsheets; `report` and `charts` render.
"""
