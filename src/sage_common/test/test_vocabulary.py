"""One name, one place: topic names and metabolic state names live in sage_common.vocabulary.

Any other module of the SAGE packages that spells a topic ('/sage/...', '/diagnostics') or a
state name ('WAKE', 'rest', ...) as a string literal fails this test; the message definitions
in sage_interfaces stay the wire contract. Tests may spell them (they check the contract).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sage_common import vocabulary as vocab
from sage_interfaces.msg import MetabolicState

SRC = Path(__file__).resolve().parents[2]
HOME = Path(vocab.__file__).resolve()
STATE_WORDS = frozenset(vocab.STATE_NAMES) | frozenset(vocab.STATE_KEYS)


def modules() -> list[Path]:
    """Every Python module of the SAGE packages (tests excluded), and the launch files."""
    out = [p for p in SRC.glob('*/sage*/**/*.py') if '/test/' not in p.as_posix()]
    out += sorted((SRC.parent / 'launch').glob('*.py'))
    return sorted(p for p in out if p.resolve() != HOME)


def violations(path: Path) -> list[str]:
    """'file:line: literal' for each topic or state name written as a literal in path."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        text = node.value
        if text.startswith((vocab.PREFIX, vocab.absolute(vocab.PREFIX))) \
                or text in (vocab.Topic.DIAGNOSTICS, vocab.Topic.CLOCK) \
                or text in STATE_WORDS:
            found.append(f'{path}:{node.lineno}: {text!r}')
    return found


def test_topic_and_state_names_are_spelled_only_in_the_vocabulary():
    bad = [v for p in modules() for v in violations(p)]
    assert not bad, 'use sage_common.vocabulary instead of:\n' + '\n'.join(bad)


@pytest.mark.parametrize('literal', ["'/sage/salience'", "'sage/salience'", "'REST'",
                                     "f'/sage/{m}/latent'", "'/clock'"])
def test_a_throwaway_literal_is_caught(tmp_path, literal):
    module = tmp_path / 'throwaway.py'
    module.write_text(f'TOPIC = {literal}\n')
    assert len(violations(module)) == 1


def test_the_vocabulary_matches_the_message_constants():
    for state in vocab.STATES:
        assert getattr(MetabolicState, state.value) == state.value


def test_names_are_relative_so_a_namespace_moves_the_graph():
    names = [v for k, v in vars(vocab.Topic).items() if k.isupper()]
    names += [vocab.Topic.latent('vision'), vocab.Topic.encoder_input('audio')]
    absolute_ones = {vocab.Topic.DIAGNOSTICS, vocab.Topic.CLOCK}  # the ROS conventions
    assert all(n.startswith(vocab.PREFIX) for n in names if n not in absolute_ones)
    assert vocab.absolute(vocab.Topic.SALIENCE) == '/sage/salience'  # DESIGN.md's table
    assert vocab.absolute(vocab.Topic.SALIENCE, '/r1') == '/r1/sage/salience'
    assert vocab.absolute(vocab.Topic.SALIENCE, 'a/b/') == '/a/b/sage/salience'
    assert vocab.absolute(vocab.Topic.DIAGNOSTICS, '/r1') == '/diagnostics'
