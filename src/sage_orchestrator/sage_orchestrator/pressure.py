"""Memory pressure: parse Linux PSI, /proc/meminfo and the memory cgroup; classify with hysteresis.

Readings (`read_sample`, the only function here that touches files; it never raises):

- PSI: ``some avg10`` of /proc/pressure/memory (percent of the last 10 s in which at least one
  task stalled on memory), and of the cgroup's memory.pressure (cgroup v2); the larger is used.
- MemAvailable from /proc/meminfo, in MB.
- The memory cgroup of this process (found through /proc/self/cgroup, v2 or v1): working set
  (memory.current minus inactive_file, as the kubelet counts it; v1 memory.usage_in_bytes
  minus total_inactive_file) divided by the limit (memory.max / memory.limit_in_bytes). The
  tightest limited ancestor counts. No limit means no cgroup reading.

Classification (`PressureClassifier`): each available reading maps to green/yellow/red by its
enter thresholds (PSI and cgroup fraction: at or above; MemAvailable: at or below); the level
is the worst. It rises at once. It falls only when every reading has been clear of the current
level's thresholds by the hysteresis margin (thresholds times 1 - hysteresis, MemAvailable times
1 + hysteresis) for `hold_s` seconds, and then to the level those relaxed thresholds give. With
no readable metric the level is kept.
"""
from __future__ import annotations

from dataclasses import dataclass
import math
from pathlib import Path

from sage_orchestrator.errors import PressureReadError

LEVELS = ('green', 'yellow', 'red')
# cgroup v1 reports "no limit" as PAGE_COUNTER_MAX rounded to pages (~2^63); anything above
# 2^60 bytes is treated as unlimited.
_V1_UNLIMITED = 1 << 60
_MB = 1024.0 * 1024.0


@dataclass(frozen=True)
class Psi:
    """One PSI resource file: 'some' and 'full' lines (avg in percent, total in us)."""

    some_avg10: float
    some_avg60: float
    some_avg300: float
    some_total: int
    full_avg10: float | None = None
    full_avg60: float | None = None
    full_avg300: float | None = None
    full_total: int | None = None


def parse_psi(text: str) -> Psi:
    """Parse /proc/pressure/memory or a cgroup memory.pressure file.

    Raises:
        PressureReadError: the 'some' line is missing or a field does not parse.
    """
    lines: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] in ('some', 'full'):
            fields = dict(p.split('=', 1) for p in parts[1:] if '=' in p)
            lines[parts[0]] = fields
    if 'some' not in lines:
        raise PressureReadError(f'PSI text has no "some" line: {text[:80]!r}')
    try:
        some = lines['some']
        full = lines.get('full')
        values = [float(some['avg10']), float(some['avg60']), float(some['avg300'])]
        if not all(math.isfinite(v) and v >= 0.0 for v in values):
            raise ValueError(values)
        return Psi(values[0], values[1], values[2], int(some['total']),
                   float(full['avg10']) if full else None,
                   float(full['avg60']) if full else None,
                   float(full['avg300']) if full else None,
                   int(full['total']) if full else None)
    except (KeyError, ValueError) as err:
        raise PressureReadError(f'PSI text does not parse: {text[:80]!r}') from err


def parse_meminfo(text: str) -> dict[str, int]:
    """Parse /proc/meminfo into name -> kB (or a count for fields without a unit).

    Raises:
        PressureReadError: no field parses.
    """
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(':')
        parts = rest.split()
        if sep and parts:
            try:
                out[name.strip()] = int(parts[0])
            except ValueError:
                continue
    if not out:
        raise PressureReadError(f'meminfo does not parse: {text[:80]!r}')
    return out


def parse_limit(text: str) -> int | None:
    """Parse memory.max ('max' or bytes) or memory.limit_in_bytes; None = unlimited.

    Raises:
        PressureReadError: the text is neither 'max' nor a non-negative integer.
    """
    s = text.strip()
    if s == 'max':
        return None
    try:
        value = int(s)
    except ValueError as err:
        raise PressureReadError(f'memory limit does not parse: {s[:40]!r}') from err
    if value < 0:
        raise PressureReadError(f'negative memory limit {value}')
    return None if value >= _V1_UNLIMITED else value


def parse_bytes(text: str) -> int:
    """Parse memory.current / memory.usage_in_bytes.

    Raises:
        PressureReadError: not a non-negative integer.
    """
    try:
        value = int(text.strip())
    except ValueError as err:
        raise PressureReadError(f'memory usage does not parse: {text[:40]!r}') from err
    if value < 0:
        raise PressureReadError(f'negative memory usage {value}')
    return value


def parse_memory_stat(text: str) -> dict[str, int]:
    """Parse a cgroup memory.stat file ('name value' per line); bad lines are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


@dataclass(frozen=True)
class CgroupDir:
    """A memory cgroup directory and its interface version (1 or 2)."""

    path: Path
    version: int


def find_cgroup(proc_self_cgroup: str, cgroup_root: Path) -> CgroupDir | None:
    """Locate this process's memory cgroup from the text of /proc/self/cgroup.

    v2 ('0::/path') is preferred when its directory has memory.current; otherwise the v1
    memory controller ('N:...memory...:/path' under <root>/memory). None when neither exists.
    """
    v2 = v1 = None
    for line in proc_self_cgroup.splitlines():
        parts = line.split(':', 2)
        if len(parts) != 3:
            continue
        rel = parts[2].lstrip('/')
        if parts[0] == '0' and parts[1] == '':
            for base in (cgroup_root, cgroup_root / 'unified'):
                if (base / rel / 'memory.current').exists():
                    v2 = CgroupDir(base / rel, 2)
                    break
        elif 'memory' in parts[1].split(','):
            if (cgroup_root / 'memory' / rel / 'memory.usage_in_bytes').exists():
                v1 = CgroupDir(cgroup_root / 'memory' / rel, 1)
    return v2 or v1


@dataclass(frozen=True)
class PressureSample:
    """One set of readings; None where a reading is unavailable (see `errors`)."""

    psi_some_avg10: float | None = None
    psi_full_avg10: float | None = None
    mem_total_mb: float | None = None
    mem_available_mb: float | None = None
    cgroup_limit_mb: float | None = None
    cgroup_usage_mb: float | None = None
    errors: tuple[str, ...] = ()

    @property
    def cgroup_fraction(self) -> float | None:
        """Working set over limit of the tightest limited cgroup, or None."""
        if self.cgroup_limit_mb is None or self.cgroup_usage_mb is None:
            return None
        return self.cgroup_usage_mb / max(self.cgroup_limit_mb, 1e-9)


@dataclass(frozen=True)
class PressurePaths:
    """Where to read. cgroup_dir: 'auto' (from /proc/self/cgroup), 'none', or a directory."""

    proc_root: str = '/proc'
    cgroup_dir: str = 'auto'
    cgroup_root: str = '/sys/fs/cgroup'


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as err:
        raise PressureReadError(f'cannot read {path}: {err.strerror or err}') from err


def _cgroup_reading(cg: CgroupDir, top: Path) -> tuple[float, float, float | None]:
    """(limit_mb, working_set_mb, cgroup psi) of the tightest limited level up to `top`."""
    names = (('memory.max', 'memory.current', 'inactive_file') if cg.version == 2 else
             ('memory.limit_in_bytes', 'memory.usage_in_bytes', 'total_inactive_file'))
    psi = None
    if cg.version == 2 and (cg.path / 'memory.pressure').exists():
        psi = parse_psi(_read(cg.path / 'memory.pressure')).some_avg10
    best: tuple[float, float] | None = None
    path = cg.path
    for _ in range(32):
        limit_file = path / names[0]
        if limit_file.exists():
            limit = parse_limit(_read(limit_file))
            if limit is not None:
                usage = parse_bytes(_read(path / names[1]))
                stat_file = path / 'memory.stat'
                inactive = 0
                if stat_file.exists():
                    inactive = parse_memory_stat(_read(stat_file)).get(names[2], 0)
                ws = max(0, usage - inactive)
                if best is None or ws / max(limit, 1) > best[1] / max(best[0], 1e-9):
                    best = (limit / _MB, ws / _MB)
        if path == top or top not in path.parents:
            break
        path = path.parent
    if best is None:
        raise PressureReadError(f'no memory limit on {cg.path} or its parents')
    return best[0], best[1], psi


def read_sample(paths: PressurePaths) -> PressureSample:
    """Read PSI, meminfo and the cgroup; unreadable parts are listed in `errors`."""
    errors: list[str] = []
    proc = Path(paths.proc_root)
    psi_some = psi_full = None
    try:
        psi = parse_psi(_read(proc / 'pressure' / 'memory'))
        psi_some, psi_full = psi.some_avg10, psi.full_avg10
    except PressureReadError as err:
        errors.append(str(err))
    total = avail = None
    try:
        info = parse_meminfo(_read(proc / 'meminfo'))
        if 'MemAvailable' in info:
            avail = info['MemAvailable'] / 1024.0
        else:
            errors.append('meminfo has no MemAvailable')
        total = info['MemTotal'] / 1024.0 if 'MemTotal' in info else None
    except PressureReadError as err:
        errors.append(str(err))
    limit = usage = None
    if paths.cgroup_dir != 'none':
        root = Path(paths.cgroup_root)
        try:
            if paths.cgroup_dir == 'auto':
                cg = find_cgroup(_read(proc / 'self' / 'cgroup'), root)
                top = root if cg is None or cg.version == 2 else root / 'memory'
            else:
                top = Path(paths.cgroup_dir)
                if not top.is_dir():
                    raise PressureReadError(f'cgroup directory {top} does not exist')
                cg = CgroupDir(top, 2 if (top / 'memory.max').exists() else 1)
            if cg is not None:
                limit, usage, cg_psi = _cgroup_reading(cg, top)
                if cg_psi is not None:
                    psi_some = cg_psi if psi_some is None else max(psi_some, cg_psi)
        except PressureReadError as err:
            if 'no memory limit' not in str(err):
                errors.append(str(err))
    return PressureSample(psi_some, psi_full, total, avail, limit, usage, tuple(errors))


@dataclass(frozen=True)
class PressureConfig:
    """Thresholds (pressure.* in the profile; SAGE_PRESSURE_* environment overrides)."""

    yellow_psi: float = 10.0
    red_psi: float = 40.0
    yellow_available_mb: float = 1200.0
    red_available_mb: float = 500.0
    yellow_cgroup: float = 0.85
    red_cgroup: float = 0.95
    hysteresis: float = 0.2
    hold_s: float = 10.0


def _levels(s: PressureSample, c: PressureConfig, relax: float) -> list[tuple[int, str]]:
    """(level, reason) per available reading; thresholds relaxed by `relax` (0 = enter)."""
    out = []
    hi, lo = 1.0 - relax, 1.0 + relax
    if s.psi_some_avg10 is not None:
        v = s.psi_some_avg10
        lvl = 2 if v >= c.red_psi * hi else 1 if v >= c.yellow_psi * hi else 0
        out.append((lvl, f'PSI some avg10 {v:.1f}%'))
    if s.mem_available_mb is not None:
        v = s.mem_available_mb
        lvl = (2 if v <= c.red_available_mb * lo else
               1 if v <= c.yellow_available_mb * lo else 0)
        out.append((lvl, f'MemAvailable {v:.0f} MB'))
    frac = s.cgroup_fraction
    if frac is not None:
        lvl = 2 if frac >= c.red_cgroup * hi else 1 if frac >= c.yellow_cgroup * hi else 0
        out.append((lvl, f'cgroup {100 * frac:.0f}% of {s.cgroup_limit_mb:.0f} MB'))
    return out


class PressureClassifier:
    """green/yellow/red from samples, rising at once and falling with hysteresis and hold."""

    def __init__(self, cfg: PressureConfig) -> None:
        self.cfg = cfg
        self.level = 0
        self.reason = 'no readings yet'
        self._clear_since: float | None = None

    @property
    def name(self) -> str:
        """Current level as 'green' | 'yellow' | 'red'."""
        return LEVELS[self.level]

    def update(self, sample: PressureSample, now: float) -> bool:
        """Classify one sample; returns True when the level changed (see `reason`)."""
        enter = _levels(sample, self.cfg, 0.0)
        if not enter:
            return False
        worst = max(enter, key=lambda x: x[0])
        if worst[0] > self.level:
            self.level, self._clear_since = worst[0], None
            self.reason = f'{LEVELS[worst[0]]}: {worst[1]}'
            return True
        relaxed = max(lvl for lvl, _ in _levels(sample, self.cfg, self.cfg.hysteresis))
        if relaxed >= self.level:
            self._clear_since = None
            return False
        if self._clear_since is None:
            self._clear_since = now
        if now - self._clear_since < self.cfg.hold_s:
            return False
        self.level, self._clear_since = relaxed, None
        self.reason = (f'{LEVELS[relaxed]}: ' + ', '.join(r for _, r in enter) +
                       f' clear for {self.cfg.hold_s:g} s')
        return True
