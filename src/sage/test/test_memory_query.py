"""`sage memory query TEXT`: recall by text from a real database with the real MiniLM embedder,
through the real command line (typer), as a table."""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from sage.cli import app
from sage_common.params import resolve
from sage_memory.errors import QueryError
from sage_memory.memory_params import PARAMS
from sage_memory.index.recall import text_embedder
from sage_memory.store.memory_store import DB_FILENAME, MemoryStore, StoreConfig
from sage_memory.store.synthetic import synthetic_record

SENTENCES = ['a red ball rolls across the kitchen floor', 'the battery is almost empty',
             'someone is knocking at the front door', 'the cat is asleep on the sofa']


@pytest.fixture(scope='module')
def embed():
    """The embedder the memory node's own parameters name (skips where MiniLM cannot load)."""
    embedder = text_embedder(resolve(PARAMS, {}))
    try:
        embedder(['warm up'])
    except QueryError as err:
        pytest.skip(f'MiniLM cannot load here: {err}')
    return embedder


def make_database(folder, embed) -> None:
    rng = np.random.default_rng(0)
    records = [synthetic_record(i, rng, modality='language', text=t, grid=0,
                                embedding=embed([t])[0], salience=0.5)
               for i, t in enumerate(SENTENCES)]
    # Vision rows too: a text query must search language memories only.
    records += [synthetic_record(10 + i, rng, dim=384, grid=4) for i in range(5)]
    store = MemoryStore(StoreConfig(data_dir=str(folder)))
    store.start()
    store.submit_many(records)
    assert store.flush(60) and store.close()


def test_memory_query_prints_the_most_similar_memories_first(tmp_path, embed):
    make_database(tmp_path, embed)
    db = tmp_path / DB_FILENAME
    before = db.read_bytes()
    result = CliRunner().invoke(app, ['memory', 'query', 'low battery warning', '--k', '2',
                                      '--url', str(db)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "2 memories recalled for 'low battery warning'" in out
    rows = [ln for ln in out.splitlines() if 'language' in ln]
    assert len(rows) == 2 and 'the battery is almost empty' in rows[0], out
    scores = [float(r.split('│')[2]) for r in rows]
    assert scores[0] > scores[1] > 0, out
    assert 'vision' not in out
    assert db.read_bytes() == before  # read-only: the database is untouched


def test_memory_query_names_a_bad_request(tmp_path, embed):
    make_database(tmp_path, embed)
    runner = CliRunner()
    result = runner.invoke(app, ['memory', 'query', 'hello', '--url', str(tmp_path / 'no.db')])
    assert result.exit_code == 2 and 'ERROR: no memory database at' in result.output
    result = runner.invoke(app, ['memory', 'query', 'hello', '--k', '0',
                                 '--url', str(tmp_path / DB_FILENAME)])
    assert result.exit_code == 2 and 'k must be between 1 and 1000' in result.output
