"""Alembic migrations of the memory store (applied programmatically on start)."""

# Newest revision in versions/ (a test checks it against Alembic's own view). The store compares
# it with the database's alembic_version and only imports Alembic when they differ.
HEAD = '0003'
# Older revisions a read-only open still serves as they are: the revisions after them only add
# tables (0002: training_inputs, 0003: shared_models), which are read as empty where they are
# missing.
READABLE = ('0001', '0002', HEAD)
