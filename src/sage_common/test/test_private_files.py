"""Private files: created 0700/0600 whatever the umask, wider ones tightened with a warning."""
from __future__ import annotations

import os
from pathlib import Path
import stat

import pytest

from sage_common.private_files import create_private, private_dir, private_files, private_tree


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture(autouse=True)
def open_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_missing_folders_are_created_0700_down_to_the_leaf(tmp_path):
    target = tmp_path / 'a' / 'b' / 'c'
    assert private_dir(target) == []
    assert [mode(p) for p in (tmp_path / 'a', tmp_path / 'a' / 'b', target)] == [0o700] * 3


def test_an_existing_wide_folder_is_tightened_only_when_it_is_ours(tmp_path):
    ours, theirs = tmp_path / 'ours', tmp_path / 'theirs'
    for p in (ours, theirs):
        p.mkdir()
        os.chmod(p, 0o755)
    warnings = private_dir(ours)
    assert mode(ours) == 0o700 and warnings == [
        f'{ours} was accessible to other users (mode 755); now 700']
    assert private_dir(theirs, fix_existing=False) == [] and mode(theirs) == 0o755


def test_a_tree_is_tightened_but_owner_bits_and_symlinks_are_kept(tmp_path):
    os.chmod(tmp_path, 0o755)
    (tmp_path / 'sub').mkdir()
    exe = tmp_path / 'sub' / 'tool'
    exe.write_text('x')
    os.chmod(exe, 0o755)
    outside = tmp_path.parent / f'{tmp_path.name}-outside'
    outside.write_text('y')
    os.chmod(outside, 0o644)
    (tmp_path / 'link').symlink_to(outside)
    try:
        warnings = private_tree(tmp_path)
        assert mode(exe) == 0o700 and mode(tmp_path / 'sub') == 0o700
        assert mode(outside) == 0o644  # a link's target is not part of the tree
        assert len(warnings) == 3  # the root, sub, tool
    finally:
        outside.unlink()


def test_create_private_makes_0600_and_tightens_an_existing_file(tmp_path):
    new = tmp_path / 'new.bin'
    os.close(create_private(new))
    assert mode(new) == 0o600
    old = tmp_path / 'old.bin'
    old.write_text('secret')
    os.chmod(old, 0o644)
    with os.fdopen(create_private(old), 'w') as fh:
        fh.write('new')
    assert mode(old) == 0o600 and old.read_text() == 'new'
    assert private_files([tmp_path / 'missing']) == []
