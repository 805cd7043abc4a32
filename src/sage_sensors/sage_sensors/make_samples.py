"""Generate the embedded sample data: `python -m sage_sensors.make_samples [--out DIR] [--seed N]`.

Idempotent (does nothing when an up-to-date set is there; --force rebuilds) and quick (a few
seconds). The installer runs it once; sensor nodes also run it on first use when data is missing.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

from sage_sensors.errors import SensorError
from sage_sensors.samples import DEFAULT_SEED, ensure_samples, load_manifest, sample_data_dir


def main(argv: list[str] | None = None) -> int:
    """Build the samples; print where they are. Exit 0 on success, 2 on failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=None,
                        help=f'target folder (default: {sample_data_dir()})')
    parser.add_argument('--seed', type=int, default=DEFAULT_SEED)
    parser.add_argument('--force', action='store_true', help='rebuild even if up to date')
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        out = ensure_samples(args.out, args.seed, args.force)
        manifest = load_manifest(out)
    except SensorError as err:
        print(f'ERROR: {err}', file=sys.stderr)
        return 2
    events = ', '.join(f"{e['name']}@{e['stamp']:g}s" for e in manifest['events'])
    print(f'samples in {out} (seed {manifest["seed"]}, {time.monotonic() - start:.1f} s): '
          f'{events}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
