"""What the encoders made of a bag, kept on disk, so a replay that changes only SNARC (or the
store policy) does not encode the bag again.

The inputs `inputs.iter_inputs` yields depend on the bag (its frames, audio, IMU, and the
/sage/budget messages that set the refinement ATP), the encoder parameters, the model files and
the encoder code: not on SNARC. Encoding is most of a replay's time (a 7-minute realistic
scene: 204 of its 215 s), so `sage bench salience` run again, or `sage experiment` over snarc.*
variants, score the kept inputs instead. The key covers all four; a change to any of them is a
miss, never a stale hit:

- the bag: `provenance.bag_sha256` (every file, by name and bytes);
- the encoder parameters, resolved with their defaults, and the reorder window;
- the model files the encoders may load: name, size and modification time of every file in
  the folders their model_dir parameters search (`model_files.search_dirs`);
- the code: the source of sage_encoders, sage_common and the reading of the bag
  (`sage_eval.inputs`, `sage_eval.bagio`).

Entries are pickles written by this process (temp file, then rename), so a killed replay leaves
no half entry; only the newest `KEEP` entries stay. Previews are dropped from the kept records
(no scorer reads them).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
import dataclasses
from functools import lru_cache
import hashlib
import importlib
import json
import os
from pathlib import Path
import pickle
import tempfile
from typing import Any

from sage_common.records import LatentRecord
from sage_common.user_cache import cache_dir
from sage_encoders.model_files import search_dirs
from sage_eval.provenance import bag_sha256

FORMAT = 1
# Entries kept: every seed set `sage bench salience` replays (realistic: 40 tuning, 20 report;
# busy: 30 tuning, 20 report: 110) and a few more, at 10-35 MB a scene. At 64, runs of one set
# evicted another's entries, encoded again on its next run (20 busy tuning seeds after a
# realistic report run: 10 min 46 s; 10 cached ones: 19 s).
KEEP = 128
_CODE = ('sage_encoders', 'sage_common', 'sage_eval.inputs', 'sage_eval.bagio')


def default_dir() -> Path:
    """This user's cache folder ($XDG_CACHE_HOME/sage/encoded, else ~/.cache/sage/encoded)."""
    return cache_dir('encoded')


@lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 of the source files that turn bag messages into SNARC inputs."""
    h = hashlib.sha256()
    for name in _CODE:
        origin = Path(importlib.import_module(name).__file__ or '')
        files = sorted(origin.parent.rglob('*.py')) if origin.name == '__init__.py' else [origin]
        for path in files:
            h.update(path.name.encode() + b'\0' + path.read_bytes() + b'\0')
    return h.hexdigest()


# Encoder parameters only the ROS shell reads: turning them does not change what is encoded.
SHELL_ONLY = frozenset({'irp.publish_initial', 'irp.queue'})


def _model_files(params: Mapping[str, Any]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for folder in search_dirs(str(params.get('model_dir', ''))):
        if folder.is_dir():
            for path in sorted(p for p in folder.iterdir() if p.is_file()):
                st = path.stat()
                out.append([str(path), st.st_size, st.st_mtime_ns])
    return out


def entry_key(bag: Path, node_params: Mapping[str, Mapping[str, Any]], reorder_s: float) -> str:
    """The cache key of a bag encoded with these parameters (hex)."""
    # lazy: keeps rosbags out of this module's import
    from sage_eval.inputs import ENCODER_PARAMS, resolved_params
    encoders = {node: {k: v for k, v in resolved_params(node_params, node, module).items()
                       if k not in SHELL_ONLY}
                for node, module in ENCODER_PARAMS.items()}
    doc = {'format': FORMAT, 'bag': bag_sha256(bag), 'reorder_s': float(reorder_s),
           'params': encoders, 'models': {n: _model_files(p) for n, p in encoders.items()},
           'code': code_digest()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _kept(item: Any) -> Any:
    if isinstance(item, LatentRecord) and item.preview:
        return dataclasses.replace(item, preview=b'')
    return item


def cached_inputs(bag: Path, node_params: Mapping[str, Mapping[str, Any]], folder: Path, *,
                  reorder_s: float, problems: Counter[str] | None = None
                  ) -> Iterator[Any]:
    """`inputs.iter_inputs`, from the cache when this bag was encoded alike before.

    On a miss the bag is encoded as usual (inputs are yielded as they come) and the entry is
    written once every input has been read; a consumer that stops early writes nothing.
    """
    # lazy: keeps rosbags out of this module's import
    from sage_eval.inputs import iter_inputs
    problems = problems if problems is not None else Counter()
    path = Path(folder) / f'{entry_key(bag, node_params, reorder_s)}.pkl'
    try:
        with path.open('rb') as fh:
            items, seen = pickle.load(fh)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError):
        items = None
    if items is not None:
        try:
            os.utime(path)  # newest use: pruned last
        except OSError:
            pass
        problems.update(seen)
        yield from items
        return
    kept = []
    before = Counter(problems)
    for item in iter_inputs(bag, node_params, reorder_s=reorder_s, problems=problems):
        kept.append(_kept(item))
        yield item
    _write(path, kept, problems - before)


def _write(path: Path, items: list[Any], problems: Counter[str]) -> None:
    """Atomically write an entry and prune the oldest; a cache that cannot be written is
    skipped (the replay itself is done)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.tmp-', dir=path.parent)
        try:
            with os.fdopen(fd, 'wb') as fh:
                pickle.dump((items, dict(problems)), fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        entries = sorted(path.parent.glob('*.pkl'), key=lambda p: p.stat().st_mtime_ns)
        for old in entries[:-KEEP]:
            old.unlink(missing_ok=True)
    except OSError:
        pass
