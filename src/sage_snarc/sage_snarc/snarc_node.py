"""SNARC node: scores every latent and IMU window and publishes /sage/salience (thin shell).

Subscribes /sage/{vision,audio,language}/latent, /sage/{vision,audio}/latent_initial (the
same inputs before refinement; each input is scored once), /sage/imu/data, /sage/reward,
/sage/memory/stored, /sage/metabolic_state and /sage/models/live (a promoted encoder version's
re-embedded memories, `_on_models_live`); all logic is in `SnarcCore`.
"""
from __future__ import annotations

from pathlib import Path
import sys
import time
from typing import Any

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sage_interfaces.msg import Experience, Latent, MetabolicState, Reward, Salience
from sage_interfaces.srv import QueryMemory
from sensor_msgs.msg import Imu
from std_msgs.msg import String

from sage_common.convert import imu_from_msg, latent_from_msg, salience_to_msg
from sage_common.errors import SageError
from sage_common.health import Health, Level
from sage_common.private_files import private_files
from sage_common.records import RewardRecord, SalienceRecord
from sage_common.ros import (LATCHED_QOS, RELIABLE_QOS, DiagnosticsPublisher,
                             declare_params, run, sensor_qos, stamp_sec)
from sage_common.vocabulary import LANGUAGE, PUZZLE_MODALITIES, Topic
from sage_encoders.errors import ModelError
from sage_encoders.live_models import LiveModel, live_model
from sage_encoders.model_files import PACKAGED, PACKAGED_DIR
from sage_encoders.model_versions import VersionError, read_memory_embeddings
from sage_snarc import checkpoint
from sage_snarc.seen_once import SeenOnce, input_key
from sage_snarc.snarc_core import LATENT_MODALITIES, SnarcCore
from sage_snarc.snarc_params import PARAMS, validate

# Vision and audio latents: best effort matches both reliable and best-effort publishers, and a
# lost frame is better replaced by the next than resent late; a deep queue rides out bursts.
# Language latents are rare and each one matters, and across hosts they travel a link that
# loses packets (the encoder may run on the assist host): reliable.
LATENT_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT,
                        history=HistoryPolicy.KEEP_LAST)
RARE_LATENT_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             history=HistoryPolicy.KEEP_LAST)
PRELOAD_TRIES = 10


class SnarcNode(Node):
    """ROS shell around SnarcCore."""

    def __init__(self, **kwargs: Any) -> None:
        """Create the node; kwargs go to rclpy's Node (context, parameter_overrides, ...)."""
        super().__init__('snarc', **kwargs)
        self.health = Health()
        values = declare_params(self, PARAMS, validate, self._on_params)
        self.core = SnarcCore.from_params(values)
        cfg = self.core.cfg.node  # read-only: what the start fixed stays
        self._state_file = Path(cfg.state_file).expanduser() if cfg.state_file else None
        self._load_state()
        self._imu_seq = 0
        self._liveness_s = self.core.cfg.conflict.liveness_s
        self._last_input: dict[str, float] = {}  # wall clock, for dead-stream reports only
        self._uuids = SeenOnce(200_000)  # stored experiences already in the novelty index
        self.pub = self.create_publisher(Salience, Topic.SALIENCE, RELIABLE_QOS)
        # Puzzle latents come before refinement too (the encoders' irp.publish_initial):
        # scored from whichever of the two arrives first, salience need not wait for the
        # refinement steps.
        self._once = SeenOnce() if cfg.before_refinement else None
        self.health.count('scored_already', 0)
        for m in LATENT_MODALITIES:
            qos = RARE_LATENT_QOS if m == LANGUAGE else LATENT_QOS
            self.create_subscription(Latent, Topic.latent(m), self._on_latent, qos)
            if self._once is not None and m in PUZZLE_MODALITIES:
                self.create_subscription(Latent, Topic.latent_initial(m), self._on_latent, qos)
        self.create_subscription(Imu, Topic.IMU, self._on_imu,
                                 sensor_qos(cfg.imu_queue_depth))
        self.create_subscription(Reward, Topic.REWARD, self._on_reward, RELIABLE_QOS)
        self.create_subscription(Experience, Topic.MEMORY_STORED, self._on_stored,
                                 RELIABLE_QOS)
        self.create_subscription(MetabolicState, Topic.METABOLIC_STATE, self._on_state,
                                 LATCHED_QOS)
        # Latched, as the encoders follow it: a SNARC that starts later still hears it.
        self.create_subscription(String, Topic.MODELS_LIVE, self._on_models_live, LATCHED_QOS)
        self.diag = DiagnosticsPublisher(self, self.health, cfg.diagnostics_period_s)
        self.create_timer(cfg.diagnostics_period_s, self._refresh_health)
        self._preload_k = cfg.memory_preload_k
        self._preload_tries = 0
        self._query = self.create_client(QueryMemory, Topic.MEMORY_QUERY)
        self._preload_timer = (self.create_timer(2.0, self._preload)
                               if self._preload_k > 0 else None)

    # ------------------------------------------------------------------ inputs

    def _clock_s(self) -> float:
        """The node clock in seconds (/clock time under use_sim_time: a paused bag is no
        silent sensor)."""
        return self.get_clock().now().nanoseconds * 1e-9

    def _publish(self, rec: SalienceRecord, started: float) -> None:
        self.pub.publish(salience_to_msg(rec))
        self.health.latency('score', (time.perf_counter() - started) * 1e3)
        self.health.count(f'out_{rec.modality}')
        if rec.attend:
            self.health.count(f'attended_{rec.modality}')

    def _on_latent(self, msg: Latent) -> None:
        started = time.perf_counter()
        try:
            if self._once is not None and msg.modality in PUZZLE_MODALITIES \
                    and not self._once.first(input_key(msg.modality, msg.input_seq,
                                                       stamp_sec(msg))):
                self.health.count('scored_already')  # the other copy of this input came first
                return
            rec = latent_from_msg(msg)
            self.health.count(f'in_{rec.modality or "unknown"}')
            self._last_input[rec.modality] = self._clock_s()
            self._publish(self.core.score_latent(rec), started)
        except (SageError, ValueError, TypeError) as err:
            self._bad_input('latent', err)

    def _on_imu(self, msg: Imu) -> None:
        started = time.perf_counter()
        try:
            self.health.count('in_imu')
            self._last_input['imu'] = self._clock_s()
            rec = self.core.score_imu(imu_from_msg(msg, self._imu_seq))
            self._imu_seq += 1
            if rec is not None:
                self._publish(rec, started)
        except (SageError, ValueError, TypeError) as err:
            self._bad_input('imu', err)

    def _on_reward(self, msg: Reward) -> None:
        self.health.count('rewards')
        self.core.add_reward(RewardRecord(stamp_sec(msg), float(msg.value), msg.source))

    def _on_stored(self, msg: Experience) -> None:
        if msg.uuid and not self._uuids.first(msg.uuid):
            return
        if self.core.add_memory(msg.modality, msg.embedding, msg.model_version):
            self.health.count('memories')

    def _on_state(self, msg: MetabolicState) -> None:
        self.core.set_metabolic_state(msg.state)

    def _on_models_live(self, msg: String) -> None:
        """Add the re-embedded memories of each live puzzle model version (once each)."""
        for m in PUZZLE_MODALITIES:
            try:
                # 'packaged' resolves to the encoders' own folder, never read here.
                live = live_model(msg.data, m, PACKAGED_DIR)
            except ModelError as err:
                self.core.report_issue(Level.WARN, 'bad_models_live',
                                       f'{m}: live models message ignored: {err}')
                continue
            if live is not None and live.version != PACKAGED \
                    and (m, live.version) not in self.core.model_memories:
                self._add_model_memories(m, live)

    def _add_model_memories(self, m: str, live: LiveModel) -> None:
        try:
            found = read_memory_embeddings(live.directory)
        except VersionError as err:
            self.core.report_issue(Level.WARN, 'bad_model_memories',
                                   f'{m} {live.version}: re-embedded memories not added: {err}')
            return
        if found is None:  # a version from before the file: its memory fills as it runs
            return
        n = self.core.add_model_memories(m, live.version, found.embeddings)
        self.get_logger().info(f'{m} model {live.version}: {n} stored memories re-embedded by '
                               'it added to its novelty memory')

    def _bad_input(self, what: str, err: Exception) -> None:
        self.health.problem(Level.WARN, f'bad {what} input: {err}')
        self.get_logger().warning(f'bad {what} input: {err}', throttle_duration_sec=5.0)

    # ------------------------------------------------------------------ housekeeping

    def _refresh_health(self) -> None:
        self.health.values.update(self.core.stats())
        now = self._clock_s()
        for m, last in sorted(self._last_input.items()):
            if now - last > 2.0 * self._liveness_s:
                self.health.problem(Level.WARN, f'no {m} input for {now - last:.0f} s '
                                    '(its conflict terms are off)')
        for level, message in self.core.drain_issues():
            self.health.problem(level, message)
            self.get_logger().warning(message)

    def _on_params(self, values: dict[str, Any]) -> None:
        self.core = self.core.reconfigured(values)

    def _preload(self) -> None:
        self._preload_tries += 1
        if not self._query.service_is_ready():
            if self._preload_tries >= PRELOAD_TRIES and self._preload_timer is not None:
                self._preload_timer.cancel()
                self.get_logger().info('memory query service not available: no preload')
            return
        if self._preload_timer is not None:
            self._preload_timer.cancel()
        for m in LATENT_MODALITIES:
            req = QueryMemory.Request(modality=m, k=self._preload_k)
            self._query.call_async(req).add_done_callback(self._on_preloaded)

    def _on_preloaded(self, future: Any) -> None:
        res = future.result()
        if res is None or not res.success:
            self.health.problem(Level.WARN, 'memory preload failed')
            return
        for exp in res.results:
            self._on_stored(exp)

    def _load_state(self) -> None:
        path = self._state_file
        if path is None or not path.is_file():
            return
        for warning in private_files([path]):  # an older version wrote it readable
            self.get_logger().warning(warning)
        try:
            self.core.load_state_dict(checkpoint.load(path), new_stream=True)
            self.get_logger().info(f'loaded SNARC state from {path}')
        except (SageError, OSError) as err:
            self.health.problem(Level.WARN, f'state file not loaded: {err}')
            self.get_logger().warning(f'state file {path} not loaded ({err}); starting fresh')

    def close(self) -> None:
        """Save the state file (if configured) at shutdown."""
        if self._state_file is None:
            return
        try:
            checkpoint.save(self._state_file, self.core.state_dict())
        except OSError as err:
            self.get_logger().error(f'cannot save SNARC state to {self._state_file}: {err}')


def main(args: list[str] | None = None) -> int:
    """Entry point (`python -m sage_snarc.snarc_node`)."""
    return run(lambda: SnarcNode(), args)


if __name__ == '__main__':
    sys.exit(main())
