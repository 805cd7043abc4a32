"""Memory node: stores salient experiences, serves recall and sleep, persists node state.

Subscribes /sage/salience, /sage/{vision,audio,language}/latent, /sage/metabolic_state and
/sage/memory/checkpoint (std_msgs/String JSON {"key": ..., "state": {...}} from other nodes);
publishes /sage/memory/stored (after commit), /sage/memory/state (latched JSON of every saved
state, for nodes restoring at start) and /diagnostics. The services /sage/memory/query and
/sage/memory/sleep and the Sleep action of the same name (feedback and cancel:
sage_memory.sleep.action_server) run on a small helper node with its own executor threads, so
recall I/O and a long sleep never block this node's executor; database writes happen in the
store's writer.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
import json
import sys
import threading
import time
from typing import Any

from geometry_msgs.msg import PoseStamped
import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from sage_interfaces.msg import Experience, Latent, MetabolicState, Salience
from sage_interfaces.srv import QueryMemory, Sleep
from sqlalchemy import exc as sa_exc
from std_msgs.msg import String

from sage_common.convert import latent_from_msg, salience_from_msg
from sage_common.errors import SageError
from sage_common.health import Health, Level
from sage_common.ros import (CHECKPOINT_TOPIC, LATCHED_QOS, MEMORY_STATE_TOPIC, RELIABLE_QOS,
                             SENSOR_QOS, DiagnosticsPublisher,
                             declare_params, run)
from sage_common.vocabulary import Topic
from sage_memory.config import (device_and_session, memory_config, outbox_worker,
                                policy_config)
from sage_memory.diagnostics import (ProblemAges, read_only_text, report_memory, report_outbox,
                                     report_training)
from sage_memory.errors import QueryError, StoreUnavailableError
from sage_memory.sleep.action_server import SleepActionServer
from sage_memory.sleep.input_requests import InputRequester
from sage_memory.memory import Memory, OpenWait, open_memory
from sage_memory.memory_params import PARAMS, validate
from sage_memory.store.models import ExperienceRecord
from sage_memory.policy import MemoryCore
from sage_memory.index.recall import text_embedder
from sage_memory.sleep.cycle import SleepCycle, SleepResult, live_models, retrain_modalities
from sage_memory.sleep.retrain import Retrainer, RetrainOutcome, versions_dir
from sage_memory.ros_convert import experience_to_msg, parse_checkpoint, query_from_request
from sage_memory.sync.shared_models import share_live

OWN_STATE_KEY = 'memory'
METABOLIC_STATE_KEY = 'metabolic'


class MemoryNode(Node):
    """Thin shell around Memory (store, index, recall, sleep) and MemoryCore (policy)."""

    def __init__(self) -> None:
        super().__init__('memory')
        values = declare_params(self, PARAMS, validate, self._on_params)
        values['device_id'], values['session'] = device_and_session(values)
        self.values = values
        self.health = Health()
        # Up before the database opens: a wait for a locked file is reported meanwhile.
        self.diag = DiagnosticsPublisher(self, self.health, float(values['diagnostics_period_s']))
        self._last_diag = 0.0
        self.memory = self._open(values)
        self._problem_ages = ProblemAges()
        if self.memory.read_only:
            self.get_logger().error(read_only_text(self.memory.read_only))
        for problem in self.memory.problems:
            self.get_logger().error(problem)
        # the node clock: pairing timeouts and row times follow /clock under use_sim_time
        self.core = MemoryCore(policy_config(values),
                               lambda: self.get_clock().now().nanoseconds * 1e-9)
        self.core.restore(self.memory.load_state(OWN_STATE_KEY) or {})
        self.states = self.memory.load_states()
        self._outbox: deque[ExperienceRecord] = deque()
        self.memory.on_stored(self._outbox.extend)
        self.stored_pub = self.create_publisher(Experience, Topic.MEMORY_STORED, RELIABLE_QOS)
        self.state_pub = self.create_publisher(String, MEMORY_STATE_TOPIC, LATCHED_QOS)
        self._publish_states()
        # Reliable, like the SNARC and encoder publishers: nothing is lost on the way in.
        self.create_subscription(Salience, Topic.SALIENCE, self._on_salience, RELIABLE_QOS)
        for m in ('vision', 'audio', 'language'):
            self.create_subscription(Latent, Topic.latent(m), self._on_latent, RELIABLE_QOS)
        self.create_subscription(MetabolicState, Topic.METABOLIC_STATE, self._on_metabolic,
                                 LATCHED_QOS)
        self.create_subscription(String, CHECKPOINT_TOPIC, self._on_checkpoint,
                                 RELIABLE_QOS)
        if values['pose_topic']:
            self._pose_stamp = 0.0
            self.create_subscription(PoseStamped, str(values['pose_topic']), self._on_pose,
                                     SENSOR_QOS)
        self._versions_dir = versions_dir(str(values['data_dir']))
        self._shipper = (None if self.memory.read_only else outbox_worker(
            values, self.memory.store.engine, self._versions_dir, self.memory.index_rows))
        if self._shipper is not None:
            self._shipper.start()
        self._inputs: InputRequester | None = None
        if values['training_inputs.enabled'] and not self.memory.read_only:
            self._inputs = InputRequester(
                self, [m for m in str(values['training_inputs.modalities']).split(',') if m],
                float(values['training_inputs.timeout_s']), self.memory.submit_training_input,
                self.health, context=bool(values['training_inputs.context']))
        self._retrainer = Retrainer(self.get_logger().info)
        self.sleeper = SleepCycle(self.memory, values, self._versions_dir, self._retrainer,
                                  self.get_logger().info)
        self._share_pending = False
        self._dream_sleep: threading.Thread | None = None
        self.models_pub = self.create_publisher(String, Topic.MODELS_LIVE, LATCHED_QOS)
        self._live_models: dict[str, dict[str, str]] | None = None
        self._publish_live_models()
        self.create_timer(float(values['diagnostics_period_s']), self._publish_live_models)
        self.create_timer(0.05, self._tick)
        if self._inputs is not None:
            self.create_timer(float(values['diagnostics_period_s']), self._report_training)
        self.create_timer(float(values['checkpoint_period_s']), self._checkpoint)
        # Services on a helper node with its own executor thread (see module docstring).
        self.srv_node = Node(f'{self.get_name()}_services', use_global_arguments=False)
        group = ReentrantCallbackGroup()
        self.srv_node.create_service(QueryMemory, Topic.MEMORY_QUERY, self._on_query,
                                     callback_group=group)
        self.srv_node.create_service(Sleep, Topic.MEMORY_SLEEP, self._on_sleep,
                                     callback_group=group)
        self._sleep_action = SleepActionServer(self.srv_node, group, self.sleeper, self._sleep,
                                               self.health)
        # A query, a Sleep call, a sleep goal and its cancel may all be in progress at once.
        self._srv_exec = MultiThreadedExecutor(num_threads=4)
        self._srv_exec.add_node(self.srv_node)
        self._srv_thread = threading.Thread(target=self._srv_exec.spin, daemon=True)
        self._srv_thread.start()
        self.get_logger().info(
            f'memory ready: {self.memory.store.dialect} {self.memory.store.path or ""} '
            f'device {values["device_id"]}, {self.memory.store.count()} rows')

    def _open(self, values: dict[str, Any]) -> Memory:
        embed = text_embedder(values)
        wait = OpenWait(server_s=float(values['connect_timeout_s']),
                        lock_s=float(values['lock_timeout_s']),
                        backoff_max_s=float(values['writer.backoff_max_s']))
        try:
            return open_memory(memory_config(values), embed, wait, self._warn,
                               self._keep_waiting)
        except StoreUnavailableError:
            if not rclpy.ok(context=self.context):
                raise ExternalShutdownException() from None  # stopped while waiting
            raise

    def _warn(self, msg: str) -> None:
        self.get_logger().warning(msg)
        self.health.problem(Level.WARN, msg)
        self._publish_diagnostics()

    def _keep_waiting(self) -> bool:
        # Nothing spins while the database is awaited: publish diagnostics from here.
        if time.monotonic() - self._last_diag >= float(self.values['diagnostics_period_s']):
            self._publish_diagnostics()
        return rclpy.ok(context=self.context)

    def _publish_diagnostics(self) -> None:
        self._last_diag = time.monotonic()
        self.diag.publish()

    def _on_params(self, values: dict[str, Any]) -> None:
        merged = dict(values, device_id=self.values['device_id'],
                      session=self.values['session'])
        self.core.configure(policy_config(merged))

    def _store(self, records: list[ExperienceRecord]) -> None:
        if records:
            self.memory.submit_many(records)
            self.health.count('queued', len(records))
            if self._inputs is not None:
                self._inputs.request(records)

    def _on_salience(self, msg: Salience) -> None:
        try:
            self._store(self.core.on_salience(salience_from_msg(msg)))
        except (SageError, ValueError) as err:
            self.health.problem(Level.WARN, f'bad salience: {err}')

    def _on_latent(self, msg: Latent) -> None:
        try:
            self._store(self.core.on_latent(latent_from_msg(msg)))
        except (SageError, ValueError) as err:
            self.health.problem(Level.WARN, f'bad latent: {err}')

    def _on_metabolic(self, msg: MetabolicState) -> None:
        entered_dream = self.sleeper.on_state(msg.state)
        self.core.metabolic_state = msg.state
        budget = float(self.values['sleep.on_dream_s'])
        if entered_dream and budget > 0.0 and not self.memory.read_only and not (
                self._dream_sleep is not None and self._dream_sleep.is_alive()):
            # Nobody calls this node's Sleep (the assist host's): it sleeps when the robot
            # dreams, in a thread of its own so the node keeps serving meanwhile.
            self._dream_sleep = threading.Thread(
                target=self._sleep_on_dream, args=(budget,), daemon=True, name='dream-sleep')
            self._dream_sleep.start()
        self.states[METABOLIC_STATE_KEY] = {
            'state': msg.state, 'previous': msg.previous, 'reason': msg.reason,
            'atp_reserve': float(msg.atp_reserve), 'memory_pressure': msg.memory_pressure}

    def _on_pose(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        self.core.pose = (p.x, p.y, p.z, q.x, q.y, q.z, q.w)
        self._pose_stamp = self.get_clock().now().nanoseconds * 1e-9  # /clock under sim time

    def _on_checkpoint(self, msg: String) -> None:
        try:
            key, state = parse_checkpoint(msg.data)
            self.memory.submit_state(key, state)
        except (SageError, ValueError) as err:
            self.health.problem(Level.WARN, f'bad checkpoint: {err}')
            return
        self.states[key] = state
        self.health.count('checkpoints')
        self._publish_states()

    def _publish_states(self) -> None:
        doc = {'device_id': self.values['device_id'], 'states': self.states}
        self.state_pub.publish(String(data=json.dumps(doc, sort_keys=True)))

    def _tick(self) -> None:
        self._store(self.core.expire())
        if self.values['pose_topic'] and self.core.pose is not None and (
                self.get_clock().now().nanoseconds * 1e-9 - self._pose_stamp
                > float(self.values['pose_max_age_s'])):
            self.core.pose = None
        n = 0
        while self._outbox:
            rec = self._outbox.popleft()
            if rec.kind == 'experience':
                self.stored_pub.publish(experience_to_msg(rec))
            n += 1
        if n:
            self.health.count('stored', n)
        if self._inputs is not None:
            self._inputs.poll()
        self._report()

    def _report(self) -> None:
        report_memory(self.health, self.memory.status(), self.memory.store.quarantined,
                      self._problem_ages)
        if self._shipper is not None:
            report_outbox(self.health, self._shipper.status)

    def _report_training(self) -> None:
        # A count query: at the diagnostics period, not every tick.
        try:
            report_training(self.health, self.memory.training_stats())
        except SageError as err:
            self.health.problem(Level.WARN, f'training inputs: {err}')

    def _publish_live_models(self) -> None:
        # Latched: an encoder that starts later loads the promoted version at once (and SNARC
        # the version's re-embedded memories, model_versions.MEMORY_EMBEDDINGS_FILE). Called at
        # the diagnostics period too, so `sage memory models --rollback` and versions adopted
        # from another host reach the encoders.
        doc = live_models(self._versions_dir, retrain_modalities(self.values))
        if doc != self._live_models:
            self._live_models = doc
            self.models_pub.publish(String(data=json.dumps(doc, sort_keys=True)))
            self.health.values['models_live'] = ', '.join(
                f"{m} {v['version']}" for m, v in sorted(doc.items()))
            self._share_pending = (bool(self.values['models.share'])
                                   and not self.memory.read_only)
        if self._share_pending:
            self._share_live()

    def _share_live(self) -> None:
        """Write the live versions into the store for other hosts (tried again each period
        until the store takes them)."""
        try:
            shared = share_live(self.memory.store.engine, self._versions_dir,
                                retrain_modalities(self.values), self.values['device_id'])
        except (sa_exc.SQLAlchemyError, OSError) as err:
            self.health.problem(Level.WARN, f'model versions not shared yet: {err}'[:300])
            return
        self._share_pending = False
        if shared:
            self.get_logger().info(f'shared for other hosts: {", ".join(shared)}')
            self.health.values['models_shared'] = ', '.join(shared)

    def _checkpoint(self) -> None:
        self.memory.submit_state(OWN_STATE_KEY, self.core.state())
        if METABOLIC_STATE_KEY in self.states:
            self.memory.submit_state(METABOLIC_STATE_KEY, self.states[METABOLIC_STATE_KEY])

    def _on_query(self, request: QueryMemory.Request, response: QueryMemory.Response
                  ) -> QueryMemory.Response:
        t0 = time.perf_counter()
        try:
            results = self.memory.query(query_from_request(request))
        except QueryError as err:
            response.success, response.message = False, str(err)
            self.health.count('query_errors')
            return response
        response.success = True
        response.message = f'{len(results)} results'
        response.results = [experience_to_msg(r) for r in results]
        self.health.latency('query', (time.perf_counter() - t0) * 1e3)
        self.health.count('queries')
        return response

    def _on_sleep(self, request: Sleep.Request, response: Sleep.Response) -> Sleep.Response:
        budget = float(request.max_duration_s)
        if not 0.0 < budget <= 3600.0:
            response.success = False
            response.message = f'max_duration_s must be in (0, 3600], got {budget}'
            return response
        try:
            result = self._sleep(budget)
        except SageError as err:
            response.success, response.message = False, str(err)
            return response
        response.success = True
        response.examined = result.report.examined
        response.consolidated = result.report.consolidated
        response.message = result.message
        return response

    def _sleep_on_dream(self, budget: float) -> None:
        try:
            self.get_logger().info(f'sleep on DREAM: {self._sleep(budget).message}')
        except SageError as err:
            self.health.problem(Level.ERROR, f'sleep on DREAM: {err}')

    def _sleep(self, budget: float, should_stop: Callable[[], bool] = lambda: False,
               on_event: Callable[[dict[str, Any]], None] = lambda event: None
               ) -> SleepResult:
        """One sleep (sage_memory.sleep.cycle), its retraining reported on /diagnostics."""
        result = self.sleeper.sleep(budget, should_stop, on_event)
        if result.retrain is not None:
            self._report_retrain(result.retrain)
        return result

    def _report_retrain(self, outcome: RetrainOutcome) -> None:
        if outcome.error:
            self.health.problem(Level.ERROR if outcome.ran else Level.WARN, outcome.summary())
        if outcome.preempted:
            self.health.latency('retrain_stop', outcome.stop_s * 1e3)
        if outcome.ran:
            self.health.values['retrain_peak_rss_mb'] = f'{outcome.peak_rss_mb:.0f}'
        self.health.count('retrain_runs')
        self._publish_live_models()

    def close(self) -> None:
        """Final checkpoint, flush every queued row, save the index (called on shutdown)."""
        self._retrainer.close()  # a sleep worker stops first: it discards its version
        self._srv_exec.shutdown(timeout_sec=2.0)
        self._sleep_action.destroy()
        self.srv_node.destroy_node()
        self._store(self.core.expire())
        self._checkpoint()
        if self._shipper is not None:
            self._shipper.stop()
        if not self.memory.close():
            self.get_logger().error('memory closed with unsaved rows (database unavailable)')


def main(args: list[str] | None = None) -> int:
    """Run the memory node until shutdown; returns the exit code."""
    return int(run(lambda: MemoryNode(), args))


if __name__ == '__main__':
    sys.exit(main())
