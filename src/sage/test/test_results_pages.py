"""docs/results/ is exactly what scripts/results.py makes of docs/results/data/.

The generator runs on a temporary copy of the data; the pages it writes there must equal the
committed ones byte for byte, so a hand-edited page, a page left over from deleted data or a
data file whose page was not regenerated fails here. `make results` regenerates them.
"""
from __future__ import annotations

import json
from pathlib import Path
import os
import shutil
import subprocess
import sys

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / 'scripts' / 'results.py'
RESULTS = ROOT / 'docs' / 'results'


def _generate(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), '--root', str(root), *args],
                          capture_output=True, text=True, timeout=120, check=False)


def _copy_data(tmp: Path) -> Path:
    shutil.copytree(RESULTS / 'data', tmp / 'docs' / 'results' / 'data')
    return tmp


def _pages(results: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(results.glob('*.md'))}


def test_committed_pages_are_what_the_data_gives(tmp_path):
    root = _copy_data(tmp_path)
    proc = _generate(root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    made = _pages(root / 'docs' / 'results')
    committed = _pages(RESULTS)
    assert set(made) == set(committed), (
        f'pages without data or data without pages: made {sorted(made)}, '
        f'committed {sorted(committed)} (run `make results`)')
    differ = [name for name in made if made[name] != committed[name]]
    assert not differ, f'pages that differ from what their data gives: {differ} (edit the ' \
                       'data or scripts/results.py, then run `make results`)'


def test_there_is_a_page_for_each_benchmark_run_and_an_index():
    data = sorted(p.stem for p in (RESULTS / 'data').glob('*.json') if p.name != 'commands.json')
    assert {'salience', 'graph'} <= set(data)
    index = (RESULTS / 'README.md').read_text()
    for name in data:
        assert f'({name}.md)' in index


def test_every_data_file_names_the_command_that_wrote_it():
    commands = json.loads((RESULTS / 'data' / 'commands.json').read_text())
    for path in sorted((RESULTS / 'data').glob('*.json')):
        if path.name == 'commands.json':
            continue
        bench = json.loads(path.read_text())['benchmark']
        entry = commands.get(path.name)
        assert entry, f'{path.name} has no entry in commands.json'
        assert f'sage bench {bench} ' in entry['command'] + ' ', (path.name, entry)
        assert entry.get('commit'), f'{path.name}: the commit it ran on is not recorded'
        page = (RESULTS / f'{path.stem}.md').read_text()
        assert entry['command'] in page


def test_each_command_that_made_the_data_is_shown_and_checked_in_benchmarks_md():
    """docs/benchmarks.md shows it in a shell block, so test_readme checks it too."""
    benchmarks = (ROOT / 'docs' / 'benchmarks.md').read_text()
    commands = json.loads((RESULTS / 'data' / 'commands.json').read_text())
    for name, entry in commands.items():
        assert f"\n{entry['command']}\n" in benchmarks, (name, entry['command'])


def test_a_second_run_changes_nothing(tmp_path):
    root = _copy_data(tmp_path)
    assert _generate(root).returncode == 0
    first = _pages(root / 'docs' / 'results')
    again = _generate(root)
    assert again.returncode == 0 and ', 0 changed' in again.stdout, again.stdout
    assert _pages(root / 'docs' / 'results') == first


def test_a_hand_edit_fails_the_check_and_a_run_puts_the_page_back(tmp_path):
    root = _copy_data(tmp_path)
    assert _generate(root).returncode == 0
    page = root / 'docs' / 'results' / 'salience.md'
    original = page.read_text()
    page.write_text(original.replace('| ', '| 1', 1))
    check = _generate(root, '--check')
    assert check.returncode == 1 and 'salience.md' in check.stdout, check.stdout
    assert page.read_text() != original, '--check must write nothing'
    assert _generate(root).returncode == 0
    assert page.read_text() == original
    assert _generate(root, '--check').returncode == 0


def test_a_page_whose_data_is_gone_is_removed(tmp_path):
    root = _copy_data(tmp_path)
    assert _generate(root).returncode == 0
    (root / 'docs' / 'results' / 'data' / 'graph.json').unlink()
    assert _generate(root, '--check').returncode == 1
    assert _generate(root).returncode == 0
    assert not (root / 'docs' / 'results' / 'graph.md').exists()
    assert 'graph.md' not in (root / 'docs' / 'results' / 'README.md').read_text()


def test_any_other_benchmark_gets_a_page_of_its_values(tmp_path):
    data = tmp_path / 'docs' / 'results' / 'data'
    data.mkdir(parents=True)
    run = {'benchmark': 'orchestrator', 'started': 0.0, 'duration_s': 2.0,
           'machine': {'cpus': 2}, 'results': {'plugins': 10,
                                               'tick_ms': {'n': 3, 'p50': 0.25, 'p95': 0.5}}}
    (data / 'orchestrator.json').write_text(json.dumps(run))
    (data / 'commands.json').write_text(json.dumps(
        {'orchestrator.json': {'command': 'sage bench orchestrator -o x.json', 'commit': 'abc'}}))
    assert _generate(tmp_path).returncode == 0
    page = (tmp_path / 'docs' / 'results' / 'orchestrator.md').read_text()
    assert '| `plugins` | 10 |' in page
    assert '| `tick_ms` | n 3, p50 0.250, p95 0.500 |' in page
    assert 'sage bench orchestrator -o x.json' in page


def test_make_results_runs_the_generator():
    # Run from `make test`, make would print its directory changes: no MAKELEVEL/MAKEFLAGS.
    env = {k: v for k, v in os.environ.items() if k not in ('MAKELEVEL', 'MAKEFLAGS', 'MFLAGS')}
    proc = subprocess.run(['make', '-n', '--no-print-directory', 'results'], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=False, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '.venv/bin/python scripts/results.py'
