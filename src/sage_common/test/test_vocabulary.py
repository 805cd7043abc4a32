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
        if text.startswith(vocab.PREFIX) or text == vocab.Topic.DIAGNOSTICS \
                or text in STATE_WORDS:
            found.append(f'{path}:{node.lineno}: {text!r}')
    return found


def test_topic_and_state_names_are_spelled_only_in_the_vocabulary():
    bad = [v for p in modules() for v in violations(p)]
    assert not bad, 'use sage_common.vocabulary instead of:\n' + '\n'.join(bad)


@pytest.mark.parametrize('literal', ["'/sage/salience'", "'REST'", "f'/sage/{m}/latent'"])
def test_a_throwaway_literal_is_caught(tmp_path, literal):
    module = tmp_path / 'throwaway.py'
    module.write_text(f'TOPIC = {literal}\n')
    assert len(violations(module)) == 1


def test_the_vocabulary_matches_the_message_constants():
    for state in vocab.STATES:
        assert getattr(MetabolicState, state.value) == state.value
