"""Import rules the layer contract cannot see (issue 50; the layers and the cycles are
pyproject.toml's import-linter contract, run by `lint-imports` in scripts/test.sh).

(a) No module imports another module's private name (a leading underscore, dunders aside), or
    reaches it as an attribute (`module._name`, a patch target 'pkg.module._name'): a name that
    another module needs is part of its module's interface, so it is public. A private module
    (`sage_cuda_mailbox._mailbox`, the compiled core behind its package's facade) may be
    imported inside its own package folder, tests included; import-linter's "private modules"
    contract keeps the other packages out.
(b) An import inside a function body says why it is not at the top: a comment with the word
    "lazy" on its line or right above it (one comment above a run of consecutive imports serves
    them all), or a module-level comment line with the word "lazy" stating the rule for every
    import in the module (the CLI verbs: `sage --help` loads none of them). A function-local
    import keeps an optional heavy dependency (rclpy and ROS messages, torch, onnxruntime, cv2,
    SQLAlchemy, faiss, tokenizers, matplotlib, scipy, rosbags...) out of a module's import, or
    meets a real load-order need; every other import is at the top, where the dependency graph
    can be read.

Every Python file under src/*/sage*/ and src/*/test/ and the root conftest.py is scanned.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
import io
from pathlib import Path
import re
import tokenize

import pytest

ROOT = Path(__file__).resolve().parents[3]
LAZY = re.compile(r'\blazy\b', re.IGNORECASE)
DOTTED = re.compile(r'^sage\w*(\.\w+)+$')


def python_files() -> list[Path]:
    files = {p for pattern in ('src/*/sage*/**/*.py', 'src/*/test/**/*.py')
             for p in ROOT.glob(pattern)}
    return sorted(files) + [ROOT / 'conftest.py']


def module_index() -> dict[str, str]:
    """Every first-party module (dotted name, stubs of compiled ones included) -> the source
    folder of its package (src/<package>/)."""
    out = {}
    for path in ROOT.glob('src/*/sage*/**/*.py*'):
        if path.suffix not in ('.py', '.pyi'):
            continue
        rel = path.relative_to(ROOT)
        name = '.'.join(Path(*rel.parts[2:]).with_suffix('').parts).removesuffix('.__init__')
        out[name] = '/'.join(rel.parts[:2]) + '/'
    return out


def _private(name: str) -> bool:
    return name.startswith('_') and not (name.startswith('__') and name.endswith('__'))


def _private_use(dotted: str, home: str, modules: dict[str, str]) -> str | None:
    """The private part of a dotted path into first-party code used from folder `home`, if any
    (a private module inside its own package folder is allowed)."""
    parts = dotted.split('.')
    for i in range(1, len(parts)):
        name = '.'.join(parts[:i + 1])
        if not _private(parts[i]) or '.'.join(parts[:i]) not in modules:
            continue
        if name in modules and modules[name] == home:
            continue
        return name
    return None


def private_name_uses(source: str, path: str, modules: dict[str, str]) -> list[str]:
    """Rule (a) for one file: `line: what` for every private name of another module it uses."""
    home = '/'.join(path.split('/')[:2]) + '/'
    tree = ast.parse(source)
    found = []
    aliases: dict[str, str] = {}  # name bound in this file -> first-party module it is
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level \
                and node.module.split('.')[0].startswith('sage'):
            for a in node.names:
                full = f'{node.module}.{a.name}'
                if (bad := _private_use(full, home, modules)) is not None:
                    found.append(f'{node.lineno}: from {node.module} import {a.name} ({bad})')
                if full in modules:
                    aliases[a.asname or a.name] = full
        elif isinstance(node, ast.Import):
            for a in node.names:
                if not a.name.split('.')[0].startswith('sage'):
                    continue
                if (bad := _private_use(a.name, home, modules)) is not None:
                    found.append(f'{node.lineno}: import {a.name} ({bad})')
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    top = a.name.split('.')[0]
                    aliases[top] = top
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            chain, base = [], node
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases:
                dotted = '.'.join([aliases[base.id], *reversed(chain)])
                if (bad := _private_use(dotted, home, modules)) is not None:
                    found.append(f'{node.lineno}: {ast.unparse(node)} ({bad})')
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and DOTTED.match(node.value):
            if (bad := _private_use(node.value, home, modules)) is not None:
                found.append(f'{node.lineno}: {node.value!r} ({bad})')
    return sorted(set(found), key=lambda s: int(s.split(':')[0]))


def _comments(source: str) -> dict[int, str]:
    """Comment text by line number."""
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string
    return out


def _function_imports(tree: ast.AST) -> Iterator[tuple[ast.stmt, list[ast.stmt]]]:
    """(import, the statement list it sits in) for every import inside a function body."""
    def visit(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.stmt, list[ast.stmt]]]:
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for field in ('body', 'orelse', 'finalbody', 'handlers'):
            block = getattr(node, field, None)
            if not isinstance(block, list):
                continue
            for child in block:
                if inside and isinstance(child, (ast.Import, ast.ImportFrom)):
                    yield child, block
                yield from visit(child, inside)
        for case in getattr(node, 'cases', []):  # match statements
            yield from visit(case, inside)
    yield from visit(tree, False)


def unmarked_function_imports(source: str) -> list[str]:
    """Rule (b) for one file: `line: import` for every function-local import without its
    "lazy" comment (none when a module-level comment line states the rule)."""
    lines = source.splitlines()
    if any(line.startswith('#') and LAZY.search(line) for line in lines):
        return []
    comments = _comments(source)
    found = []
    for node, block in _function_imports(ast.parse(source)):
        first = node
        k = block.index(node)
        while k > 0 and isinstance(block[k - 1], (ast.Import, ast.ImportFrom)) \
                and block[k - 1].end_lineno == first.lineno - 1:
            k -= 1
            first = block[k]
        marked = any(LAZY.search(comments.get(n, ''))
                     for n in range(node.lineno, node.end_lineno + 1))
        above = first.lineno - 1
        while not marked and above in comments and lines[above - 1].lstrip().startswith('#'):
            marked = bool(LAZY.search(comments[above]))
            above -= 1
        if not marked:
            found.append(f'{node.lineno}: {ast.unparse(node)}')
    return found


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_no_module_uses_another_modules_private_names():
    modules = module_index()
    bad = {_rel(p): uses for p in python_files()
           if (uses := private_name_uses(p.read_text(), _rel(p), modules))}
    assert not bad, 'private names used across modules (make them public or move them):\n' + \
        '\n'.join(f'{path}:{use}' for path, uses in bad.items() for use in uses)


def test_every_function_local_import_says_why():
    bad = {_rel(p): found for p in python_files()
           if (found := unmarked_function_imports(p.read_text()))}
    assert not bad, ('function-local imports without a "lazy" comment (move them to the top, '
                     'or say which heavy dependency or load order keeps them here):\n' +
                     '\n'.join(f'{path}:{imp}' for path, items in bad.items() for imp in items))


# The checkers themselves, on small sources: each rule catches what it is for.

MODULES = {'sage_a': 'src/sage_a/', 'sage_a.mod': 'src/sage_a/', 'sage_a._core': 'src/sage_a/',
           'sage_b.other': 'src/sage_b/'}


@pytest.mark.parametrize('source, expected', [
    ('from sage_a.mod import _helper', ['1: from sage_a.mod import _helper (sage_a.mod._helper)']),
    ('from sage_a.mod import helper, _RANK as RANK', ['1: from sage_a.mod import _RANK']),
    ('from sage_a import mod\nmod._helper()', ['2: mod._helper (sage_a.mod._helper)']),
    ('import sage_a.mod\nsage_a.mod._x = 1', ['2: sage_a.mod._x (sage_a.mod._x)']),
    ("patch('sage_a.mod._Thing.run')", ["1: 'sage_a.mod._Thing.run' (sage_a.mod._Thing)"]),
    ('from sage_a import _core', ['1: from sage_a import _core (sage_a._core)']),
    ('from sage_a.mod import helper\nfrom os import _exit\nx._y', []),
    ('from sage_a.mod import __version__', []),
])
def test_private_names_from_another_package_are_found(source, expected):
    found = private_name_uses(source, 'src/sage_b/sage_b/x.py', MODULES)
    assert [f.split(' (')[0] for f in found] == [e.split(' (')[0] for e in expected]


def test_a_private_module_may_be_imported_inside_its_own_package_folder():
    source = 'from sage_a import _core\nfrom sage_a._core import Thing\n'
    assert private_name_uses(source, 'src/sage_a/test/test_core.py', MODULES) == []
    assert private_name_uses(source, 'src/sage_b/sage_b/x.py', MODULES) != []


@pytest.mark.parametrize('source, unmarked', [
    ('def f():\n    import json\n', [2]),
    ('def f():\n    # parses the reply\n    import json\n', [3]),
    ('def f():\n    import json  # lazy: rarely used\n', []),
    ('def f():\n    # lazy: rclpy only where ROS is\n    import rclpy\n    from rclpy.node import'
     ' Node\n', []),
    ('def f():\n    # lazy: torch\n    import torch\n\n    import json\n', [5]),
    ('class C:\n    def m(self):\n        if x:\n            import json\n', [4]),
    ('def f():\n    try:\n        import json\n    except ImportError:\n        pass\n', [3]),
    ('# Lazy imports inside each command: `sage --help` loads none of them.\n'
     'def f():\n    import json\n', []),
    ('import json\n\n\ndef f():\n    return json\n', []),
])
def test_function_local_imports_without_a_lazy_comment_are_found(source, unmarked):
    assert [int(f.split(':')[0]) for f in unmarked_function_imports(source)] == unmarked
