"""Which bag a decisions file was replayed from, recorded beside it and checked before scoring.

The decisions JSONL format is fixed by the offline replay contract (DESIGN.md), so the bag's
identity goes into a sidecar, `<decisions>.source.json`:

    {"bag": "/abs/path/of/the/bag", "bag_sha256": "...", "decisions_sha256": "..."}

`bag_sha256` covers every file of the bag folder (names and bytes), so a copied or moved bag
keeps its identity and two scenario bags with the same timing but another seed do not.
`decisions_sha256` ties the sidecar to the file it describes (a sidecar left behind by an older
replay is stale, not proof).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from sage_eval.errors import ScenarioError

SIDECAR_SUFFIX = '.source.json'
_CHUNK = 1 << 20  # read files in 1 MiB blocks
_SHORT = 12  # hex digits of a digest shown in messages

Verdict = Literal['verified', 'no sidecar', 'stale sidecar', 'not checked']


def sidecar_path(decisions: Path) -> Path:
    """Where the source record of a decisions file lives: '<decisions>.source.json'."""
    decisions = Path(decisions)
    return decisions.with_name(decisions.name + SIDECAR_SUFFIX)


def _file_digest(path: Path, into: Any) -> None:
    with path.open('rb') as fh:
        while block := fh.read(_CHUNK):
            into.update(block)


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of one file."""
    h = hashlib.sha256()
    _file_digest(Path(path), h)
    return h.hexdigest()


def bag_sha256(bag: Path) -> str:
    """SHA-256 (hex) of a bag: every regular file of the folder, by relative name and bytes.

    A bag is read once per process while its files keep their sizes and modification times
    (a replay keys its encoded-input cache on it and then records it beside the decisions;
    an experiment does both per variant, and a realistic scene is about 1 GB).

    Raises:
        ScenarioError: the bag does not exist or a file cannot be read.
    """
    bag = Path(bag)
    try:
        if not bag.exists():
            raise FileNotFoundError(f'no such bag: {bag}')
        files = sorted(p for p in bag.rglob('*') if p.is_file()) if bag.is_dir() else [bag]
        names = tuple(p.relative_to(bag).as_posix() if bag.is_dir() else p.name for p in files)
        stats = tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in files)
        return _bag_digest(bag.resolve(), names, stats)
    except OSError as err:
        raise ScenarioError(f'cannot read bag {bag}: {err}') from err


@lru_cache(maxsize=16)
def _bag_digest(bag: Path, names: tuple[str, ...], stats: tuple[tuple[int, int], ...]) -> str:
    """The digest of bag_sha256; `stats` (sizes, mtimes) only key the memo."""
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode() + b'\0')
        _file_digest(bag / name if bag.is_dir() else bag, h)
        h.update(b'\0')
    return h.hexdigest()


def write_source(decisions: Path, bag: Path) -> Path:
    """Record which bag `decisions` was replayed from; returns the sidecar's path."""
    record = {'bag': str(Path(bag).resolve()), 'bag_sha256': bag_sha256(bag),
              'decisions_sha256': file_sha256(decisions)}
    path = sidecar_path(decisions)
    path.write_text(json.dumps(record, indent=1) + '\n')
    return path


@dataclass(frozen=True)
class SourceCheck:
    """Outcome of `check_source`: the verdict and a sentence for the user."""

    verdict: Verdict
    note: str


def check_source(decisions: Path, bag: Path) -> SourceCheck:
    """Check that `decisions` was replayed from `bag` (by content, not by path).

    Returns:
        'verified' when the sidecar names this bag's content; 'no sidecar' or 'stale sidecar'
        (the decisions file changed since the replay) when nothing can be proved.

    Raises:
        ScenarioError: the sidecar says the decisions come from another bag, or is unreadable.
    """
    decisions, bag = Path(decisions), Path(bag)
    path = sidecar_path(decisions)
    if not path.is_file():
        return SourceCheck('no sidecar', f'{path} not found: cannot prove {decisions} was '
                           f'replayed from {bag}; checked its stamps against the labels only')
    try:
        record = json.loads(path.read_text())
        recorded_bag, recorded_sha = str(record['bag']), str(record['bag_sha256'])
        decisions_sha = str(record['decisions_sha256'])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ScenarioError(f'cannot read {path}: {err}') from err
    if file_sha256(decisions) != decisions_sha:
        return SourceCheck('stale sidecar', f'{decisions} changed after the replay that wrote '
                           f'{path}; checked its stamps against the labels only')
    actual = bag_sha256(bag)
    if actual != recorded_sha:
        raise ScenarioError(
            f'{decisions} was replayed from {recorded_bag} (sha256 {recorded_sha[:_SHORT]}), '
            f'not from {bag} (sha256 {actual[:_SHORT]}): replay this bag first '
            f'(sage replay {bag} --offline --decisions OUT.jsonl)')
    return SourceCheck('verified', f'{decisions} was replayed from this bag '
                       f'(sha256 {actual[:_SHORT]})')
