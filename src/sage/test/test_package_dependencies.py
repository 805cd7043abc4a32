"""The colcon path installs everything: every package.xml names real dependencies, and every
third-party or ROS import of a package is declared in its package.xml.

Real rosdep keys and ROS packages come from requirements/colcon/rosdep-keys.yaml, a snapshot of
ros/rosdistro (scripts/rosdep_snapshot.py writes it from a rosdistro checkout); imports map to
dependencies through requirements/colcon/imports.yaml. PyPI packages without a rosdep key are
<pip_depend> exports, Debian packages without one <apt_depend> exports (sage.package_deps),
and requirements/colcon/{pip,pip-dev,apt}.txt list them for the README's commands.
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path
import re

import pytest
import yaml

from sage.package_deps import (DEPEND_TAGS, RUN_TAGS, imported_names, python_files,
                               workspace_packages)

ROOT = Path(__file__).resolve().parents[3]
COLCON = ROOT / 'requirements' / 'colcon'
PACKAGES = workspace_packages(ROOT / 'src')
OURS = {p.name for p in PACKAGES}
SNAPSHOT = yaml.safe_load((COLCON / 'rosdep-keys.yaml').read_text())
ROSDEP_KEYS: dict[str, str] = SNAPSHOT['rosdep_keys']
ROS_PACKAGES: dict[str, list[str]] = SNAPSHOT['ros_packages']
IMPORTS: dict[str, str] = yaml.safe_load((COLCON / 'imports.yaml').read_text())
# The robots' distributions (Orin: Humble, Thor: Jazzy) must release every ROS package we name.
TARGET_DISTROS = {'humble', 'jazzy'}
BY_NAME = pytest.mark.parametrize('pkg', PACKAGES, ids=[p.name for p in PACKAGES])


def _listed(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith('#')}


def _undeclared(pkg, files: list[Path], declared: set[str]) -> list[str]:
    """'import -> dependency (where)' for each import whose dependency is not declared."""
    missing = []
    for name, where in sorted(imported_names(files).items()):
        if name == pkg.name:
            continue
        if name not in IMPORTS and name not in OURS and name not in ROS_PACKAGES:
            missing.append(f'{name} ({where[0]}): no row in requirements/colcon/imports.yaml')
            continue
        dep = IMPORTS.get(name, name)
        if dep not in declared:
            missing.append(f'{name} -> {dep} ({where[0]})')
    return missing


def test_the_packages_are_found() -> None:
    assert {'sage', 'sage_common', 'sage_encoders', 'sage_memory', 'sage_sensors',
            'sage_snarc', 'sage_orchestrator', 'sage_interfaces'} <= OURS


@BY_NAME
def test_every_declared_dependency_is_ours_a_released_ros_package_or_a_rosdep_key(pkg) -> None:
    unknown = sorted(pkg.declared() - OURS - set(ROSDEP_KEYS) - set(ROS_PACKAGES))
    assert not unknown, (f'{pkg.name}/package.xml names {unknown}: not a key in '
                         'requirements/colcon/rosdep-keys.yaml (rosdistro); use a real key, a '
                         '<pip_depend> or an <apt_depend>, then rerun scripts/rosdep_snapshot.py')
    for name in pkg.declared() & set(ROS_PACKAGES):
        assert TARGET_DISTROS <= set(ROS_PACKAGES[name]), (name, ROS_PACKAGES[name])


@BY_NAME
def test_every_import_of_the_modules_is_declared_for_run_time(pkg) -> None:
    modules, _ = python_files(pkg)
    missing = _undeclared(pkg, modules, pkg.declared(RUN_TAGS) | set(pkg.pip))
    assert not missing, f'{pkg.name}/package.xml does not declare: {missing}'


@BY_NAME
def test_every_import_of_the_tests_is_declared(pkg) -> None:
    _, tests = python_files(pkg)
    missing = _undeclared(pkg, tests, pkg.declared(DEPEND_TAGS) | set(pkg.pip))
    assert not missing, f'{pkg.name}/package.xml does not declare: {missing}'


def test_the_import_table_leads_to_rosdep_keys_or_declared_pip_packages() -> None:
    pip = set().union(*(p.pip for p in PACKAGES))
    stray = {name: dep for name, dep in IMPORTS.items()
             if dep not in ROSDEP_KEYS and dep not in pip}
    assert not stray, f'imports.yaml rows that lead nowhere: {stray}'


def test_the_pip_and_apt_lists_are_the_package_xml_exports() -> None:
    run = {n for p in PACKAGES for n, g in p.pip.items() if g == 'run'}
    dev = {n for p in PACKAGES for n, g in p.pip.items() if g == 'dev'} - run
    assert _listed(COLCON / 'pip.txt') == run
    assert _listed(COLCON / 'pip-dev.txt') == dev
    assert _listed(COLCON / 'apt.txt') == set().union(*(p.apt for p in PACKAGES))


def test_pip_dependencies_are_real_distributions_installed_in_this_venv() -> None:
    for name in set().union(*(p.pip for p in PACKAGES)):
        dist = re.sub(r'\[.*\]$', '', name)
        assert metadata.version(dist), name  # PackageNotFoundError for a made-up name


def test_the_snapshot_holds_only_rosdistro_files_and_keys_with_a_rosdep_shape() -> None:
    assert set(ROSDEP_KEYS.values()) <= {'rosdep/base.yaml', 'rosdep/python.yaml'}
    assert re.fullmatch(r'[0-9a-f]{40}', SNAPSHOT['rosdistro_commit'])
    assert not set(ROSDEP_KEYS) & set(ROS_PACKAGES)
