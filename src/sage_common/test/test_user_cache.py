"""The user cache root: $XDG_CACHE_HOME/sage when set, else ~/.cache/sage."""
from __future__ import annotations

from pathlib import Path

from sage_common.user_cache import cache_dir


def test_the_cache_follows_xdg_cache_home_and_falls_back_to_home(monkeypatch, tmp_path):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert cache_dir('encoded') == tmp_path / 'xdg' / 'sage' / 'encoded'
    monkeypatch.setenv('XDG_CACHE_HOME', '')   # an empty variable is not a setting
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert cache_dir('trt') == Path(tmp_path, 'home', '.cache', 'sage', 'trt')
    assert not cache_dir('trt').exists()       # naming a folder does not create it
