"""`sage bench sleep --hour`: one sleep over an hour of stored inputs (issue 18, must-show 3).

The memory node keeps at most about `snarc.threshold.target_rate_hz` attended inputs per second
per modality (the nano threshold holds 0.5/s), and with `training_inputs.context` the inputs of
the context rows around each (`context_before` + `context_after`), so an hour is at most
1,800 x 5 = 9,000 vision frames and as many audio windows (the store's disk budget for them,
`training_inputs.budget_mb`, evicts the least valuable beyond it, as on the robot). They are
taken from realistic scenes of environment E (report seeds,
generated once into `sage bench salience`'s cache), spread evenly over each scene, and handed
to the store as the encoders' input rings hand them to the memory node: camera frames resized
to the encoder's `input_size` as JPEG at its `training_input.jpeg_quality`, audio windows of
`window_samples` as s16le-zlib. The sleep worker then runs with the profile's sleep.retrain
settings (time budget, steps, INT8 calibration inputs); its wall time and peak RSS are set
against the issue's 10 minutes and the profile's `sleep.retrain.max_rss_mb`.
"""
from __future__ import annotations

from pathlib import Path
import tempfile
from typing import Any

from sage_bench.salience import scene
from sage_bench.sleep_setup import fill_store, run_worker, scene_inputs
from sage_bringup.profile import load_profile
from sage_common.errors import SageError
from sage_eval.inputs import ENCODER_PARAMS, resolved_params

HOUR_S = 3600.0
LIMIT_S = 600.0  # the bound for one sleep over an hour of inputs


def run_hour(profile: str = 'nano', overrides: list[str] | None = None,
             per_modality: int | None = None, seeds: int = 2, program: str = 'full',
             cache: Path | None = None, keep_dir: Path | None = None) -> dict[str, Any]:
    """Fill a store with an hour of inputs from scenes of E, sleep once, measure.

    Args:
        profile: profile whose encoder, SNARC and memory settings run.
        overrides: profile overrides, node.param=value.
        per_modality: inputs per modality (None = an hour at snarc.threshold.target_rate_hz).
        seeds: realistic report scenes the inputs are spread over.
        program: their program ('full': several minutes each; 'short': about 80 s, for tests).
        cache: scene cache folder (default: `sage bench salience`'s).
        keep_dir: work in this folder and keep it (default: a temporary folder, removed).

    Returns:
        JSON-able dict: inputs per modality, sleep wall time and peak RSS, the limits, the
        worker's decisions.

    Raises:
        SageError: bad arguments or profile, or a worker without a result.
    """
    # lazy: keeps cv2 and SQLAlchemy out of this module's import
    from sage_eval.realistic import REPORT_SEEDS
    from sage_memory.sleep.retrain import worker_command

    if not 1 <= seeds <= len(REPORT_SEEDS):
        raise SageError(f'seeds must be 1..{len(REPORT_SEEDS)}')
    params = {n.name: dict(n.parameters) for n in load_profile(profile, overrides or []).nodes}
    rate = float(resolved_params(params, 'snarc', 'sage_snarc.snarc_params')
                 ['threshold.target_rate_hz'])
    mem = resolved_params(params, 'memory', 'sage_memory.memory_params')
    rows = 1 + (int(mem['context_before']) + int(mem['context_after'])
                if mem['training_inputs.context'] else 0)  # inputs kept per attended one
    n = int(per_modality if per_modality is not None else round(rate * HOUR_S * rows))
    if n < 2:
        raise SageError('per_modality must be at least 2')
    vision = resolved_params(params, 'vision_encoder', ENCODER_PARAMS['vision_encoder'])
    audio = resolved_params(params, 'audio_encoder', ENCODER_PARAMS['audio_encoder'])
    tmp = None if keep_dir else tempfile.TemporaryDirectory(prefix='sage-bench-sleep-hour-')
    work = Path(keep_dir or tmp.name)  # type: ignore[union-attr]
    try:
        work.mkdir(parents=True, exist_ok=True)
        kept: list[Any] = []
        used = list(REPORT_SEEDS[:seeds])
        for i, seed in enumerate(used):
            share = n // seeds + (1 if i < n % seeds else 0)
            kept += scene_inputs(scene('realistic', seed, program, cache), vision, audio,
                                 share, share)
        kept = [k for k in kept if k.answer.found]
        data_dir = work / 'memory'
        counts = fill_store(data_dir, kept, float(mem['training_inputs.budget_mb']))
        budget = float(mem['sleep.retrain.time_budget_s'])
        cmd = worker_command(mem, '', str(data_dir), str(data_dir / 'models'), budget,
                             {}, seed=0)
        worker = run_worker(cmd, work / 'worker.log')
        limit = float(mem['sleep.retrain.max_rss_mb'])
        decisions = {m: {k: r.get(k) for k in ('decision', 'inputs', 'steps', 'seconds',
                                               'reason', 'timings')}
                     for m, r in worker['result'].get('modalities', {}).items()}
        return {
            'profile': profile, 'seeds': used, 'program': program, 'target_rate_hz': rate,
            'inputs_per_modality_asked': n, 'inputs': counts,
            'settings': {k: mem[f'sleep.retrain.{k}'] for k in
                         ('time_budget_s', 'max_steps', 'audio_max_steps', 'calibration_inputs',
                          'max_rss_mb')},
            'sleep_s': round(worker['seconds'], 2),
            'peak_rss_mb': round(worker['peak_rss_mb'], 1),
            'peak_pss_mb': round(worker['peak_pss_mb'], 1),
            'within_10_min': worker['seconds'] <= LIMIT_S,
            'within_memory_limit': limit <= 0 or max(worker['peak_rss_mb'],
                                                     worker['peak_pss_mb']) <= limit,
            'exit_code': worker['exit_code'], 'modalities': decisions}
    finally:
        if tmp is not None:
            tmp.cleanup()
