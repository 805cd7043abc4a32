"""Check that each image's pins resolve for its platform and Python (CI, scripts/test.sh).

For every docker/constraints-*.txt (its header names the target Python, CPU architecture and
glibc), pip resolves docker/requirements-runtime.txt (with dependencies) and
docker/requirements-nodeps.txt (without) against the pins, for that target, wheels only.
Fails when a pin has no wheel for the target, the pins conflict, or a resolved package is not
pinned. Wheels are kept in a cache folder; a run whose pins are all cached resolves offline
from it (seconds), anything else goes to the index once; a run whose inputs (pins,
requirements, pip, target, cached wheels) equal the last successful one's reuses its result.

Usage: python scripts/check_image_pins.py [CONSTRAINTS.txt ...]
Environment: SAGE_IMAGE_WHEEL_CACHE (default ~/.cache/sage/image-wheels).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
import re
import subprocess
import sys
import tempfile

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / 'docker'
REQUIREMENTS = DOCKER / 'requirements-runtime.txt'
NODEPS = DOCKER / 'requirements-nodeps.txt'
# The oldest manylinux tag pip knows by its legacy name (glibc 2.17).
MANYLINUX_FIRST_MINOR = 17
# The version of a pin that refuses a package: the image takes it from its base instead.
REFUSED = '0+from.base.image'
HEADER = re.compile(r'^#\s*target-(python|arch|glibc):\s*(\S+)\s*$')


def normalize(name: str) -> str:
    """PEP 503 name (case and -_. runs folded)."""
    return re.sub(r'[-_.]+', '-', name).lower()


def read_constraints(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(target header values, pins {normalized name: version}) of a constraints file."""
    target: dict[str, str] = {}
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = HEADER.match(line)
        if match:
            target[match.group(1)] = match.group(2)
            continue
        line = line.split('#', 1)[0].strip()
        if line:
            name, sep, version = line.partition('==')
            if not sep:
                raise SystemExit(f'ERROR: {path.name}: not an exact pin: {line!r}')
            pins[normalize(name)] = version.strip()
    missing = {'python', 'arch', 'glibc'} - set(target)
    if missing:
        raise SystemExit(f'ERROR: {path.name}: header lacks target-{", target-".join(missing)}')
    return target, pins


def platform_args(target: dict[str, str]) -> list[str]:
    """--platform for every manylinux tag the target's glibc accepts (pip does not expand)."""
    arch = target['arch']
    major, minor = (int(v) for v in target['glibc'].split('.'))
    tags = [f'manylinux2014_{arch}'] + [f'manylinux_{major}_{m}_{arch}'
                                         for m in range(MANYLINUX_FIRST_MINOR, minor + 1)]
    args = []
    for tag in tags:
        args += ['--platform', tag]
    return args + ['--python-version', target['python'], '--only-binary=:all:']


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, '-m', 'pip', '--disable-pip-version-check', *args],
                          capture_output=True, text=True, check=False)


def errors_of(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines()
             if ln.startswith(('ERROR', '    ', 'The conflict')) and 'is ignored' not in ln]
    return '\n'.join(lines[-12:]) or (proc.stderr.strip()[-1500:])


def resolve_offline(cons: Path, target_args: list[str], cache: Path,
                    work: Path) -> tuple[list[tuple[str, str]] | None, str]:
    """Resolve from the cache only; ([(name, version)], '') or (None, pip's errors)."""
    found: list[tuple[str, str]] = []
    for reqs, extra in ((REQUIREMENTS, []), (NODEPS, ['--no-deps'])):
        report = work / f'{reqs.stem}.json'
        proc = pip('install', '--dry-run', '--ignore-installed', '--quiet', '--no-index',
                   '--find-links', str(cache), '--target', str(work / 'target'),
                   '--report', str(report), '-r', str(reqs), '-c', str(cons),
                   *extra, *target_args)
        if proc.returncode != 0:
            return None, errors_of(proc)
        data = json.loads(report.read_text())
        found += [(i['metadata']['name'], i['metadata']['version']) for i in data['install']]
    return found, ''


def download(cons: Path, target_args: list[str], cache: Path) -> str:
    """Fetch the target's wheels into the cache; '' or pip's errors."""
    for reqs, extra in ((REQUIREMENTS, []), (NODEPS, ['--no-deps'])):
        proc = pip('download', '-d', str(cache), '-r', str(reqs), '-c', str(cons),
                   *extra, *target_args)
        if proc.returncode != 0:
            return errors_of(proc)
    return ''


def check(cons: Path, cache_root: Path) -> list[str]:
    """Problems with one constraints file (empty = it resolves and pins everything)."""
    target, pins = read_constraints(cons)
    label = (f'{cons.name} (Python {target["python"]}, {target["arch"]}, '
             f'glibc {target["glibc"]})')
    args = platform_args(target)
    cache = cache_root / cons.stem
    cache.mkdir(parents=True, exist_ok=True)
    stamp = cache_root / f'{cons.stem}.resolved'
    key = resolution_key(cons, args, cache)
    if stamp.is_file() and stamp.read_text().split('\n', 1)[0] == key:
        count = stamp.read_text().split('\n')[1]
        print(f'[compat] {label}: {count} packages resolve (same inputs as the last check)')
        return []
    with tempfile.TemporaryDirectory(prefix='sage-pins-') as tmp:
        found, err = resolve_offline(cons, args, cache, Path(tmp))
        if found is None:
            print(f'[compat] {cons.name}: not all pins cached; fetching wheels into {cache}')
            err = download(cons, args, cache)
            if err:
                return [f'{label}: the pins do not resolve (a pin without a wheel for this '
                        f'target, or pins that conflict):\n{err}']
            found, err = resolve_offline(cons, args, cache, Path(tmp))
            if found is None:
                return [f'{label}: resolves online but not from the cache:\n{err}']
    unpinned = sorted(f'{n}=={v}' for n, v in found if normalize(n) not in pins)
    problems = []
    if unpinned:
        problems.append(f'{label}: resolved but not pinned: {", ".join(unpinned)}')
    # A refused pin (docker/constraints-*.txt: taken from the base image) is meant to match
    # nothing.
    unused = sorted(set(n for n, v in pins.items() if v != REFUSED)
                    - {normalize(n) for n, _ in found})
    if unused:
        print(f'[compat] note: {cons.name}: pins nothing needs: {", ".join(unused)}')
    if not problems:
        print(f'[compat] {label}: {len(found)} packages resolve')
        stamp.write_text(f'{resolution_key(cons, args, cache)}\n{len(found)}\n')
    return problems


def resolution_key(cons: Path, target_args: list[str], cache: Path) -> str:
    """Everything an offline resolution depends on: same key, same result, so a second
    run with nothing changed need not ask pip again."""
    digest = hashlib.sha256()
    for part in ([cons.read_text(), REQUIREMENTS.read_text(), NODEPS.read_text(),
                  pip_version(), *target_args] + sorted(p.name for p in cache.iterdir())):
        digest.update(part.encode() + b'\0')
    return digest.hexdigest()


def pip_version() -> str:
    from importlib.metadata import version
    return version('pip')


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or sorted(DOCKER.glob('constraints-*.txt'))
    cache_root = Path(os.environ.get('SAGE_IMAGE_WHEEL_CACHE')
                      or Path.home() / '.cache' / 'sage' / 'image-wheels')
    problems = [p for f in files for p in check(f, cache_root)]
    for problem in problems:
        print(f'ERROR: {problem}', file=sys.stderr)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
