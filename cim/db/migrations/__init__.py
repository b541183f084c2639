"""Alembic migrations of the CIM schema (run with `cim db upgrade`)."""
