"""Alembic migrations of the memory store (applied programmatically on start)."""

# Newest revision in versions/ (a test checks it against Alembic's own view). The store compares
# it with the database's alembic_version and only imports Alembic when they differ.
HEAD = '0001'
