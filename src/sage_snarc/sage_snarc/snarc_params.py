"""Parameters of the SNARC node (pure module: the launcher imports it to check profiles).

Axis definitions and the learning rules these parameters tune are in README.md.
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
    _P('weights.surprise', 0.25, 'Profile weight of the surprise axis (weights are '
       'renormalised to sum 1)', 0.0, 10.0),
    _P('weights.novelty', 0.25, 'Profile weight of the novelty axis', 0.0, 10.0),
    _P('weights.arousal', 0.2, 'Profile weight of the arousal axis', 0.0, 10.0),
    _P('weights.reward', 0.3, 'Profile weight of the reward axis', 0.0, 10.0),
    _P('weights.conflict', 0.2, 'Profile weight of the conflict axis', 0.0, 10.0),
    _P('weights.learning_rate', 0.05, 'Step of the reward-driven weight update', 0.0, 1.0),
    _P('weights.min', 0.05, 'Smallest weight an axis can be adapted down to', 0.0, 0.2),
    _P('weights.decay_s', 600.0, 'Time constant of the weights relaxing to the profile '
       'weights (s of stamp time)', 1.0, 1e7),
    _P('combine.power', 3.0, 'Exponent p of the weighted power mean of the axes (1 = mean, '
       'larger = closer to the max)', 1.0, 16.0),
    # Running statistics and surprise.
    _P('stats.window', 256, 'Values kept per robust-statistics channel', 16, 8192,
       read_only=True),
    _P('stats.min_count', 16, 'Values needed before a channel scores (warm-up)', 2, 4096),
    _P('surprise.alpha', 0.8, 'Smoothing of the per-channel predictors', 0.001, 1.0),
    _P('surprise.beta', 0.05, 'Trend smoothing of the scalar-feature predictors', 0.0, 1.0),
    _P('surprise.z_ref', 5.0, 'Robust z of the prediction error that gives surprise 0.63',
       0.1, 100.0),
    _P('surprise.combine_channels', 2, 'Strongest surprise channels whose robust z add in '
       'quadrature (1 = the largest alone)', 1, 8),
    _P('surprise.channels.vision', 'brightness,codes,colour_change,grey_change', 'Comma list '
       'of what vision surprise predicts: embedding, codes, recon or a raw feature '
       '(brightness, colour_change, grey_change)'),
    _P('surprise.channels.audio', 'embedding,hop_db,recon,codes', 'Comma list of what audio '
       'surprise predicts: embedding, codes, recon or a raw feature (hop_db, rms_db)'),
    _P('surprise.codes.block', 6, 'Side (cells) of the blocks new codes are counted in: the '
       'newest block minus the median block, so a pan or an exposure step scores low and new '
       'content in one place high (0 = cells that differ, whole grid)', 0, 64),
    _P('surprise.codes.stride', 3, 'Cells between the origins of the code blocks (less than '
       'the block: overlapping blocks, so an object that straddles a block boundary is whole '
       'in one of them; 0 = the block side, blocks side by side)', 0, 64),
    _P('surprise.codes.margin', 1, 'Cells a block of the last code grid is widened by when '
       'asking which codes are new in a block (content that moved this little is not new)',
       0, 8),
    _P('surprise.codes.floor', 0.07, 'Smallest spread of the code-grid change (fraction of '
       'a block; keeps a static scene from making a few flipped cells a surprise)',
       1e-6, 1.0),
    _P('surprise.colour_change.floor', 0.005, 'Smallest spread of the prediction error of '
       "the vision encoder's colour_change feature (rg chromaticity; a static scene's sensor "
       'noise moving a block by a few thousandths is not a surprise)', 1e-6, 1.0),
    _P('surprise.grey_change.floor', 0.015, 'Smallest spread of the prediction error of '
       "the vision encoder's grey_change feature (luma over the frame's mean; the largest "
       'calm change of a realistic scene is about 0.02)', 1e-6, 1.0),
    _P('surprise.codes.audio_hop_cells', 4, 'Grid columns an audio window slides per hop '
       '(16 columns x hop 4096 / window 16384): grids are compared on the hop grid', 0, 64),
    # Novelty.
    _P('novelty.window', 512, 'Recent inputs per modality compared for novelty', 1, 65536,
       read_only=True),
    _P('novelty.voice.min_prob', 0.3, "Speech probability (the audio encoder's 'voice' feature) "
       'from which a window holds a voice (calm rooms stay below 0.01, recorded phrases peak at '
       '0.38-1)',
       0.01, 1.0),
    _P('novelty.voice.sure_prob', 0.5, 'Speech probability from which an utterance onset is '
       "fully new (novelty = probability / this, at most 1; 0.5 is Silero's own speech "
       'decision; 1 = novelty is the probability)',
       0.01, 1.0),
    _P('novelty.voice.gap_s', 2.0, 'Seconds without a voice after which an utterance is new: '
       'its first windows score novelty by their speech probability (see sure_prob)', 0.0, 3600.0),
    _P('novelty.voice.onset_s', 0.8, "How long after an utterance's first voice window its "
       'windows still score the highest speech probability it reached (the detector needs a '
       'few chunks to be sure)', 0.0, 10.0),
    _P('novelty.z_ref', 5.0, 'Robust z of the nearest distance that gives novelty 0.63',
       0.1, 100.0),
    _P('novelty.min_scale', 0.005, 'Smallest spread of the nearest distance (chord units; '
       'keeps a perfectly static scene from making specks novel)', 1e-6, 1.0),
    _P('novelty.rel_min_scale', 2.0, 'Smallest spread of the nearest distance as a multiple of '
       "its median: an encoder's embedding spreads a scene by its own scale (a model fitted "
       "to the room by sleep moves a calm scene's embeddings about 12 % further apart), so the "
       'floor follows it; the larger of this and min_scale holds (0 = min_scale alone)',
       0.0, 100.0),
    _P('novelty.exact_max', 4096, 'Memories searched exactly before the IVF index is used',
       16, 10_000_000, read_only=True),
    _P('novelty.nprobe', 8, 'IVF lists scanned per memory query', 1, 4096),
    _P('novelty.seed', 0, 'Seed of the IVF quantiser training sample', 0, 2**31 - 1,
       read_only=True),
    # Arousal (signal intensity) reference scales: value at ref -> 0.63.
    _P('arousal.vision.motion_ref', 0.05, 'Vision motion feature giving arousal 0.63',
       1e-6, 1e6),
    _P('arousal.vision.brightness_change_ref', 0.08, 'Absolute brightness change giving '
       'arousal 0.63', 1e-6, 1e6),
    _P('arousal.audio.floor_db', -50.0, 'Lowest room background (dBFS): rises are measured '
       'from the tracked background or this, whichever is louder', -120.0, 0.0),
    _P('arousal.audio.range_db', 20.0, 'Rise of the loudest frame of the newest hop above '
       'the background (dB) giving arousal 0.63', 1.0, 120.0),
    _P('arousal.audio.onset_ref_db', 20.0, 'Rise of frame level over 32 ms in the newest '
       'hop (dB) giving arousal 0.63', 0.1, 120.0),
    _P('arousal.audio.band_ref_db', 18.0, 'Rise of the most risen spectral band above its '
       'own background, beyond band_floor_db, giving arousal 0.63 (a sound loud only where the '
       'room is quiet, a punch over a fan, hardly moves the level; 0 = level rises only)',
       0.0, 120.0),
    _P('arousal.audio.band_floor_db', 6.0, "Band rise that is still the room's own "
       'fluctuation (dB), taken off before band_ref_db applies', 0.0, 120.0),
    _P('arousal.audio.background_window', 120, 'Hops (0.256 s each) over which the room '
       'background level is the median (a fan that starts is background within half of '
       'it)', 8, 4096, read_only=True),
    _P('arousal.audio.room_drop_db', 4.0, 'Drop of the room level below its tracked background '
       '(dB), held over room_drop_hops hops, that is a change of room: a fan or vent stopped '
       '(no sound makes a room quieter). The background and the error statistics of the audio '
       "surprise channels are learnt afresh (tuning room 0's calm hops "
       'stayed within 2.2 dB below it, a stopping vent dropped about 9 dB; 0 = never)',
       0.0, 120.0),
    _P('arousal.audio.room_drop_hops', 2, 'Consecutive hops (0.256 s each) the level must '
       'stay that far below the background (one quiet hop is no change of room)', 1, 64,
       read_only=True),
    _P('arousal.audio.room_band_drop_db', 6.0, 'Drop of a spectral band below its tracked '
       'background (dB), held over room_band_hops hops by at least room_band_count bands, that '
       'is also a change of room: a vent that stops under a louder fan leaves the level within '
       "a dB but its high bands 10-16 dB lower (tuning room 4; calm bands stay within about "
       "5 dB of theirs). The band background is then learnt afresh too (0 = never)",
       0.0, 120.0),
    _P('arousal.audio.room_band_count', 3, 'Bands that must lie room_band_drop_db below their '
       'background for a change of room (one band dips with the room now and then)', 1, 64),
    _P('arousal.audio.room_band_hops', 8, 'Consecutive hops (0.256 s each) the bands must stay '
       'that far below their background: longer than the level, since the bands also fall in '
       'a pause of a long conversation, whose voice is their background then', 1, 64,
       read_only=True),
    _P('arousal.audio.room_rise_db', 6.0, 'Rise of the room level above its tracked '
       'background (dB), held over room_rise_hops hops while the bands stay steady '
       '(room_rise_flux_db), that is also a change of room: a vent or fan started. Measured from '
       'the quieter room it would stay arousing for half of background_window (a starting vent '
       'rose 4-17 dB in tuning scenes; 0 = never)', 0.0, 120.0),
    _P('arousal.audio.room_rise_flux_db', 2.5, 'Largest mean hop-to-hop change of the bands '
       '(dB, median over bands) a lasting rise may have to be a change of room: a starting '
       'vent moved 1.0-1.6 dB, a voice that lasted as long 4-10 dB', 0.0, 60.0),
    _P('arousal.audio.room_rise_hops', 12, 'Consecutive hops (0.256 s each) the level must '
       'stay that far above the background: longer than a clap or a door, so only what lasts '
       'is a change of room', 2, 240, read_only=True),
    _P('arousal.imu.accel_ref', 3.0, '| |a| - g | (m/s^2) giving arousal 0.63', 1e-3, 1e3),
    _P('arousal.imu.gyro_ref', 0.5, '|w| (rad/s) giving arousal 0.63', 1e-3, 1e3),
    _P('arousal.language.base', 0.3, 'Arousal of any text input (someone addressed us)',
       0.0, 1.0),
    _P('arousal.language.length_ref', 120.0, 'Text length (chars) giving arousal 0.63',
       1.0, 1e5),
    # Reward association.
    _P('reward.ref', 0.5, 'Predicted reward giving a reward axis of 0.63 (axis = '
       'saturate(R / ref))', 0.01, 1.0),
    _P('reward.window_s', 3.0, 'Attended inputs this long before a reward are credited',
       0.01, 600.0),
    _P('reward.tau_s', 1.5, 'Eligibility time constant (s)', 0.01, 600.0),
    _P('reward.learning_rate', 0.5, 'Rescorla-Wagner rate of rewarded inputs', 0.0, 1.0),
    _P('reward.extinction_rate', 0.5, 'Rate towards 0 of attended inputs left unrewarded',
       0.0, 1.0),
    _P('reward.kernel_width', 0.25, 'Kernel width (chord distance between stimulus '
       'descriptors; larger generalises more)', 0.01, 2.0),
    _P('reward.max_prototypes', 64, 'Reward prototypes per modality', 1, 100000,
       read_only=True),
    _P('reward.decay_s', 3600.0, 'Time constant of forgetting reward associations (s)',
       1.0, 1e8),
    # Conflict.
    _P('conflict.pairs', 'imu>vision:1.0,audio>vision:0.5', "Comma list of 'A>B:weight': "
       'A active while B is still is a conflict'),
    _P('conflict.window_s', 0.6, 'Window over which modalities are compared (s)', 0.01, 60.0),
    _P('conflict.lag_s', 0.3, 'Time B gets to respond to A (s)', 0.0, 60.0),
    _P('conflict.audio_offset_s', 0.9, 'Audio latents are stamped at the start of their '
       '~1 s window; their onset activity is placed this much later (the newest hop)',
       0.0, 10.0),
    _P('liveness_s', 2.0, 'A modality with no input for this long is dead (its conflict '
       'terms are off)', 0.01, 3600.0),
    _P('imu_queue_depth', 100, 'IMU messages the subscription holds while the node is busy '
       '(best effort; 100 = 0.5 s at 200 Hz, so a stall loses none)', 1, 10000,
       read_only=True),
    _P('before_refinement', False, 'Score vision and audio inputs from /sage/<modality>/'
       'latent_initial, published before refinement, and score a refined latent only when '
       'its input was not scored yet (an encoder with irp.publish_initial off, recorded '
       'latents); false: only refined latents', read_only=True),
    # Habituation.
    _P('habituation.rate', 0.4, 'Strength added by each salient repeat (h += rate (1 - h))',
       0.0, 1.0),
    _P('habituation.max_drop', 0.9, 'Largest salience reduction of a fully habituated '
       'stimulus', 0.0, 1.0),
    _P('habituation.recovery_s', 30.0, 'Time constant of spontaneous recovery (s)',
       0.01, 1e7),
    _P('habituation.match_dist', 0.35, 'Chord distance between stimulus descriptors within '
       'which an input is the same stimulus (0.35 = 20 degrees): the radius of a new trace and '
       'the largest one a trace can learn', 0.0, 2.0),
    _P('habituation.near_miss', 0.05, 'Width (chord distance) over which a stimulus just beyond '
       'match_dist still counts partly as a repeat (0 = only matches habituate); a trace of a '
       'smaller radius has a proportionally smaller width', 0.0, 2.0),
    _P('habituation.radius.spreads', 2.0, "A trace's match radius in its instances' gaps "
       '(how far each landed from the nearest earlier one; 0 = every radius is match_dist)',
       0.0, 100.0),
    _P('habituation.radius.quantile', 0.8, 'Quantile of the gaps the radius is a multiple of',
       0.0, 1.0),
    _P('habituation.radius.min', 0.25, 'Smallest match radius a trace can learn (chord '
       'distance; a repeat caught at another phase of the audio hop still matches)', 0.0, 2.0),
    _P('habituation.radius.exemplars', 8, 'Latest instances a trace keeps to measure '
       'distances and gaps from', 1, 1000, read_only=True),
    _P('habituation.episode_gap_s', 1.2, 'Noticed inputs of a modality closer than this (s) '
       'are one episode: they share the habituation trace of its onset', 0.0, 60.0),
    _P('habituation.novelty_gate', 0.5, 'How far novelty exempts an input from habituation '
       '(factor = 1 - (1 - f)(1 - gate novelty^2); 0 = not at all)', 0.0, 1.0),
    _P('habituation.baseline_alpha', 0.5, 'Smoothing of the background a stimulus descriptor '
       '(innovation) is measured against', 0.01, 1.0),
    _P('habituation.audio_min_rise_db', 6.0, 'A sound is a stimulus (habituates, has a '
       'novelty of its own) when some spectral band rises this far above the room (dB)',
       0.0, 120.0),
    _P('habituation.max_traces', 64, 'Habituation traces per modality', 1, 100000,
       read_only=True),
    # Threshold.
    _P('threshold.initial', 0.45, 'Starting attend threshold', 0.0, 1.0),
    _P('threshold.min', 0.4, 'Lowest base threshold (calm scenes are not forced to attend)',
       0.0, 1.0),
    _P('threshold.max', 0.95, 'Highest base threshold', 0.0, 1.0),
    _P('threshold.target_rate_hz', 0.5, 'Attended inputs per second per modality the '
       'threshold holds', 0.0, 1000.0),
    _P('threshold.gain', 0.005, 'Threshold step per attended input', 0.0, 1.0),
    _P('threshold.offset.wake', 0.0, 'Threshold offset in WAKE', -1.0, 1.0),
    _P('threshold.offset.focus', -0.05, 'Threshold offset in FOCUS (more sensitive)',
       -1.0, 1.0),
    _P('threshold.offset.rest', 0.1, 'Threshold offset in REST', -1.0, 1.0),
    _P('threshold.offset.dream', 0.25, 'Threshold offset in DREAM (only strong inputs)',
       -1.0, 1.0),
    _P('threshold.offset.crisis', 0.05, 'Threshold offset in CRISIS', -1.0, 1.0),
    # IMU.
    _P('imu.window_s', 0.05, 'IMU samples are aggregated and scored per window (s)',
       0.001, 10.0),
    _P('imu.gravity', 9.80665, 'Gravity magnitude (m/s^2)', 0.0, 100.0),
    _P('imu.gravity_alpha', 0.02, 'Smoothing of the gravity-vector estimate per window',
       0.0001, 1.0),
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
    if float(values['novelty.voice.sure_prob']) < float(values['novelty.voice.min_prob']):
        errors.append('novelty.voice.sure_prob must not be below novelty.voice.min_prob')
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
