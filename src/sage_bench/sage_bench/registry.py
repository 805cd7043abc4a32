"""`sage bench NAME`: run a named benchmark and write its JSON.

Each package owns its benchmark as `run_bench(seconds: float, **kw) -> dict`; this module only
maps names to them and adds the machine description, so results from different runs compare.
"""
from __future__ import annotations

from collections.abc import Callable
import importlib
import inspect
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import psutil

# name -> module holding run_bench(seconds=..., **kw)
BENCHMARKS = {
    'graph': 'sage_bench.graph',
    'sensors': 'sage_bench.sensors',
    'encoders': 'sage_bench.encoders',
    'snarc': 'sage_bench.snarc',
    'orchestrator': 'sage_bench.orchestrator',
    'memory': 'sage_bench.memory',
    'transport': 'sage_cuda_mailbox.bench',
    'salience': 'sage_bench.salience',
    'twohost': 'sage_bench.twohost',
    'sleep': 'sage_bench.sleep',
    'targets': 'sage_bench.targets',
}


class UnknownOption(TypeError):
    """A command-line option the named benchmark does not take."""


def machine() -> dict[str, Any]:
    return {'python': platform.python_version(), 'machine': platform.machine(),
            'cpus': os.cpu_count(), 'mem_gb': round(psutil.virtual_memory().total / 2**30, 1),
            'processor': platform.processor()}


def run_named(name: str, seconds: float | None = None,
              progress: Callable[[float, float | None], None] | None = None,
              **kw: Any) -> dict[str, Any]:
    """Run one benchmark; KeyError for an unknown name, UnknownOption for an option it lacks.

    progress(done, total) is handed to a benchmark whose run_bench takes one (a progress bar;
    the others run without).
    """
    module = importlib.import_module(BENCHMARKS[name])
    accepted = inspect.signature(module.run_bench).parameters
    unknown = [k for k in kw if k not in accepted]
    if unknown:
        raise UnknownOption(f"benchmark '{name}' takes no {', '.join(unknown)} option")
    started = time.time()
    args = dict(kw)
    if seconds is not None:
        args['seconds'] = seconds
    if progress is not None and 'progress' in accepted:
        args['progress'] = progress
    result = module.run_bench(**args)
    return {'benchmark': name, 'started': started, 'duration_s': time.time() - started,
            'machine': machine(), 'results': result}


def write_json(result: dict[str, Any], out: Path | None) -> Path:
    out = out or Path(f'bench-{result["benchmark"]}.json')
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float))
    return out
