"""Fixtures: the same store tests run on SQLite and on a real PostgreSQL server.

PostgreSQL tests read the server URL from SAGE_TEST_PG_URL (scripts/pg_test_server.sh starts a
throwaway server and prints it) and skip with a reason when it is unset, or fail when
SAGE_REQUIRE_PG=1 (CI sets it: there the server must run). Each test gets a fresh
database on that server, dropped afterwards.
"""
from __future__ import annotations

# Imports inside fixtures are lazy: sage_encoders' data and rings and psutil load only for
# the tests that use those fixtures.

from collections.abc import Iterator
import os
from pathlib import Path
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sage_memory.store.memory_store import resolve_url

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


# Training inputs of fill_training_store, per modality.
N_VISION, N_AUDIO = 20, 20


@pytest.fixture(scope='session')
def fill_training_store():
    """fill(data_dir): a SQLite store of real training inputs, as the encoders keep them.

    N_VISION JPEG frames of scikit-image photos (crops at the encoder's 240x240) and N_AUDIO
    s16le-zlib windows of espeak-ng speech, each with its experience; returns the inputs.
    """
    import numpy as np

    from sage_encoders import data
    from sage_encoders.input_ring import jpeg_input, s16le_zlib_input
    from sage_encoders.preprocess import MelConfig, resize_rgb
    from sage_memory.store.memory_store import MemoryStore, StoreConfig
    from sage_memory.store.synthetic import synthetic_record
    from sage_memory.store.training_inputs import TrainingInput

    def fill(data_dir) -> list:
        store = MemoryStore(StoreConfig(data_dir=str(data_dir), device_id='t'))
        store.start()
        rng = np.random.default_rng(5)
        photos = [data.skimage_rgb(n) for n in ('astronaut', 'chelsea', 'coffee')]
        recs, items = [], []
        for i in range(N_VISION):
            img = photos[i % len(photos)]
            h, w = img.shape[:2]
            s = int(rng.integers(min(h, w) // 3, min(h, w)))
            y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            ans = jpeg_input(resize_rgb(np.ascontiguousarray(img[y:y + s, x:x + s]), 240), 90)
            rec = synthetic_record(i, np.random.default_rng(i), dim=8, preview_bytes=16,
                                   grid=4, modality='vision')
            recs.append(rec)
            items.append(TrainingInput(uuid=rec.uuid, modality='vision', stamp=rec.stamp,
                                       salience=rec.salience, format='jpeg', data=ans.data,
                                       width=240, height=240))
        mel = MelConfig()
        clips = data.speech_clips(('the kettle is boiling in the kitchen',
                                   'open the window please'), ('en-us', 'en+m3'), rng, 2)
        windows = list(data.windows(clips, mel, hop=mel.window_samples // 4))
        for j in range(N_AUDIO):
            ans = s16le_zlib_input(windows[j % len(windows)], mel.sample_rate)
            rec = synthetic_record(1000 + j, np.random.default_rng(1000 + j), dim=8,
                                   preview_bytes=16, grid=4, modality='audio')
            recs.append(rec)
            items.append(TrainingInput(uuid=rec.uuid, modality='audio', stamp=rec.stamp,
                                       salience=rec.salience, format='s16le-zlib',
                                       data=ans.data, sample_rate=mel.sample_rate,
                                       samples=ans.samples))
        store.submit_many(recs)
        assert store.flush()
        for item in items:
            store.submit_training_input(item)
        assert store.flush()
        assert store.training_stats()['count'] == N_VISION + N_AUDIO
        store.close()
        return items
    return fill


def _start_memory_node(data_dir: Path, env: dict, **params: object) -> subprocess.Popen:
    """`python -m sage_memory.memory_node` named /memory; `a__b=v` is `-p a.b:=v`."""
    cmd = [sys.executable, '-m', 'sage_memory.memory_node', '--ros-args', '-r', '__node:=memory',
           '-p', f'data_dir:={data_dir}', '-p', "language_encoder:=''"]
    for name, value in params.items():
        cmd += ['-p', f'{name.replace("__", ".")}:={value}']
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _sleep_workers(pid: int) -> list:
    """The sleep workers among a process's descendants (psutil.Process each)."""
    import psutil
    out = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if 'sage_memory.sleep.worker' in child.cmdline():
                out.append(child)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.fixture
def start_memory_node():
    """start(data_dir, env, **params): the memory node as a child process."""
    return _start_memory_node


@pytest.fixture
def sleep_workers():
    """workers(pid): the sleep workers a process has started."""
    return _sleep_workers


@pytest.fixture
def quick_retrain_params() -> dict:
    """Memory node parameters for a retraining that takes seconds (a few steps: CI time) and
    promotes any gain (the promotion rule itself is tested in test_sleep_worker).

    30 steps: with the codebook frozen, 10 steps at the profiles' rate 1e-3 made the day's
    reconstruction worse for both encoders on 3 of 5 worker seeds (-0.6 to -15 %: nothing to
    promote); 30 steps gained on 6 of 6 (vision +5.5 to +8 %, audio +0.5 to +1.5 %).
    Niceness 0: the node's default (10) lets the graph come first; in the suite the "graph" is
    the other test worker, which would leave the sleep a tenth of a core (test_sleep_worker
    checks the niceness itself)."""
    return {'sleep__retrain__nice': 0,
            'sleep__retrain__max_steps': 30, 'sleep__retrain__min_inputs': 8,
            'sleep__retrain__time_budget_s': 120.0, 'sleep__retrain__export_reserve_s': 0.0,
            'sleep__retrain__min_gain': 0.0, 'sleep__retrain__max_forgetting': 1.0}
