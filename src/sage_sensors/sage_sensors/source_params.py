"""Parameters every sensor node has (pure: imported by the three *_params modules)."""
from __future__ import annotations

from sage_common.params import ParamSpec

SOURCE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec('data_dir', '', 'sample data folder (empty = $SAGE_DATA_DIR or '
              '<prefix>/share/sage/samples)', read_only=True),
    ParamSpec('fallback', 'none', 'when a file stream fails mid-run (vanished, corrupt): none = '
              'stop it, synthetic = switch to the synthetic scene; ERROR on /diagnostics '
              'either way', choices=('none', 'synthetic'), read_only=True),
    ParamSpec('diagnostics_period_s', 1.0, 'seconds between /diagnostics messages',
              min_value=0.1, max_value=60.0, read_only=True),
)
