"""Parameters of the viz node (pure: the launcher checks profile values against them)."""
from __future__ import annotations

from collections.abc import Mapping

from sage_common.params import ParamSpec, ParamValue

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec('frame_id', 'base_link', 'frame of every marker (set rviz Fixed Frame to it): the '
              "robot's base frame (frames.base_frame)"),
    ParamSpec('marker_rate_hz', 4.0, 'MarkerArray publish rate', 0.2, 30.0),
    ParamSpec('image_rate_hz', 2.0, 'puzzle grid and salience overlay image rate', 0.1, 15.0),
    ParamSpec('marker_lifetime_s', 1.0,
              'marker lifetime: markers of a stopped graph vanish after it', 0.1, 60.0),
    ParamSpec('window_s', 1.0, 'salience bars show the mean over this many recent seconds',
              0.1, 60.0),
    ParamSpec('stored_count', 5, 'how many latest stored experiences are listed', 0, 20),
    ParamSpec('cell_px', 8, 'pixels per puzzle cell in the puzzle images', 1, 32),
    ParamSpec('overlay_width', 320, 'width of the salience overlay image in pixels', 160, 1280),
    ParamSpec('split_salience', True,
              'republish /sage/salience per modality on /sage/viz/salience/<modality> '
              '(clean per-modality curves in rqt_plot and PlotJuggler)'),
    ParamSpec('diagnostics_period_s', 1.0, '/diagnostics publish period', 0.1, 10.0,
              read_only=True),
)


def validate(values: Mapping[str, ParamValue]) -> list[str]:
    """Cross-field rules: markers must outlive the gap between two publishes."""
    errors = []
    rate = float(str(values['marker_rate_hz']))
    lifetime = float(str(values['marker_lifetime_s']))
    if lifetime * rate < 1.0:
        errors.append(f'marker_lifetime_s ({lifetime}) must be at least one marker period '
                      f'(1/marker_rate_hz = {1.0 / rate:.3f} s), or markers flicker')
    if not str(values['frame_id']).strip():
        errors.append('frame_id must not be empty')
    return errors
