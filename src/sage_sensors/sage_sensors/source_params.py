"""Parameters every sensor node has (pure: imported by the three *_params modules)."""
from __future__ import annotations

from sage_common.params import ParamSpec

from sage_sensors.realtime import MAX_PRIORITY

SOURCE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec('data_dir', '', 'sample data folder (empty = $SAGE_DATA_DIR or '
              '<prefix>/share/sage/samples)', read_only=True),
    ParamSpec('fallback', 'none', 'when a file stream fails mid-run (vanished, corrupt): none = '
              'stop it, synthetic = switch to the synthetic scene; ERROR on /diagnostics '
              'either way', choices=('none', 'synthetic'), read_only=True),
    ParamSpec('capture_priority', 0, 'SCHED_FIFO priority of the capture thread (0 = normal '
              'scheduling); keeps the rate and latency when encoders load every core; needs '
              'CAP_SYS_NICE or an rtprio limit, else WARN and normal scheduling',
              min_value=0, max_value=MAX_PRIORITY, read_only=True),
    ParamSpec('diagnostics_period_s', 1.0, 'seconds between /diagnostics messages',
              min_value=0.1, max_value=60.0, read_only=True),
)
