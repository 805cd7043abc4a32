"""The suite hands out its heaviest files first (root conftest.py, scripts/test_weights.py)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _weights_module():
    spec = importlib.util.spec_from_file_location('test_weights',
                                                  ROOT / 'scripts' / 'test_weights.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_seconds_are_summed_per_file_from_the_junit_xml(tmp_path):
    junit = tmp_path / 'junit.xml'
    junit.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="src.sage.test.test_a" name="test_x" time="2.6"/>'
        '<testcase classname="src.sage.test.test_a" name="test_y" time="1.0"/>'
        '<testcase classname="src.sage_memory.test.test_b.TestKill" name="test_z" time="7.2"/>'
        '<testcase classname="src.sage.test.test_c" name="test_q" time="0.1"/>'
        '</testsuite></testsuites>')
    assert _weights_module().file_seconds(junit) == {'src/sage/test/test_a.py': 4,
                                                     'src/sage_memory/test/test_b.py': 7}


def test_this_run_collected_its_files_heaviest_first(request):
    """In `make test` (every file) the order is the table's; a run of one file passes."""
    weights = json.loads((ROOT / 'scripts' / 'test_weights.json').read_text())
    files = list(dict.fromkeys(item.nodeid.split('::', 1)[0] for item in request.session.items))
    seconds = [weights.get(f, 0) for f in files]
    assert seconds == sorted(seconds, reverse=True), list(zip(files, seconds))[:10]
