"""Fixtures: the same store tests run on SQLite and on a real PostgreSQL server.

PostgreSQL tests read the server URL from SAGE_TEST_PG_URL (scripts/pg_test_server.sh starts a
throwaway server and prints it) and skip with a reason when it is unset, or fail when
SAGE_REQUIRE_PG=1 (CI sets it: there the server must run). Each test gets a fresh
database on that server, dropped afterwards.
"""
from __future__ import annotations

from collections.abc import Iterator
import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sage_memory.store import resolve_url

PG_ENV = 'SAGE_TEST_PG_URL'
PG_SKIP = (f'{PG_ENV} is not set: no PostgreSQL server for this run '
           '(start one with scripts/pg_test_server.sh)')


def pg_base_url() -> str | None:
    """The server URL from the environment, with the psycopg driver, or None."""
    url = os.environ.get(PG_ENV, '').strip()
    return resolve_url(url) if url else None


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database (dropped after the test)."""
    base = pg_base_url()
    if base is None:
        if os.environ.get('SAGE_REQUIRE_PG') == '1':   # CI: a missing server is a failure
            pytest.fail(PG_SKIP)
        pytest.skip(PG_SKIP)
    name = f'sage_t_{uuid.uuid4().hex[:12]}'
    admin = create_engine(base, isolation_level='AUTOCOMMIT')
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE {name}'))
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=['sqlite', 'postgresql'])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh store URL on each backend."""
    if request.param == 'sqlite':
        return f'sqlite:///{tmp_path / "sage_memory.db"}'
    return request.getfixturevalue('pg_url')
