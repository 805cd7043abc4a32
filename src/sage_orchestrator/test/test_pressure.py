"""Memory pressure: parsers on recorded files, cgroup discovery, the classifier's hysteresis."""
from __future__ import annotations

from pathlib import Path
import shutil

import pytest

from sage_orchestrator.errors import PressureReadError
from sage_orchestrator.pressure import (PressureClassifier, PressureConfig, PressurePaths,
                                        PressureSample, find_cgroup, parse_limit,
                                        parse_meminfo, parse_memory_stat, parse_psi,
                                        read_sample)

MB = 1024 * 1024


def test_psi_files_parse(fixtures):
    calm = parse_psi((fixtures / 'psi_calm.txt').read_text())
    assert calm.some_avg10 == 0.0 and calm.some_total == 1204 and calm.full_total == 817
    heavy = parse_psi((fixtures / 'psi_heavy.txt').read_text())
    assert (heavy.some_avg10, heavy.some_avg60, heavy.full_avg10) == (57.91, 31.40, 41.22)
    cg = parse_psi((fixtures / 'cgroup_v2' / 'memory.pressure').read_text())
    assert cg.some_avg10 == 2.2


def test_torn_or_foreign_psi_text_is_rejected(fixtures):
    with pytest.raises(PressureReadError):
        parse_psi((fixtures / 'psi_truncated.txt').read_text())
    with pytest.raises(PressureReadError):
        parse_psi('cpu stuff\n')


def test_meminfo_parses_in_kb(fixtures):
    info = parse_meminfo((fixtures / 'meminfo_8gb_low.txt').read_text())
    assert info['MemTotal'] == 7802008 and info['MemAvailable'] == 1024000
    assert info['HugePages_Total'] == 0
    with pytest.raises(PressureReadError):
        parse_meminfo('')


def test_cgroup_limits_parse_for_v1_and_v2(fixtures):
    assert parse_limit((fixtures / 'cgroup_v2' / 'memory.max').read_text()) == 4 * 1024 * MB
    assert parse_limit((fixtures / 'cgroup_v2' / 'memory.max.unlimited').read_text()) is None
    assert parse_limit((fixtures / 'cgroup_v1' / 'memory.limit_in_bytes.unlimited')
                       .read_text()) is None
    with pytest.raises(PressureReadError):
        parse_limit('lots')
    stat = parse_memory_stat((fixtures / 'cgroup_v1' / 'memory.stat').read_text())
    assert stat['total_inactive_file'] == 125829120


def test_cgroup_is_found_from_proc_self_cgroup(tmp_path, fixtures):
    v2 = tmp_path / 'system.slice' / 'sage-orchestrator.service'
    v2.mkdir(parents=True)
    (v2 / 'memory.current').write_text('1\n')
    found = find_cgroup((fixtures / 'proc_self_cgroup_v2.txt').read_text(), tmp_path)
    assert found is not None and found.path == v2 and found.version == 2
    v1 = tmp_path / 'memory' / 'docker' / '3f1c9a2b7e' / 'sage'
    v1.mkdir(parents=True)
    (v1 / 'memory.usage_in_bytes').write_text('1\n')
    found = find_cgroup((fixtures / 'proc_self_cgroup_v1.txt').read_text(), tmp_path)
    assert found is not None and found.path == v1 and found.version == 1
    assert find_cgroup('garbage', tmp_path) is None


def test_a_v2_sample_reads_psi_meminfo_and_the_cgroup_working_set(tmp_path, fixtures,
                                                                  make_proc):
    proc = make_proc(tmp_path / 'proc', 'psi_calm.txt', 'meminfo_8gb_ok.txt')
    cg = tmp_path / 'cg'
    shutil.copytree(fixtures / 'cgroup_v2', cg)
    s = read_sample(PressurePaths(str(proc), str(cg)))
    assert s.errors == ()
    assert s.mem_available_mb == pytest.approx(5200.0)
    assert s.mem_total_mb == pytest.approx(7802008 / 1024)
    assert s.psi_some_avg10 == 2.2  # the cgroup's PSI is worse than the system's
    assert s.cgroup_limit_mb == pytest.approx(4096.0)
    assert s.cgroup_usage_mb == pytest.approx((3925868544 - 104857600) / MB)
    assert s.cgroup_fraction == pytest.approx(0.8896, abs=1e-3)


def test_a_v1_sample_walks_up_to_the_limited_ancestor(tmp_path, fixtures, make_proc):
    proc = make_proc(tmp_path / 'proc', 'psi_moderate.txt', 'meminfo_8gb_ok.txt')
    (proc / 'self').mkdir()
    shutil.copyfile(fixtures / 'proc_self_cgroup_v1.txt', proc / 'self' / 'cgroup')
    root = tmp_path / 'sys'
    parent = root / 'memory' / 'docker' / '3f1c9a2b7e'
    shutil.copytree(fixtures / 'cgroup_v1', parent)
    child = parent / 'sage'
    child.mkdir()
    shutil.copyfile(fixtures / 'cgroup_v1' / 'memory.limit_in_bytes.unlimited',
                    child / 'memory.limit_in_bytes')
    (child / 'memory.usage_in_bytes').write_text('1000\n')
    s = read_sample(PressurePaths(str(proc), 'auto', str(root)))
    assert s.errors == ()
    assert s.psi_some_avg10 == 14.52
    assert s.cgroup_limit_mb == pytest.approx(2048.0)
    assert s.cgroup_usage_mb == pytest.approx((1395864371 - 125829120) / MB)


def test_unreadable_files_are_reported_not_raised(tmp_path, fixtures):
    proc = tmp_path / 'proc'
    (proc / 'pressure').mkdir(parents=True)
    shutil.copyfile(fixtures / 'psi_truncated.txt', proc / 'pressure' / 'memory')
    shutil.copyfile(fixtures / 'meminfo_no_available.txt', proc / 'meminfo')
    s = read_sample(PressurePaths(str(proc), str(tmp_path / 'no_cgroup')))
    assert s.psi_some_avg10 is None and s.mem_available_mb is None
    assert s.mem_total_mb == pytest.approx(7802008 / 1024)
    assert len(s.errors) == 3 and any('MemAvailable' in e for e in s.errors)
    empty = read_sample(PressurePaths(str(tmp_path / 'nothing'), 'none'))
    assert len(empty.errors) == 2 and empty.cgroup_fraction is None


def sample_of(fixtures: Path, psi: str, meminfo: str) -> PressureSample:
    return PressureSample(psi_some_avg10=parse_psi((fixtures / psi).read_text()).some_avg10,
                          mem_available_mb=parse_meminfo((fixtures / meminfo).read_text())
                          ['MemAvailable'] / 1024.0)


def test_classifier_rises_at_once_and_falls_with_hysteresis_and_hold(fixtures):
    c = PressureClassifier(PressureConfig(hold_s=5.0))
    assert not c.update(sample_of(fixtures, 'psi_calm.txt', 'meminfo_8gb_ok.txt'), 0.0)
    assert c.name == 'green'
    assert c.update(sample_of(fixtures, 'psi_moderate.txt', 'meminfo_8gb_ok.txt'), 1.0)
    assert c.name == 'yellow' and 'PSI' in c.reason
    assert c.update(sample_of(fixtures, 'psi_moderate.txt', 'meminfo_8gb_critical.txt'), 2.0)
    assert c.name == 'red' and 'MemAvailable' in c.reason
    # PSI 35 % is under red's 40 % but not by the 20 % margin: stays red.
    assert not c.update(PressureSample(psi_some_avg10=35.0, mem_available_mb=1000.0), 3.0)
    # Clearly out of red now (9.1 % < 32 %, 1000 MB > 600 MB), but only after hold_s.
    assert not c.update(sample_of(fixtures, 'psi_easing.txt', 'meminfo_8gb_low.txt'), 4.0)
    assert not c.update(sample_of(fixtures, 'psi_easing.txt', 'meminfo_8gb_low.txt'), 8.0)
    assert c.update(sample_of(fixtures, 'psi_easing.txt', 'meminfo_8gb_low.txt'), 9.0)
    assert c.name == 'yellow'
    # 1300 MB is above yellow's 1200 MB but not by the 20 % margin: stays yellow.
    assert not c.update(sample_of(fixtures, 'psi_calm.txt', 'meminfo_8gb_recovering.txt'), 30)
    assert not c.update(sample_of(fixtures, 'psi_calm.txt', 'meminfo_8gb_recovering.txt'), 60)
    assert c.name == 'yellow'
    assert not c.update(sample_of(fixtures, 'psi_calm.txt', 'meminfo_8gb_recovered.txt'), 61)
    assert c.update(sample_of(fixtures, 'psi_calm.txt', 'meminfo_8gb_recovered.txt'), 66)
    assert c.name == 'green'


def test_a_spike_during_the_hold_restarts_it(fixtures):
    c = PressureClassifier(PressureConfig(hold_s=5.0))
    c.update(sample_of(fixtures, 'psi_moderate.txt', 'meminfo_8gb_ok.txt'), 0.0)
    c.update(sample_of(fixtures, 'psi_calm.txt', 'meminfo_8gb_ok.txt'), 1.0)
    c.update(sample_of(fixtures, 'psi_moderate.txt', 'meminfo_8gb_ok.txt'), 4.0)
    assert not c.update(sample_of(fixtures, 'psi_calm.txt', 'meminfo_8gb_ok.txt'), 6.5)
    assert c.update(sample_of(fixtures, 'psi_calm.txt', 'meminfo_8gb_ok.txt'), 11.5)


def test_no_readings_keep_the_level():
    c = PressureClassifier(PressureConfig())
    c.update(PressureSample(psi_some_avg10=50.0), 0.0)
    assert not c.update(PressureSample(errors=('cannot read',)), 100.0)
    assert c.name == 'red'


def test_cgroup_fraction_drives_the_level():
    c = PressureClassifier(PressureConfig())
    assert c.update(PressureSample(cgroup_limit_mb=1000.0, cgroup_usage_mb=960.0), 0.0)
    assert c.name == 'red' and 'cgroup 96%' in c.reason
