"""Shared pytest fixtures: a distinct ROS_DOMAIN_ID per test that talks DDS."""
from __future__ import annotations

import itertools
import os

import pytest

_BASE = int(os.environ.get('SAGE_TEST_DOMAIN_BASE', str(20 + os.getpid() % 150)))
_counter = itertools.count()


@pytest.fixture
def ros_domain(monkeypatch) -> int:
    """A domain id no other test of this run uses (within 0..232), set in the environment."""
    domain = 1 + (_BASE + next(_counter)) % 230
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return domain


@pytest.fixture
def unwritable():
    """make(folder) -> command prefix; processes started with it cannot write folder or its files.

    Tests run as root, whom permissions do not stop: there the files are given to `nobody`
    and children run as root without the capabilities that override file permissions
    (setpriv), so the kernel really refuses writes. Other users: the write bits are removed.
    """
    import pwd
    import shutil
    import stat
    from pathlib import Path

    restore: list[tuple[Path, int]] = []

    def make(folder: Path) -> list[str]:
        paths = [folder, *sorted(folder.rglob('*'))]
        if os.geteuid() == 0:
            setpriv = shutil.which('setpriv')
            if setpriv is None:
                pytest.skip('setpriv (util-linux) is needed to drop root\'s file capabilities')
            try:
                owner = pwd.getpwnam('nobody')
                uid, gid = owner.pw_uid, owner.pw_gid
            except KeyError:
                uid = gid = 65534
            for p in paths:
                os.chown(p, uid, gid)
                os.chmod(p, 0o755 if p.is_dir() else 0o644)
            return [setpriv, '--bounding-set=-dac_override,-dac_read_search,-fowner']
        for p in paths:
            mode = stat.S_IMODE(p.stat().st_mode)
            restore.append((p, mode))
            os.chmod(p, mode & ~0o222)
        return []

    yield make
    for p, mode in reversed(restore):  # let pytest remove its temporary folders
        os.chmod(p, mode)
