"""Parameters of the memory node (pure: the launcher imports this to check profiles)."""
from __future__ import annotations

from collections.abc import Mapping
import os
import time
from typing import Any

from sage_common.params import ParamSpec
from sage_common.records import MODALITIES
from sage_common.vocabulary import STATE_NAMES

# Modalities whose encoder input can be kept (defined here, where the launcher can import it
# without the store's dependencies; sage_memory.store.training_inputs uses it).
TRAINING_MODALITIES = ('vision', 'audio')

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec('database_url', '', "'' = SQLite file <data_dir>/sage_memory.db; or "
              'sqlite:///PATH or postgresql://USER@HOST:PORT/DB (psycopg 3)', read_only=True),
    ParamSpec('data_dir', '~/.local/share/sage', 'directory of the SQLite file and index '
              'snapshots', read_only=True),
    ParamSpec('device_id', '', "id written on every row ('' = host name)", read_only=True),
    ParamSpec('session', '', "session written on every row ('' = device id + start time)",
              read_only=True),
    ParamSpec('connect_timeout_s', 60.0, 'how long to wait at start for an unreachable '
              'database server before giving up', 0.0, 3600.0, read_only=True),
    ParamSpec('lock_timeout_s', 0.0, 'how long to wait at start for a SQLite file locked by '
              'another process (0 = until it is released); WARN on /diagnostics meanwhile',
              0.0, 86_400.0, read_only=True),
    ParamSpec('policy.mode', 'attend', 'what is stored: attend = when SNARC attends; '
              'salience = salience >= policy.min_salience; all; off',
              choices=('attend', 'salience', 'all', 'off')),
    ParamSpec('policy.min_salience', 0.0, 'salience floor (every mode but all)', 0.0, 1.0),
    ParamSpec('policy.modalities', 'vision,audio,imu,language',
              'comma-separated modalities that may be stored'),
    ParamSpec('policy.states', 'WAKE,FOCUS,REST,DREAM,CRISIS',
              'comma-separated metabolic states in which storing is allowed'),
    ParamSpec('context_before', 2, 'inputs kept before each stored one (per modality)', 0, 32),
    ParamSpec('context_after', 2, 'inputs kept after each stored one (per modality)', 0, 32),
    ParamSpec('full_fidelity_top_fraction', 0.2, 'share of stored inputs (most salient) kept '
              'verbatim with their code grid', 0.0, 1.0),
    ParamSpec('fidelity_window', 200, 'recent stored saliences the top fraction is taken over',
              1, 100_000),
    ParamSpec('summary_keep_preview', True, 'keep the preview in summary rows'),
    ParamSpec('feature_digits', 4, 'significant digits of the encoder features and refinement '
              'report kept in a stored row (4: within 0.05 %, finer than sensor noise, and 60 '
              'bytes less than 9 in an audio row; 9 = every float32 digit)', 2, 9),
    ParamSpec('pair_buffer', 64, 'unpaired Salience/Latent kept per modality', 1, 10_000),
    ParamSpec('pair_timeout_s', 1.0, 'how long a Salience waits for its Latent', 0.0, 60.0),
    ParamSpec('tags', '', 'comma-separated tags written on every row'),
    ParamSpec('pose_topic', '', "geometry_msgs/PoseStamped topic for the robot pose ('' = none)",
              read_only=True),
    ParamSpec('pose_max_age_s', 1.0, 'a pose older than this is not attached', 0.0, 3600.0),
    ParamSpec('max_rows', 200_000, 'cap on unconsolidated rows (0 = no cap)', 0, 100_000_000),
    ParamSpec('retention.low_water', 0.95, 'eviction brings the row count down to '
              'low_water * max_rows', 0.5, 1.0),
    ParamSpec('retention.recency_weight', 0.5, 'salience lost per recency_scale_s of age',
              0.0, 100.0),
    ParamSpec('retention.recency_scale_s', 86_400.0, 'age scale of retention value', 1.0, 1e9),
    ParamSpec('retention.period_s', 10.0, 'how often the row cap is checked', 0.1, 3600.0),
    ParamSpec('checkpoint_period_s', 30.0, 'how often the memory node saves its own state',
              1.0, 3600.0),
    ParamSpec('writer.batch_max', 512, 'most rows per commit', 1, 100_000, read_only=True),
    ParamSpec('writer.linger_s', 0.25, 'a commit waits this long for more rows after the first '
              '(one commit per row rewrites the same pages again and again on flash; rows are '
              'acknowledged only after their commit)', 0.0, 5.0, read_only=True),
    ParamSpec('writer.max_pending', 100_000, 'most rows held in memory while the database '
              'cannot be written (older ones are then dropped)', 100, 10_000_000,
              read_only=True),
    ParamSpec('writer.backoff_max_s', 5.0, 'longest retry delay while the database is down',
              0.1, 300.0, read_only=True),
    ParamSpec('sqlite_synchronous', 'FULL', 'SQLite synchronous mode: FULL survives power '
              'loss, NORMAL only process crashes', choices=('FULL', 'NORMAL'), read_only=True),
    ParamSpec('sqlite_page_size', 4096, 'page size (bytes, a power of two) of a SQLite file the '
              'node creates (an existing file keeps its own): 16384 takes about a fifth less '
              'disk per row but writes 2-3x the bytes to flash per commit', 512, 65536,
              read_only=True),
    ParamSpec('sqlite_wal_max_mb', 64.0, 'a SQLite WAL larger than this is checkpointed and '
              'truncated at once (bounds the WAL under a flood; 0 = no bound)', 0.0, 65_536.0,
              read_only=True),
    ParamSpec('index.kind', 'ivf', 'vector index: ivf (exact while small, then an inverted '
              'file: cheap inserts, exact top 10 on embeddings that cluster) or hnsw (a graph: '
              'recall on any embeddings, about 4x the insert cost)', choices=('ivf', 'hnsw'),
              read_only=True),
    ParamSpec('index.exact_work', 2_000_000, 'rows x embedding size up to which a search is '
              'exact (an ivf index stays a flat scan until it holds more; 2e6 = 5,208 rows of '
              '384-d)', 0, 1_000_000_000, read_only=True),
    ParamSpec('index.nprobe', 16, 'ivf: inverted lists scanned per recall query (recall vs '
              'speed; the index has about sqrt(rows) lists)', 1, 65_536, read_only=True),
    ParamSpec('index.seed', 0, 'ivf: seed of the quantiser\'s training sample and k-means',
              0, 2**31 - 1, read_only=True),
    ParamSpec('index.m', 16, 'hnsw: graph degree', 4, 128, read_only=True),
    ParamSpec('index.ef_construction', 128, 'hnsw: build candidate list (recall vs insert '
              'cost)', 8, 1024, read_only=True),
    ParamSpec('index.ef_search', 128, 'hnsw: query candidate list (raised to k)', 8, 4096,
              read_only=True),
    ParamSpec('index.threads', 1, 'threads FAISS uses for incremental adds (start-up rebuilds '
              'use every core)',
              0, 64, read_only=True),
    ParamSpec('index.add_chunk', 8, 'rows per index insert while rows stream in: a query '
              'waits for one chunk at most, not a whole burst (0 = whole batch)', 0, 100_000,
              read_only=True),
    ParamSpec('index.snapshot_vectors', False, 'index snapshots also hold the vectors (false: '
              'the ivf centroids and each row\'s list, or the hnsw graph, alone; vectors are '
              'read back from the database at start, so each is kept on disk once)',
              read_only=True),
    ParamSpec('index.snapshot_period_s', 300.0, 'how often a changed index is saved '
              '(0 = only at shutdown)', 0.0, 86_400.0, read_only=True),
    ParamSpec('index.refresh_period_s', 60.0, 'how often the index is reconciled with the '
              'database (rows imported or synced by others)', 0.0, 86_400.0, read_only=True),
    ParamSpec('index.ready_wait_s', 5.0, 'a recall by example or text that arrives while the '
              'index is still being loaded at start waits this long, then fails with \'still '
              'loading\' (never an empty answer)', 0.0, 60.0, read_only=True),
    ParamSpec('heap_trim_rows', 10_000, 'after this many new rows, once the queues are empty, '
              'freed heap is given back to the OS (RSS returns after a burst; 0 = never)', 0,
              100_000_000, read_only=True),
    ParamSpec('training_inputs.enabled', True, 'ask the encoders for the input (frame or audio '
              'window) and pre-refinement codes of each stored experience, kept for sleep to '
              'retrain them on', read_only=True),
    ParamSpec('training_inputs.budget_mb', 256.0, 'disk budget of the kept encoder inputs (MB); '
              'beyond it the least valuable (old, low salience) go first (0 = keep none)',
              0.0, 1e6, read_only=True),
    ParamSpec('training_inputs.modalities', 'vision,audio',
              'comma-separated modalities whose encoder inputs are kept (vision, audio)',
              read_only=True),
    ParamSpec('training_inputs.timeout_s', 2.0, "how long to wait for an encoder's answer with "
              'the input of a stored experience', 0.05, 60.0, read_only=True),
    ParamSpec('training_inputs.context', True, 'also keep the inputs of the context rows stored '
              'around an experience (context_before, context_after: the scene it happened in, '
              'from which sleep learns the surroundings; attended inputs alone are mostly the '
              'events); false: experiences only', read_only=True),
    ParamSpec('sleep.similarity', 0.9, 'cosine similarity to join a cluster', 0.0, 1.0),
    ParamSpec('sleep.min_cluster', 3, 'members needed to write a pattern', 2, 100_000),
    ParamSpec('sleep.max_examined', 5000, 'most experiences examined per sleep', 1,
              10_000_000),
    # Retraining (sage_memory.sleep.worker, a process of its own: torch never enters the node).
    ParamSpec('sleep.retrain.enabled', True, 'after consolidation, fine-tune the vision/audio '
              'encoders on the training inputs stored since the last retraining, and promote '
              'the new model version only when it is better (needs torch; see sleep_worker)'),
    ParamSpec('sleep.retrain.time_budget_s', 300.0, 'wall seconds of one retraining for data, '
              'scoring and training steps, shared between the modalities (within the sleep '
              'budget)', 1.0, 7200.0),
    ParamSpec('sleep.retrain.export_reserve_s', 30.0, 'seconds of the sleep budget kept for '
              'the final scoring and ONNX export of each version (about 6 s vision, 3 s audio '
              'on a 2-core x86)', 0.0, 3600.0),
    ParamSpec('sleep.retrain.max_steps', 2000, 'most fine-tuning steps per modality (a '
              'slower computer stops at time_budget_s first, its learning rate annealed by '
              'then)', 1, 100_000),
    ParamSpec('sleep.retrain.audio_max_steps', -1, "the audio encoder's own step limit "
              '(-1 = sleep.retrain.max_steps; a modality that stops early leaves its time to '
              'the next)', -1, 100_000),
    ParamSpec('sleep.retrain.learning_rate', 5e-4, 'Adam learning rate of fine-tuning at its '
              'start (cosine decay to a tenth by max_steps or time_budget_s)', 1e-6, 0.1),
    ParamSpec('sleep.retrain.min_inputs', 16, 'a modality with fewer new training inputs is '
              'not retrained', 2, 1_000_000),
    ParamSpec('sleep.retrain.holdout', 0.2, 'fraction of the new inputs held back to validate '
              'the new model (at least one)', 0.01, 0.9),
    ParamSpec('sleep.retrain.holdout_gap_s', 2.0, 'inputs are held back in whole bursts: runs '
              'less than this many seconds apart (an event and its context), so the new model '
              'is not judged on near-copies of what it trained on (0 = single inputs at '
              'random)', 0.0, 3600.0),
    ParamSpec('sleep.retrain.freeze_codebook', True, 'fine-tune the encoder and decoder '
              'but keep the codebook vectors, so each code means what it meant and what SNARC '
              'stored stays comparable (false: EMA updates as in training, which raised calm '
              'false alarms after sleep)'),
    ParamSpec('sleep.retrain.rehearsal', 0.5, 'fraction of each training batch drawn from the '
              'shipped training data, so the encoder does not forget it', 0.0, 0.95),
    ParamSpec('sleep.retrain.audio_rehearsal', -1.0, "the audio encoder's own rehearsal "
              'fraction (negative, e.g. -1 = sleep.retrain.rehearsal)', -1.0, 0.95),
    ParamSpec('sleep.retrain.vision_gain_jitter', 0.3, 'each vision training crop of the day '
              'is scaled by a random gain in [1 - g, 1 + g]: the model learns the room, not '
              'the light of the few dozen frames it kept (0 = off)', 0.0, 0.9),
    ParamSpec('sleep.retrain.vision_flip', True, 'mirror half the vision training crops of '
              'the day left-right (the room from the other side of a turn)'),
    ParamSpec('sleep.retrain.min_gain', 0.05, 'relative reconstruction gain on the held-back '
              'inputs needed to promote a new version', 0.0, 1.0),
    ParamSpec('sleep.retrain.max_forgetting', 0.05, 'largest relative reconstruction loss on '
              'the shipped held-out set that still lets a new version be promoted', 0.0, 1.0),
    ParamSpec('sleep.retrain.modalities', 'vision,audio',
              'comma-separated encoders to retrain (vision, audio)'),
    ParamSpec('sleep.retrain.calibration_inputs', 16, 'inputs that calibrate the INT8 export '
              'of a new version (the export holds every layer output of each: vision about '
              '270 MB at 16, 500 MB at 48)', 4, 256),
    ParamSpec('sleep.retrain.threads', 1, 'torch threads of the sleep worker (the graph keeps '
              'running during a dream: leave it cores)', 1, 16),
    ParamSpec('sleep.retrain.nice', 10, 'niceness the sleep worker adds to itself, so the '
              'running graph (and the salience spike that preempts sleep) comes first on a '
              'busy CPU (0 = same priority as the node)', 0, 19),
    ParamSpec('sleep.retrain.max_rss_mb', 900.0, 'memory limit of the sleep worker (resident '
              'MB): above it the node stops the worker, which discards its unfinished version '
              '(0 = no limit)', 0.0, 65536.0),
    ParamSpec('language_encoder', 'sage_encoders.language_core:LanguageEncoderCore',
              "module:Class with from_params(values).embed(texts) for text recall ('' = off)",
              read_only=True),
    ParamSpec('language_encoder_params', 'sage_encoders.language_encoder_params',
              "module whose PARAMS defaults configure the text-recall encoder ('' = none)",
              read_only=True),
    ParamSpec('diagnostics_period_s', 1.0, 'diagnostics publishing period', 0.1, 60.0,
              read_only=True),
    # Two hosts: the edge writes here first and ships to the shared store (outbox.py).
    ParamSpec('outbox.url', '', "shared store (postgresql://...) this host's experiences are "
              "shipped to, in order and once each ('' = off)", read_only=True),
    ParamSpec('outbox.period_s', 2.0, 'how often the backlog is sent to the shared store (s)',
              0.05, 3600.0, read_only=True),
    ParamSpec('outbox.batch', 500, 'rows per transaction on the shared store', 1, 100_000,
              read_only=True),
    ParamSpec('outbox.link_timeout_s', 5.0, 'a connection to the shared store whose data stays '
              'unacknowledged this long is dropped and made again (a link that went down); '
              'the server drops our sessions whose client stays silent this long (keepalives) '
              'or idle inside a transaction, so a lost COMMIT cannot hold their rows locked',
              0.1, 600.0, read_only=True),
    ParamSpec('outbox.inputs', True, 'ship the training inputs of shipped experiences too, so '
              'sleep can retrain the encoders on the shared store', read_only=True),
    ParamSpec('outbox.settle_s', 10.0, "an experience's training input is shipped once the "
              'experience is this old (its input follows it from the encoder)', 0.0, 3600.0,
              read_only=True),
    ParamSpec('outbox.patterns', True, "take back the patterns other hosts' sleep wrote into "
              'the shared store', read_only=True),
    ParamSpec('outbox.adopt_models', True, 'adopt the encoder versions other hosts shared in '
              'the shared store and make them live (the encoders hot-swap them)',
              read_only=True),
    ParamSpec('models.share', False, "write this node's promoted encoder versions into its "
              "store for other hosts to adopt (the assist host's memory node, on the shared "
              'store)', read_only=True),
    ParamSpec('sleep.on_dream_s', 0.0, 'sleep this long (s) when the metabolic state turns '
              'DREAM, without a Sleep call (a memory node no orchestrator calls: the assist '
              "host's); the sleep stops when the dream ends (0 = off)", 0.0, 3600.0,
              read_only=True),
)

_STATES = STATE_NAMES


def split_list(value: str) -> list[str]:
    """Comma-separated string -> stripped non-empty items."""
    return [v.strip() for v in str(value).split(',') if v.strip()]


def validate(values: Mapping[str, Any]) -> list[str]:
    """Cross-field and list-content checks; returns problems."""
    problems: list[str] = []
    bad = [m for m in split_list(values.get('policy.modalities', '')) if m not in MODALITIES]
    if bad:
        problems.append(f"parameter 'policy.modalities': unknown {', '.join(bad)} "
                        f"(known: {', '.join(MODALITIES)})")
    bad = [s for s in split_list(values.get('policy.states', '')) if s not in _STATES]
    if bad:
        problems.append(f"parameter 'policy.states': unknown {', '.join(bad)} "
                        f"(known: {', '.join(_STATES)})")
    page = int(values.get('sqlite_page_size', 4096))
    if page & (page - 1):
        problems.append(f"parameter 'sqlite_page_size': {page} is not a power of two")
    url = str(values.get('database_url', ''))
    if url and '://' in url and not url.startswith(
            ('sqlite:', 'postgresql:', 'postgres:', 'postgresql+psycopg:')):
        problems.append(f"parameter 'database_url': unsupported scheme in {url.split(':')[0]!r}"
                        ' (sqlite or postgresql)')
    if any(',' in t for t in split_list(values.get('tags', ''))):
        problems.append("parameter 'tags': tags cannot contain commas")
    bad = [m for m in split_list(values.get('training_inputs.modalities', ''))
           if m not in TRAINING_MODALITIES]
    if bad:
        problems.append(f"parameter 'training_inputs.modalities': unknown {', '.join(bad)} "
                        f"(known: {', '.join(TRAINING_MODALITIES)})")
    bad = [m for m in split_list(values.get('sleep.retrain.modalities', ''))
           if m not in TRAINING_MODALITIES]
    if bad:
        problems.append(f"parameter 'sleep.retrain.modalities': unknown {', '.join(bad)} "
                        f"(known: {', '.join(TRAINING_MODALITIES)})")
    enc = str(values.get('language_encoder', ''))
    if enc and ':' not in enc:
        problems.append("parameter 'language_encoder': expected 'module:Class'")
    return problems


def default_session(device_id: str, now: float | None = None) -> str:
    """Session id: device id + UTC start time + pid (unique per run)."""
    t = time.gmtime(time.time() if now is None else now)
    return f'{device_id}-{time.strftime("%Y%m%dT%H%M%SZ", t)}-{os.getpid()}'[:64]
