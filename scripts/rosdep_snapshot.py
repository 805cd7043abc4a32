#!/usr/bin/env python3
"""Write requirements/colcon/rosdep-keys.yaml: where every dependency our package.xml files
name comes from in ros/rosdistro (a rosdep key in rosdep/*.yaml, or a ROS package released for
each target distribution). Fails, naming them, on dependencies rosdistro does not know.

  python3 scripts/rosdep_snapshot.py ROSDISTRO      # a checkout, or a bare git directory

The test src/sage/test/test_package_dependencies.py checks the package.xml files against the
file this writes, so it runs offline.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import subprocess
import sys

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'src' / 'sage'))
from sage.package_deps import workspace_packages  # noqa: E402

ROSDEP_FILES = ('rosdep/base.yaml', 'rosdep/python.yaml')
# Humble (Orin, JetPack 6), Jazzy (Thor, JetPack 7), Kilted (the PyPI wheels of this machine).
DISTROS = ('humble', 'jazzy', 'kilted')
OUT = ROOT / 'requirements' / 'colcon' / 'rosdep-keys.yaml'


def _reader(rosdistro: Path):
    """read(path) -> text for a checkout or a bare git directory, and its commit."""
    if (rosdistro / 'rosdep' / 'base.yaml').is_file():
        def read(rel: str) -> str:
            return (rosdistro / rel).read_text()
        git = ['git', '-C', str(rosdistro)]
    else:
        def read(rel: str) -> str:
            return subprocess.run(['git', '--git-dir', str(rosdistro), 'show', f'HEAD:{rel}'],
                                  check=True, capture_output=True, text=True).stdout
        git = ['git', '--git-dir', str(rosdistro)]
    log = subprocess.run([*git, 'log', '-1', '--format=%H %cs'], capture_output=True, text=True)
    return read, (log.stdout.split() or ['unknown', 'unknown'])


def _released(distribution: dict) -> set[str]:
    names = set()
    for repo, entry in distribution['repositories'].items():
        release = entry.get('release')
        if release:
            names.update(release.get('packages', [repo]))
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('rosdistro', type=Path)
    ap.add_argument('--out', type=Path, default=OUT)
    args = ap.parse_args(argv)
    read, (commit, date) = _reader(args.rosdistro)
    keys = {rel: set(yaml.safe_load(read(rel))) for rel in ROSDEP_FILES}
    released = {d: _released(yaml.safe_load(read(f'{d}/distribution.yaml'))) for d in DISTROS}
    packages = workspace_packages(ROOT / 'src')
    ours = {p.name for p in packages}
    wanted = sorted(set().union(*(p.declared() for p in packages)) - ours)
    rosdep_keys, ros_packages, unknown = {}, {}, []
    for name in wanted:
        files = [rel for rel in ROSDEP_FILES if name in keys[rel]]
        distros = [d for d in DISTROS if name in released[d]]
        if files:
            rosdep_keys[name] = files[0]
        elif distros:
            ros_packages[name] = distros
        else:
            unknown.append(name)
    if unknown:
        print(f"ERROR: not in rosdistro {commit[:12]}: {', '.join(unknown)}", file=sys.stderr)
        return 1
    header = (f'# The rosdep keys and ROS packages our package.xml files name, as found in\n'
              f'# ros/rosdistro {commit} ({date}).\n'
              '# Written by scripts/rosdep_snapshot.py; read by '
              'src/sage/test/test_package_dependencies.py,\n'
              '# which fails on a dependency not listed here.\n')
    lines = [f'rosdistro_commit: {commit}', 'rosdep_keys:  # key: the rosdistro file it is in']
    lines += [f'  {key}: {rel}' for key, rel in sorted(rosdep_keys.items())]
    lines.append('ros_packages:  # package: the distributions that release it')
    lines += [f"  {name}: [{', '.join(d)}]" for name, d in sorted(ros_packages.items())]
    args.out.write_text(header + '\n'.join(lines) + '\n')
    print(f'wrote {args.out}: {len(rosdep_keys)} rosdep keys, {len(ros_packages)} ROS packages')
    return 0


if __name__ == '__main__':
    sys.exit(main())
