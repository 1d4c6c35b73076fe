"""Alembic migrations of the annotation store; `Store` runs them to head when it opens a database."""
