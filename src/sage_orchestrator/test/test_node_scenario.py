"""Node test: a scripted scenario on a real graph drives the node through every state.

Each transition is published with its reason and the documented effects happen on the other
nodes (the camera's fps parameter, the Sleep service, encoder gating, SNARC's threshold).
"""
from __future__ import annotations

import os
import shutil
import threading
import time

import pytest
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from sage_common.convert import salience_to_msg
from sage_common.records import SalienceRecord
from sage_common.ros import LATCHED_QOS, RELIABLE_QOS
from sage_interfaces.msg import AtpBudget, MetabolicState, Salience
from sage_interfaces.srv import Sleep
from sage_orchestrator.orchestrator_node import OrchestratorNode

# The run's domain block (root conftest) plus this file's own offset.
DOMAIN_ID = int(os.environ.get('SAGE_TEST_DOMAIN_BASE', '90')) + 13
# Margins a loaded machine needs (at half-life 0.3 s and idle_rest_s 1 s one run in four
# failed here on an idle machine, and CI failed at 7da892e and c08bc1b): the profile's
# salience half-life (a 0.9 stays above focus_enter 0.7 for 0.36 s, a 0.95 above
# dream_preempt_salience 0.6 for 0.66 s, so a late tick still sees them); 3 s of idle before
# REST; WAKE dwells 1 s, so the 0.95 that preempts DREAM is below focus_enter when WAKE may
# leave (at 0.3 s it entered FOCUS, not the path under test).
PARAMS = {
    'tick_hz': 20.0, 'salience_half_life_s': 1.0, 'startup_grace_s': 100.0,
    'state_publish_period_s': 0.5, 'metabolic.idle_rest_s': 3.0,
    'metabolic.idle_dream_s': 5.0, 'metabolic.dream_cooldown_s': 60.0,
    'metabolic.dream_max_s': 10.0, 'effects.retry_s': 0.3,
    'pressure.period_s': 0.1, 'pressure.hold_s': 0.3, 'pressure.cgroup_dir': 'none',
    'pressure.yellow.set': 'camera:fps=10.0', 'pressure.red.set': 'camera:fps=5.0',
    **{f'metabolic.dwell.{s}': 0.3 for s in ('focus', 'rest', 'dream', 'crisis')},
    'metabolic.dwell.wake': 1.0,
}
FPS = {'WAKE': 15.0, 'FOCUS': 30.0, 'REST': 5.0, 'DREAM': 2.0, 'CRISIS': 5.0}


class Fakes(Node):
    """The rest of the graph: camera/snarc/encoder parameters, memory Sleep, salience, taps."""

    def __init__(self, context) -> None:
        super().__init__('scenario_fakes', context=context)
        self.params: dict[tuple[str, str], list] = {}
        self.remote_nodes = []
        offsets = {f'threshold.offset.{s}': 0.0
                   for s in ('wake', 'focus', 'rest', 'dream', 'crisis')}
        for name, decl in (('camera', {'fps': 20.0}), ('snarc', offsets),
                           ('vision_encoder', {'unload_states': 'DREAM,CRISIS',
                                               'unload_on_memory_red': True}),
                           ('audio_encoder', {'unload_states': 'DREAM,CRISIS',
                                              'unload_on_memory_red': True}),
                           ('language_encoder', {'unload_states': 'DREAM,CRISIS',
                                                 'unload_on_memory_red': True})):
            node = Node(name, context=context)
            for p, v in decl.items():
                node.declare_parameter(p, v)
            node.add_post_set_parameters_callback(
                lambda ps, n=name: [self.params.setdefault((n, p.name), []).append(p.value)
                                    for p in ps])
            self.remote_nodes.append(node)
        self.sleep_calls: list[str] = []
        self.create_service(Sleep, '/sage/memory/sleep', self._sleep,
                            callback_group=ReentrantCallbackGroup())
        self.states: list[MetabolicState] = []
        self.budgets: list[AtpBudget] = []
        self.create_subscription(MetabolicState, '/sage/metabolic_state',
                                 self.states.append, LATCHED_QOS)
        self.create_subscription(AtpBudget, '/sage/budget', self.budgets.append, RELIABLE_QOS)
        self.salience = self.create_publisher(Salience, '/sage/salience', RELIABLE_QOS)

    def _sleep(self, request, response):
        self.sleep_calls.append(request.reason)
        if len(self.sleep_calls) == 1:
            time.sleep(3.0)  # a long consolidation: the salience spike preempts it
        response.success, response.message = True, 'consolidated'
        response.examined, response.consolidated = 40, 3
        return response

    def publish(self, modality: str, value: float) -> None:
        t = self.get_clock().now().nanoseconds * 1e-9
        self.salience.publish(salience_to_msg(SalienceRecord(
            t, modality, 0, 0, 0, 0, 0, 0, value, 0.5, value >= 0.5)))

    def state(self) -> str:
        return self.states[-1].state if self.states else ''


def throttled(fn, period_s: float):
    """fn, run at most once per period_s: a stimulus repeated only until the node has had
    time to act on it (copies queued behind a busy executor arrive late, and a late 0.9
    re-entered FOCUS after the scenario had left it)."""
    last = -float('inf')

    def call() -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= period_s:
            last = now
            fn()
    return call


def wait(cond, timeout: float, what: str, each=None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if each is not None:
            each()
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f'timed out waiting for {what}')


@pytest.mark.timeout(200)
def test_scripted_scenario_drives_every_state_with_its_effects_on_the_graph(
        tmp_path, make_proc, fixtures, monkeypatch):
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    # The scenario runs on real timers: every wait below is judged on what the graph
    # published (the transitions, the history of camera rates), never on a state that a
    # loaded machine may already have left, so one run decides.
    _scenario(tmp_path, make_proc, fixtures)


def _scenario(tmp_path, make_proc, fixtures) -> None:
    proc = make_proc(tmp_path / 'proc', 'psi_calm.txt', 'meminfo_8gb_ok.txt')
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN_ID)
    overrides = [Parameter(k, value=v) for k, v in PARAMS.items()]
    overrides += [Parameter('state_dir', value=str(tmp_path / 'state')),
                  Parameter('pressure.proc_root', value=str(proc))]
    fakes = Fakes(ctx)
    fake_exec = MultiThreadedExecutor(num_threads=3, context=ctx)
    for n in [fakes, *fakes.remote_nodes]:
        fake_exec.add_node(n)
    orch = OrchestratorNode(context=ctx, parameter_overrides=overrides)
    orch_exec = SingleThreadedExecutor(context=ctx)
    orch_exec.add_node(orch)
    threads = [threading.Thread(target=e.spin, daemon=True) for e in (fake_exec, orch_exec)]
    for th in threads:
        th.start()
    def path() -> list[tuple[str, str]]:
        # The published transitions (state + reason changes), as (previous, state).
        changes, last = [], None
        for m in list(fakes.states):
            if (m.state, m.reason) != last:
                last = (m.state, m.reason)
                changes.append(m)
        return [(m.previous, m.state) for m in changes[1:]]

    def rates() -> list[float]:
        return list(fakes.params.get(('camera', 'fps'), []))

    def scenario() -> list[tuple[str, str]]:
        # The path from the scripted FOCUS on. Before it, a loaded machine may deliver the
        # first 0.9 later than idle_rest_s: WAKE -> REST -> WAKE, the node idling as it
        # should, not part of the scenario (CI at 7da892e and c08bc1b: 'timed out waiting
        # for FOCUS' when the path had to begin with it).
        p = path()
        return p[p.index(('WAKE', 'FOCUS')):] if ('WAKE', 'FOCUS') in p else []

    def rate_since(mark: int, value: float) -> bool:
        return value in rates()[mark:]

    try:
        gating = [(n, p) for n in ('vision_encoder', 'audio_encoder', 'language_encoder')
                  for p in ('unload_states', 'unload_on_memory_red')]
        # Mild activity (below every threshold) keeps WAKE from resting while the start's
        # effects are set.
        busy = lambda: fakes.publish('vision', 0.35)  # noqa: E731
        wait(lambda: fakes.state() == 'WAKE' and rate_since(0, FPS['WAKE'])
             and all(k in fakes.params for k in gating), 30.0, 'WAKE and its effects',
             throttled(busy, 0.2))
        assert fakes.params[('vision_encoder', 'unload_states')][-1] == ''
        assert fakes.params[('language_encoder', 'unload_states')][-1] == 'DREAM,CRISIS'
        assert fakes.params[('vision_encoder', 'unload_on_memory_red')][-1] is False
        assert fakes.params[('language_encoder', 'unload_on_memory_red')][-1] is True

        mark = len(rates())
        # A 0.9 a second until FOCUS is seen: one that comes while FOCUS holds (1.2 s from
        # 0.9 to focus_exit) only extends it.
        wait(lambda: bool(scenario()), 20.0, 'FOCUS',
             throttled(lambda: fakes.publish('vision', 0.9), 1.0))
        wait(lambda: rate_since(mark, FPS['FOCUS']), 10.0, 'camera at FOCUS rate')
        mark = len(rates())
        wait(lambda: ('WAKE', 'REST') in scenario(), 40.0, 'FOCUS -> WAKE -> REST')
        wait(lambda: rate_since(mark, FPS['REST']), 10.0, 'camera at REST rate')
        # The first consolidation takes 3 s: the spike arrives while DREAM waits for it.
        wait(lambda: path()[-1:] == [('REST', 'DREAM')] and fakes.sleep_calls, 30.0,
             'DREAM + Sleep')
        # Salience is best effort: the spike is sent again if no preemption is seen in 1.5 s.
        wait(lambda: ('DREAM', 'WAKE') in scenario(), 10.0, 'the spike preempting DREAM',
             throttled(lambda: fakes.publish('audio', 0.95), 1.5))
        assert FPS['DREAM'] in rates()
        wait(lambda: ('DREAM', 'REST') in scenario() and len(fakes.sleep_calls) == 2, 40.0,
             'REST, DREAM again and the finished sleep ending it')

        # From here on mild activity keeps WAKE from resting again.
        shutil.copyfile(fixtures / 'psi_heavy.txt', proc / 'pressure' / 'memory')
        shutil.copyfile(fixtures / 'meminfo_8gb_critical.txt', proc / 'meminfo')
        # (REST already runs the camera at the CRISIS rate: no new set is needed.)
        wait(lambda: ('REST', 'CRISIS') in scenario() and rates()[-1] == FPS['CRISIS'], 15.0,
             'CRISIS on red memory pressure and its camera rate', busy)
        mark = len(rates())
        shutil.copyfile(fixtures / 'psi_calm.txt', proc / 'pressure' / 'memory')
        shutil.copyfile(fixtures / 'meminfo_8gb_ok.txt', proc / 'meminfo')
        wait(lambda: ('CRISIS', 'WAKE') in scenario() and rate_since(mark, FPS['WAKE']), 15.0,
             'recovery from CRISIS and the WAKE rate', busy)
        for _ in range(10):
            busy()
            time.sleep(0.05)
        # The scenario ends here. Once the activity stops, WAKE may rest again while the
        # executors shut down (on a loaded machine that can take longer than idle_rest_s):
        # that is not part of the path under test.
        states = list(fakes.states)
    finally:
        for e in (fake_exec, orch_exec):
            e.shutdown()
        orch.close()
        rclpy.try_shutdown(context=ctx)
        for th in threads:
            th.join(timeout=5.0)

    changes = []
    for m in states:
        if not changes or (m.state, m.reason) != (changes[-1].state, changes[-1].reason):
            changes.append(m)
    first = [(m.previous, m.state) for m in changes].index(('WAKE', 'FOCUS'))
    changes = changes[first - 1:]  # from the WAKE the scripted FOCUS left (see scenario())
    assert [(m.previous, m.state) for m in changes[1:]] == [
        ('WAKE', 'FOCUS'), ('FOCUS', 'WAKE'), ('WAKE', 'REST'), ('REST', 'DREAM'),
        ('DREAM', 'WAKE'), ('WAKE', 'REST'), ('REST', 'DREAM'), ('DREAM', 'REST'),
        ('REST', 'CRISIS'), ('CRISIS', 'WAKE')]
    reasons = [m.reason for m in changes[1:]]
    for fragment, reason in zip(['focus_enter', 'focus_exit', 'idle_rest_s', 'idle_dream_s',
                                 'preempted', 'idle_rest_s', 'idle_dream_s',
                                 'sleep finished: consolidated (examined 40, consolidated 3)',
                                 'memory pressure red', 'recovered'], reasons):
        assert fragment in reason
    assert changes[-2].memory_pressure == 'red' and changes[-1].memory_pressure == 'green'
    assert fakes.sleep_calls[0].startswith('idle')
    # Each state's budget is budget_per_tick times its scale.
    scale = {'WAKE': 1.0, 'FOCUS': 1.5, 'REST': 0.4, 'DREAM': 0.2, 'CRISIS': 0.3}
    seen = {b.metabolic_state: b.budget_total for b in fakes.budgets}
    assert seen == pytest.approx({s: 10.0 * k for s, k in scale.items()})
    # The camera followed the states: WAKE, FOCUS, WAKE, REST, DREAM ... CRISIS, WAKE.
    # (A retried SetParameters may set the same rate twice: that is one effect.)
    rates = [r for i, r in enumerate(fakes.params[('camera', 'fps')])
             if i == 0 or r != fakes.params[('camera', 'fps')][i - 1]]
    focus = rates.index(FPS['FOCUS'])
    assert rates[focus - 1:focus + 4] == [15.0, 30.0, 15.0, 5.0, 2.0]
    assert rates[-2:] == [5.0, 15.0]
    # SNARC got every state's attend-threshold offset.
    assert {s: fakes.params[('snarc', f'threshold.offset.{s}')][-1]
            for s in ('wake', 'focus', 'rest', 'dream', 'crisis')} == {
        'wake': 0.0, 'focus': -0.05, 'rest': 0.1, 'dream': 0.25, 'crisis': 0.15}
