"""Seconds each test file took in a run, for the order the suite hands files out in.

pytest-xdist gives a worker one file at a time in collection order (scripts/test.sh passes
--no-loadscope-reorder), and the root conftest sorts files heaviest first from
scripts/test_weights.json: the longest files start at once and the short ones fill the gaps,
so the workers end together. A stale table only costs balance, never a test.

    .venv/bin/python scripts/test_weights.py test-artifacts/junit.xml

reads the JUnit XML that scripts/test.sh writes and rewrites the table (whole seconds).
"""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

TABLE = Path(__file__).with_name('test_weights.json')


def file_seconds(junit: Path) -> dict[str, int]:
    """Seconds per test file (setup, call and teardown of its tests) in one JUnit XML."""
    total: Counter[str] = Counter()
    for case in ET.parse(junit).iter('testcase'):
        # classname is the module path dotted: src.sage.test.test_x (importlib mode).
        name = case.get('classname', '').split('.')
        while name and not name[-1].startswith('test_'):
            name.pop()  # a test class's name
        if name:
            total['/'.join(name) + '.py'] += float(case.get('time', 0) or 0)
    return {f: round(s) for f, s in sorted(total.items()) if round(s) > 0}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    table = file_seconds(Path(argv[0]))
    TABLE.write_text(json.dumps(table, indent=0, sort_keys=True) + '\n')
    print(f'wrote {TABLE.name}: {len(table)} files, {sum(table.values())} s')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
