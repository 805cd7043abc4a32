"""Parameters of the SNARC node (pure module: the launcher imports it to check profiles).

Axis definitions and the learning rules these parameters tune are in README.md. What a user
should not tune is a named constant in the module of its mechanism (README.md names them).
"""
from __future__ import annotations

from collections.abc import Mapping

from sage_common.params import ParamSpec, ParamValue
from sage_common.vocabulary import AXES, MODALITIES, STATE_KEYS
from sage_snarc.conflict import parse_pairs

AXIS_NAMES = AXES
STATE_NAMES = STATE_KEYS     # as they appear in parameter names (threshold.offset.wake)
SCORED_MODALITIES = MODALITIES

_P = ParamSpec

PARAMS: tuple[ParamSpec, ...] = (
    # Combination.
    _P('weights.surprise', 0.25, 'Profile weight of the surprise axis, prediction errors (weights '
       'are renormalised to sum 1; 0 switches an axis off; 0.25 like novelty: the two ways an '
       'input is news)', 0.0, 10.0),
    _P('weights.novelty', 0.25, 'Profile weight of the novelty axis, distance to recent inputs '
       'and memories (0.25 like surprise)', 0.0, 10.0),
    _P('weights.arousal', 0.2, 'Profile weight of the arousal axis, intensity: motion, level, '
       'shakes (0.2: loud is not always news)', 0.0, 10.0),
    _P('weights.reward', 0.3, 'Profile weight of the reward axis, learnt reward prediction (0.3, '
       'the largest: what paid off before matters most)', 0.0, 10.0),
    _P('weights.conflict', 0.2, 'Profile weight of the conflict axis, one sense active while '
       'another stays still (0.2)', 0.0, 10.0),
    _P('weights.learning_rate', 0.05, 'Step of the reward-driven weight update (0.05: one reward '
       'moves a weight by at most a few hundredths; a run of them, noticeably)', 0.0, 1.0),
    _P('combine.power', 3.0, 'Exponent p of the weighted power mean of the axes (1 = mean, '
       'larger = closer to the max; 3 lets one strong axis carry an input: an axis at 1 of '
       'weight 0.25 alone gives 0.63)', 1.0, 16.0),
    # Running statistics and surprise.
    _P('stats.window', 256, 'Values kept per robust-statistics channel (256: a minute of audio '
       'hops, 17 s of frames at 15 Hz: a steady median, yet a changed room is learnt within half '
       'of it)', 16, 8192,
       read_only=True),
    _P('surprise.z_ref', 5.0, 'Robust z of the prediction error that gives surprise 0.63 (5: the '
       'room\'s own errors, within 3 spreads, score at most 0.3)',
       0.1, 100.0),
    _P('surprise.channels.vision', 'brightness,codes,colour_change,grey_change', 'Comma list '
       'of what vision surprise predicts: embedding, codes, recon or a raw feature '
       '(brightness, colour_change, grey_change)'),
    _P('surprise.channels.audio', 'embedding,hop_db,recon,codes', 'Comma list of what audio '
       'surprise predicts: embedding, codes, recon or a raw feature (hop_db, rms_db)'),
    # Novelty.
    _P('novelty.window', 512, 'Recent inputs per modality compared for novelty (512: two minutes '
       'of audio hops, half a minute of frames at 15 Hz)', 1, 65536,
       read_only=True),
    _P('novelty.z_ref', 5.0, 'Robust z of the nearest distance that gives novelty 0.63 (5, as '
       'surprise.z_ref)',
       0.1, 100.0),
    _P('novelty.nprobe', 8, 'IVF lists scanned per memory query (more: closer to the exact '
       'search, slower)', 1, 4096),
    # Arousal (signal intensity) reference scales: value at ref -> 0.63.
    _P('arousal.vision.motion_ref', 0.05, 'Vision motion feature giving arousal 0.63',
       1e-6, 1e6),
    _P('arousal.vision.brightness_change_ref', 0.08, 'Absolute brightness change giving '
       'arousal 0.63', 1e-6, 1e6),
    _P('arousal.audio.range_db', 20.0, 'Rise of the loudest frame of the newest hop above '
       'the background (dB) giving arousal 0.63', 1.0, 120.0),
    _P('arousal.audio.onset_ref_db', 20.0, 'Rise of frame level over 32 ms in the newest '
       'hop (dB) giving arousal 0.63', 0.1, 120.0),
    _P('arousal.imu.accel_ref', 3.0, '| |a| - g | (m/s^2) giving arousal 0.63', 1e-3, 1e3),
    _P('arousal.imu.gyro_ref', 0.5, '|w| (rad/s) giving arousal 0.63', 1e-3, 1e3),
    _P('arousal.language.base', 0.3, 'Arousal of any text input (someone addressed us)',
       0.0, 1.0),
    _P('arousal.language.length_ref', 120.0, 'Text length (chars) giving arousal 0.63',
       1.0, 1e5),
    # Reward association.
    _P('reward.ref', 0.5, 'Predicted reward giving a reward axis of 0.63 (axis = '
       'saturate(R / ref); 0.5: an association half as strong as a sure reward)', 0.01, 1.0),
    _P('reward.window_s', 3.0, 'Attended inputs this long before a reward are credited (3 s: a '
       'person rewards what they saw within a few seconds)',
       0.01, 600.0),
    _P('reward.learning_rate', 0.5, 'Rescorla-Wagner rate of rewarded inputs', 0.0, 1.0),
    _P('reward.extinction_rate', 0.5, 'Rate towards 0 of attended inputs left unrewarded',
       0.0, 1.0),
    _P('reward.decay_s', 3600.0, 'Time constant of forgetting reward associations (s; an hour: '
       'they outlast an episode and fade over a day)',
       1.0, 1e8),
    # Conflict.
    _P('conflict.pairs', 'imu>vision:1.0,audio>vision:0.5', "Comma list of 'A>B:weight': "
       'A active while B is still is a conflict (the body turns, the image should move; a '
       'loud onset, something visible should change, less surely)'),
    _P('conflict.window_s', 0.6, 'Window over which modalities are compared (s)', 0.01, 60.0),
    _P('conflict.lag_s', 0.3, 'Time B gets to respond to A (s; 0.3: a few frames of a 15 Hz '
       'camera)', 0.0, 60.0),
    _P('liveness_s', 2.0, 'A modality with no input for this long is dead (its conflict terms are '
       'off; 2 s: two audio windows)', 0.01, 3600.0),
    _P('imu_queue_depth', 100, 'IMU messages the subscription holds while the node is busy '
       '(best effort; 100 = 0.5 s at 200 Hz, so a stall loses none)', 1, 10000,
       read_only=True),
    _P('before_refinement', False, 'Score vision and audio inputs from /sage/<modality>/'
       'latent_initial, published before refinement, and score a refined latent only when '
       'its input was not scored yet (an encoder with irp.publish_initial off, recorded '
       'latents); false: only refined latents', read_only=True),
    # Habituation.
    _P('habituation.rate', 0.4, 'Strength added by each salient repeat (h += rate (1 - h); 0.4: '
       'three repeats habituate a sound to 0.78)',
       0.0, 1.0),
    _P('habituation.max_drop', 0.9, 'Largest salience reduction of a fully habituated stimulus '
       '(0.9: a habituated sound is damped, never muted)', 0.0, 1.0),
    _P('habituation.recovery_s', 30.0, 'Time constant of spontaneous recovery (s; 30: a sound '
       'back after a minute is mostly news again)',
       0.01, 1e7),
    # Threshold.
    _P('threshold.initial', 0.45, 'Starting attend threshold', 0.0, 1.0),
    _P('threshold.min', 0.4, 'Lowest base threshold (calm scenes are not forced to attend)',
       0.0, 1.0),
    _P('threshold.max', 0.95, 'Highest base threshold', 0.0, 1.0),
    _P('threshold.target_rate_hz', 0.5, 'Attended inputs per second per modality the threshold '
       'holds (0.5: what memory stores and the orchestrator follows without backlog)',
       0.0, 1000.0),
    _P('threshold.gain', 0.005, 'Threshold step per attended input (0.005: the rate is held over '
       'minutes, a burst of events is not cut short)', 0.0, 1.0),
    _P('threshold.offset.wake', 0.0, 'Threshold offset in WAKE', -1.0, 1.0),
    _P('threshold.offset.focus', -0.05, 'Threshold offset in FOCUS (more sensitive)',
       -1.0, 1.0),
    _P('threshold.offset.rest', 0.1, 'Threshold offset in REST', -1.0, 1.0),
    _P('threshold.offset.dream', 0.25, 'Threshold offset in DREAM (only strong inputs)',
       -1.0, 1.0),
    _P('threshold.offset.crisis', 0.05, 'Threshold offset in CRISIS', -1.0, 1.0),
    # IMU.
    _P('imu.window_s', 0.05, 'IMU samples are aggregated and scored per window (s; 50 ms: '
       '20 scores a second from a 100-200 Hz IMU)', 0.001, 10.0),
    # Node only.
    _P('diagnostics_period_s', 1.0, 'Period of /diagnostics messages (s)', 0.05, 60.0,
       read_only=True),
    _P('state_file', '', "Checkpoint loaded at start and saved at shutdown ('' = none)",
       read_only=True),
    _P('memory.preload_k', 1000, 'Memories per modality fetched from /sage/memory/query at '
       'start (0 = none)', 0, 1000, read_only=True),
)


def channel_list(text: str) -> tuple[str, ...]:
    """Channel names of a comma list (blanks dropped)."""
    return tuple(c.strip() for c in text.split(',') if c.strip())


def validate(values: Mapping[str, ParamValue]) -> list[str]:
    """Cross-field rules."""
    errors = []
    if sum(float(values[f'weights.{a}']) for a in AXIS_NAMES) <= 0.0:
        errors.append('weights: at least one axis weight must be positive')
    lo, hi = float(values['threshold.min']), float(values['threshold.max'])
    if lo > hi:
        errors.append(f'threshold.min {lo} is above threshold.max {hi}')
    elif not lo <= float(values['threshold.initial']) <= hi:
        errors.append('threshold.initial must lie within [threshold.min, threshold.max]')
    if float(values['conflict.lag_s']) >= float(values['conflict.window_s']):
        errors.append('conflict.lag_s must be shorter than conflict.window_s')
    for m in ('vision', 'audio'):
        if not channel_list(str(values[f'surprise.channels.{m}'])):
            errors.append(f'surprise.channels.{m}: name at least one channel')
    try:
        for a, b, w in parse_pairs(str(values['conflict.pairs'])):
            for m in (a, b):
                if m not in SCORED_MODALITIES:
                    errors.append(f"conflict.pairs: unknown modality '{m}'")
            if not 0.0 <= w <= 1.0:
                errors.append(f'conflict.pairs: weight {w} of {a}>{b} is outside [0, 1]')
    except ValueError as err:
        errors.append(f'conflict.pairs: {err}')
    return errors
