"""Orchestrator node: ticks the core, publishes /sage/budget and /sage/metabolic_state.

Remote effects are asynchronous: SetParameters on /<node>/set_parameters and the Sleep
service are called with call_async and their results fed back to the core from done
callbacks, so the executor never blocks. Subscribes to the encoders' Latent topics (one per
remote plugin modality), /sage/salience and /sage/reward; reads memory pressure on its own
timer; saves trust through `persist` periodically and at shutdown.
"""
from __future__ import annotations

from collections.abc import Callable
import json
import sys
import time
from typing import Any

from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from sage_common.convert import latent_from_msg, salience_from_msg, set_stamp
from sage_common.health import Health, Level
from sage_common.records import RewardRecord
from sage_common.ros import (CHECKPOINT_TOPIC, LATCHED_QOS, MEMORY_STATE_TOPIC, RELIABLE_QOS,
                             DiagnosticsPublisher, declare_params, run)
from sage_common.stamps import to_sec
from sage_common.vocabulary import Topic
from sage_interfaces.msg import AtpAllocation, AtpBudget, Latent, MetabolicState, Reward, Salience
from sage_interfaces.srv import Sleep
from sage_orchestrator.errors import BadInputError, PersistError
from sage_orchestrator.orchestrator_core import (STATE_KEY, OrchestratorCore, SleepRequest,
                                                 TickResult)
from sage_orchestrator.orchestrator_params import (PARAMS, build_config, env_overrides,
                                                   pressure_paths, validate)
from sage_orchestrator.persist import open_store
from sage_orchestrator.plugins import build_inprocess
from sage_orchestrator.pressure import read_sample

# Inputs are matched best effort so both reliable and sensor-QoS publishers connect.
INPUT_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)


class OrchestratorNode(Node):
    """Thin shell around `OrchestratorCore` (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        env = [Parameter(k, value=v) for k, v in env_overrides().items()]
        kwargs['parameter_overrides'] = list(kwargs.get('parameter_overrides') or []) + env
        super().__init__(kwargs.pop('node_name', 'orchestrator'), **kwargs)
        self.health = Health()
        self._logged: dict[str, float] = {}
        self._last_state_pub = -1e18
        values: dict[str, Any] = declare_params(self, PARAMS, validate, self._on_params)
        cfg = build_config(values)
        self.core = OrchestratorCore(cfg, build_inprocess(
            s.name for s in cfg.plugins if s.kind == 'inprocess'))
        self._values = values
        self._paths = pressure_paths(values)
        self._store = open_store(str(values['state_dir']))
        for warning in self._store.lock_down() if self._store is not None else []:
            self.get_logger().warning(warning)
        self.restored = False
        self._load_state()
        # Trust also goes to the memory node (the shared, synced store); it comes back from
        # there when this device has no local file (a new disk, a restored memory export).
        self._checkpoint_pub = self.create_publisher(String, CHECKPOINT_TOPIC, RELIABLE_QOS)
        self.create_subscription(String, MEMORY_STATE_TOPIC, self._on_memory_state,
                                 LATCHED_QOS)
        self._budget_pub = self.create_publisher(AtpBudget, Topic.BUDGET, RELIABLE_QOS)
        self._state_pub = self.create_publisher(MetabolicState, Topic.METABOLIC_STATE,
                                                LATCHED_QOS)
        for spec in cfg.plugins:
            if spec.remote:
                self.create_subscription(Latent, Topic.latent(spec.modality),
                                         self._on_latent, INPUT_QOS)
        self.create_subscription(Salience, Topic.SALIENCE, self._on_salience, INPUT_QOS)
        self.create_subscription(Reward, Topic.REWARD, self._on_reward, INPUT_QOS)
        self._sleep: Any = self.create_client(Sleep, str(values['sleep_service']))
        self._param_clients: dict[str, Any] = {}
        self.create_timer(1.0 / cfg.tick_hz, self._tick)
        self.create_timer(float(values['pressure.period_s']), self._read_pressure)
        self.create_timer(float(values['persist_period_s']), self.save_state)
        self._diag = DiagnosticsPublisher(self, self.health,
                                          float(values['diagnostics_period_s']))

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_params(self, values: dict[str, Any]) -> None:
        self.core.configure(build_config(values))
        self._paths = pressure_paths(values)
        self._values = values

    def _problem(self, message: str, level: Level = Level.WARN) -> None:
        self.health.problem(level, message)
        now = self._now()
        if now - self._logged.get(message, -1e18) >= 10.0:  # the same line at most every 10 s
            self._logged[message] = now
            self.get_logger().warning(message)

    def _load_state(self) -> None:
        try:
            saved = self._store.load(STATE_KEY) if self._store is not None else None
        except PersistError as err:
            self._problem(f'saved state not loaded, starting fresh: {err}')
            return
        if saved is not None:
            self._restore(saved, 'state file')

    def _restore(self, saved: dict[str, Any], source: str) -> None:
        for note in self.core.load_state_dict(saved):
            self._problem(note)
        self.restored = True
        self.get_logger().info(f'trust restored from {source}: {self.core.trust.values}')

    def _on_memory_state(self, msg: String) -> None:
        if self.restored:
            return
        try:
            saved = json.loads(msg.data).get('states', {}).get(STATE_KEY)
        except (ValueError, AttributeError) as err:
            self._problem(f'unreadable /sage/memory/state: {err}')
            return
        if isinstance(saved, dict):
            self._restore(saved, 'the memory node')

    def save_state(self) -> None:
        """Persist the core's learned state (trust); also called at shutdown by `run`."""
        state = self.core.state_dict()
        try:
            if self._store is not None:
                self._store.save(STATE_KEY, state)
        except PersistError as err:
            self._problem(str(err))
        if rclpy.ok(context=self.context):  # at shutdown the context may already be gone
            self._checkpoint_pub.publish(
                String(data=json.dumps({'key': STATE_KEY, 'state': state})))

    close = save_state

    # ---- inputs ---------------------------------------------------------------------

    def _input(self, kind: str, feed: Callable[[float], object]) -> None:
        """Feed one input to the core; malformed input is counted and reported, not raised."""
        try:
            feed(self._now())
            self.health.count(kind)
        except (BadInputError, ValueError) as err:
            self.health.count(f'bad_{kind}')
            self._problem(f'{kind} rejected: {err}')

    def _on_latent(self, msg: Latent) -> None:
        self._input('reports', lambda now: self.core.on_latent(latent_from_msg(msg), now))

    def _on_salience(self, msg: Salience) -> None:
        self._input('salience', lambda now: self.core.on_salience(salience_from_msg(msg), now))

    def _on_reward(self, msg: Reward) -> None:
        rec = RewardRecord(to_sec(msg.header.stamp), float(msg.value), msg.source)
        self._input('rewards', lambda now: self.core.on_reward(rec, now))

    def _read_pressure(self) -> None:
        if self.core.on_pressure(read_sample(self._paths), self._now()):
            self.get_logger().info(f'memory pressure {self.core.pressure.reason}')

    # ---- the tick -------------------------------------------------------------------

    def _tick(self) -> None:
        t0 = time.perf_counter()
        now = self._now()
        res = self.core.tick(now)
        self.health.latency('tick', (time.perf_counter() - t0) * 1e3)
        self.health.count('ticks')
        self._publish_budget(res)
        for tr in res.transitions:
            self.get_logger().info(f'{tr.source.value} -> {tr.target.value}: {tr.reason}')
        period = float(self._values['state_publish_period_s'])
        if res.transitions or now - self._last_state_pub >= period:
            self._publish_state(res)
        for node, params in res.params.items():
            self._send_params(node, params, now)
        if res.sleep is not None:
            self._call_sleep(res.sleep)
        for problem in res.problems:
            self._problem(problem)
        self.health.values.update(self.core.summary())

    def _publish_budget(self, res: TickResult) -> None:
        msg = AtpBudget(tick=res.tick, budget_total=float(res.budget_total),
                        reserve=float(res.reserve), metabolic_state=res.state.state)
        set_stamp(msg.header, res.now)
        msg.allocations = [AtpAllocation(
            plugin=a.plugin, modality=a.modality, trust=float(a.trust),
            salience=float(a.salience), share=float(a.share), atp=float(a.atp),
            atp_used=float(a.atp_used)) for a in res.allocations]
        self._budget_pub.publish(msg)

    def _publish_state(self, res: TickResult) -> None:
        s = res.state
        msg = MetabolicState(state=s.state, previous=s.previous, reason=s.reason,
                             dwell_s=float(s.dwell_s), atp_reserve=float(s.atp_reserve),
                             memory_pressure=s.memory_pressure)
        set_stamp(msg.header, res.now)
        self._state_pub.publish(msg)
        self._last_state_pub = res.now

    def _send_params(self, node: str, params: dict[str, Any], now: float) -> None:
        client = self._param_clients.get(node)
        if client is None:
            # relative: the node's parameter service in this graph's namespace
            client = self.create_client(SetParameters, f'{node}/set_parameters')
            self._param_clients[node] = client
        if not client.service_is_ready():
            self.core.on_param_unreachable(node, 'set_parameters service not available', now)
            return
        names = list(params)
        request = SetParameters.Request(parameters=[
            Parameter(n, value=params[n]).to_parameter_msg() for n in names])
        future = client.call_async(request)
        future.add_done_callback(lambda f: self._param_done(node, params, f))

    def _param_done(self, node: str, params: dict[str, Any], future: Any) -> None:
        now = self._now()
        if future.exception() is not None:
            self.core.on_param_unreachable(node, f'set_parameters failed: '
                                                 f'{future.exception()}', now, params)
            return
        results = future.result().results
        outcome = {n: (r.successful, r.reason) for n, r in zip(params, results)}
        self.core.on_param_result(node, params, outcome, now)
        done = [f'{n}={self.core.sync.value((node, n))}' for n, (ok, _) in outcome.items() if ok]
        if done:
            self.get_logger().info(f"{node}: set {', '.join(done)}")

    def _call_sleep(self, req: SleepRequest) -> None:
        if not self._sleep.service_is_ready():
            self.core.on_sleep_result(req.request_id, False, 'sleep service not available')
            return
        future = self._sleep.call_async(Sleep.Request(max_duration_s=float(req.max_duration_s),
                                                      reason=req.reason))
        future.add_done_callback(lambda f: self._sleep_done(req.request_id, f))

    def _sleep_done(self, request_id: int, future: Any) -> None:
        if future.exception() is not None:
            self.core.on_sleep_result(request_id, False, str(future.exception()))
            return
        r = future.result()
        self.core.on_sleep_result(request_id, bool(r.success), f'{r.message} (examined '
                                  f'{r.examined}, consolidated {r.consolidated})')


def main(args: list[str] | None = None) -> int:
    """Run the orchestrator node."""
    return run(lambda: OrchestratorNode(), args)


if __name__ == '__main__':
    sys.exit(main())
