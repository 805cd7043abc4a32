"""What each workspace package declares in its package.xml and what its Python files import.

Pure (stdlib only): read by the dependency test and by scripts/rosdep_snapshot.py. Besides the
standard <*depend> tags, a package.xml may hold, inside <export>:

    <pip_depend group="run|dev">NAME</pip_depend>   a PyPI package that has no rosdep key
    <apt_depend>NAME</apt_depend>                    a Debian package that has no rosdep key

`group="dev"` marks tools (training, the MiniLM export, some tests) that a robot does not need.
requirements/colcon/ lists them for `pip install -r` and `apt-get install`.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
import sys
import xml.etree.ElementTree as ET

DEPEND_TAGS = ('depend', 'build_depend', 'buildtool_depend', 'build_export_depend',
               'exec_depend', 'test_depend')
# Tags whose dependencies are there when the package's modules run.
RUN_TAGS = ('depend', 'exec_depend')
PIP_GROUPS = ('run', 'dev')


class PackageXmlError(ValueError):
    """A package.xml cannot be read or breaks the conventions above."""


@dataclass
class Package:
    """One workspace package: its folder and what its package.xml declares."""

    name: str
    path: Path
    depends: dict[str, set[str]] = field(default_factory=dict)  # tag -> names
    pip: dict[str, str] = field(default_factory=dict)  # pip name -> group
    apt: set[str] = field(default_factory=set)

    def declared(self, tags: tuple[str, ...] = DEPEND_TAGS) -> set[str]:
        """Names under the given tags."""
        return set().union(*(self.depends.get(t, set()) for t in tags))


def read_package(xml_path: Path) -> Package:
    """Parse one package.xml.

    Raises:
        PackageXmlError: unreadable XML, no <name>, or a bad <pip_depend> group.
    """
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as err:
        raise PackageXmlError(f'cannot read {xml_path}: {err}') from err
    name = (root.findtext('name') or '').strip()
    if not name:
        raise PackageXmlError(f'{xml_path}: no <name>')
    pkg = Package(name=name, path=xml_path.parent)
    for tag in DEPEND_TAGS:
        pkg.depends[tag] = {(e.text or '').strip() for e in root.findall(tag)}
    for e in root.findall('export/pip_depend'):
        group = e.get('group', 'run')
        if group not in PIP_GROUPS:
            raise PackageXmlError(f"{xml_path}: pip_depend {e.text!r} has group '{group}' "
                                  f"(known: {', '.join(PIP_GROUPS)})")
        pkg.pip[(e.text or '').strip()] = group
    pkg.apt = {(e.text or '').strip() for e in root.findall('export/apt_depend')}
    return pkg


def workspace_packages(src: Path) -> list[Package]:
    """Every package under src/ (one level deep), sorted by name."""
    return sorted((read_package(p) for p in Path(src).glob('*/package.xml')),
                  key=lambda p: p.name)


def python_files(pkg: Package) -> tuple[list[Path], list[Path]]:
    """(module files, test files) of a package; setup.py and build output are neither."""
    modules, tests = [], []
    for path in sorted(pkg.path.rglob('*.py')):
        rel = path.relative_to(pkg.path)
        if rel.parts[0] in ('build', 'install', 'log') or rel.as_posix() == 'setup.py':
            continue
        (tests if rel.parts[0] == 'test' else modules).append(path)
    return modules, tests


def imported_names(files: list[Path]) -> dict[str, list[str]]:
    """Top-level names of the absolute imports in files (stdlib left out) -> where.

    Every import counts, also those inside functions or try blocks: a lazy import still
    needs its package installed when that code runs.
    """
    found: dict[str, list[str]] = {}
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split('.')[0]
                if top not in sys.stdlib_module_names:
                    found.setdefault(top, []).append(f'{path.name}:{node.lineno}')
    return found
