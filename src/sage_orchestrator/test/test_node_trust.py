"""Node test: trust learned from real remote plugins on the graph, and kept across a restart.

Two encoder stand-ins refine real inputs with the ATP the orchestrator gives them on
/sage/budget (sage_common.irp.refine) and report in Latent: one converges well, one blows up
(non-finite energy: 'diverged'); the language encoder is dead. The good one gains trust and
budget, the others lose them; a new orchestrator node starts from the saved trust.
"""
from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from sage_common.convert import latent_to_msg
from sage_common.records import LatentRecord
from sage_common.ros import RELIABLE_QOS
from sage_interfaces.msg import AtpBudget, Latent
from sage_orchestrator.orchestrator_node import OrchestratorNode
from sage_orchestrator.plugins import QuadraticDenoise, RefineSettings, run_refine

# The run's domain block (root conftest) plus this file's own offset.
DOMAIN_ID = int(os.environ.get('SAGE_TEST_DOMAIN_BASE', '90')) + 12
PARAMS = {
    'plugins': 'vision_encoder:vision:stream,audio_encoder:audio:stream,'
               'language_encoder:language:stream',
    'tick_hz': 20.0, 'report_timeout_s': 0.5, 'startup_grace_s': 0.5, 'trust.rate': 0.2,
    'persist_period_s': 60.0, 'pressure.cgroup_dir': 'none', 'effects.camera_fps': '',
    'effects.threshold': '', 'effects.unload_states_param': '',
    'effects.unload_on_red_param': '', 'pressure.yellow.set': '', 'pressure.red.set': '',
}


class FakeEncoder(Node):
    """Refines one noisy signal per budget with the ATP allocated to `plugin`."""

    def __init__(self, context, plugin: str, modality: str, lr: float) -> None:
        super().__init__(f'fake_{plugin}', context=context)
        self.plugin, self.modality, self.lr = plugin, modality, lr
        self.rng = np.random.default_rng(len(plugin))
        self.reports = []
        self.pub = self.create_publisher(Latent, f'/sage/{modality}/latent', RELIABLE_QOS)
        self.create_subscription(AtpBudget, '/sage/budget', self._on_budget, RELIABLE_QOS)

    def _on_budget(self, msg: AtpBudget) -> None:
        atp = next((a.atp for a in msg.allocations if a.plugin == self.plugin), 0.0)
        y = np.where(np.arange(64) < 32, -1.0, 1.0) + 0.9 * self.rng.standard_normal(64)
        with np.errstate(over='ignore', invalid='ignore'):
            _, r = run_refine(QuadraticDenoise(y, lr=self.lr), atp, self.plugin,
                              RefineSettings(eps=1e-3, k=2, max_iters=12))
        self.reports.append(r)
        self.pub.publish(latent_to_msg(LatentRecord(
            stamp=0.0, modality=self.modality, input_seq=len(self.reports), codes=None,
            codebook_size=0, embedding=np.zeros(8, np.float32), iterations=r.iterations,
            energy_initial=r.energy_initial, energy_final=r.energy_final,
            converged=r.converged, halt_reason=r.halt_reason, atp_spent=r.atp_spent)))


def wait(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f'timed out waiting for {what}')


@pytest.mark.timeout(60)
def test_remote_plugins_earn_or_lose_trust_and_it_survives_a_restart(tmp_path, monkeypatch):
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN_ID)
    overrides = [Parameter(k, value=v) for k, v in PARAMS.items()]
    overrides.append(Parameter('state_dir', value=str(tmp_path / 'state')))
    budgets: list[AtpBudget] = []
    tap = Node('budget_tap', context=ctx)
    tap.create_subscription(AtpBudget, '/sage/budget', budgets.append, RELIABLE_QOS)
    good = FakeEncoder(ctx, 'vision_encoder', 'vision', lr=0.15)
    bad = FakeEncoder(ctx, 'audio_encoder', 'audio', lr=1e200)  # overflows: non-finite
    orch = OrchestratorNode(context=ctx, parameter_overrides=overrides)
    executor = SingleThreadedExecutor(context=ctx)
    for n in (tap, good, bad, orch):
        executor.add_node(n)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()

    def trust(msg: AtpBudget) -> dict:
        return {a.plugin: a.trust for a in msg.allocations}

    def share(msg: AtpBudget) -> dict:
        return {a.plugin: a.share for a in msg.allocations}

    try:
        wait(lambda: budgets and len(good.reports) > 5, 10.0, 'budgets and reports')
        first = budgets[0]
        assert trust(first) == pytest.approx({'vision_encoder': 0.5, 'audio_encoder': 0.5,
                                              'language_encoder': 0.5})
        wait(lambda: trust(budgets[-1])['vision_encoder'] > 0.8
             and trust(budgets[-1])['audio_encoder'] < 0.1
             and trust(budgets[-1])['language_encoder'] < 0.3, 15.0, 'trust to separate')
        learned = budgets[-1]
        assert share(learned)['vision_encoder'] > 0.7 > share(first)['vision_encoder']
        assert share(learned)['audio_encoder'] < share(first)['audio_encoder']
        assert share(learned)['language_encoder'] < share(first)['language_encoder']
        assert any(r.halt_reason == 'diverged' for r in bad.reports)
        assert all(r.energy_final < r.energy_initial for r in good.reports if r.iterations)

        executor.remove_node(good)
        executor.remove_node(bad)
        executor.remove_node(orch)
        orch.close()  # saves trust, as at shutdown
        orch.destroy_node()
        saved = json.loads((tmp_path / 'state' / 'orchestrator.json').read_text())
        saved_trust = saved['trust']['trust']
        assert saved_trust['vision_encoder'] > 0.8 and saved_trust['audio_encoder'] < 0.1

        budgets.clear()
        orch = OrchestratorNode(context=ctx, parameter_overrides=overrides)
        executor.add_node(orch)
        wait(lambda: budgets, 10.0, 'a budget from the restarted node')
        restarted = min(budgets, key=lambda b: b.tick)
        assert restarted.tick <= 3
        assert trust(restarted) == pytest.approx(saved_trust, abs=1e-6)
        assert share(restarted)['vision_encoder'] > 0.7
    finally:
        executor.shutdown()
        orch.destroy_node()
        rclpy.try_shutdown(context=ctx)
        spin.join(timeout=5.0)
