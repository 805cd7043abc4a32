"""Learned trust survives a restart through the memory node (no local state file)."""
from __future__ import annotations

import json
import os
import sys

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from std_msgs.msg import String

from sage_bringup.environment import graph_env
from sage_bringup.profile import load_profile
from sage_bringup.supervisor import Supervisor, SupervisorConfig
from sage_common.ros import LATCHED_QOS, MEMORY_STATE_TOPIC, spin_until
from sage_orchestrator.orchestrator_node import OrchestratorNode

pytestmark = pytest.mark.graph


def test_trust_checkpointed_to_memory_comes_back_in_a_new_orchestrator(ros_domain, tmp_path):
    profile = load_profile('nano', [f'memory.data_dir={tmp_path / "mem"}'])
    env = dict(os.environ, **graph_env(profile, ros_domain))
    memory = Supervisor((profile.node('memory'),), tmp_path / 'run', env,
                        SupervisorConfig(grace_s=3.0), python=sys.executable,
                        log=lambda s: None)
    memory.start()
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    no_file = [Parameter('state_dir', value='')]
    try:
        ex = SingleThreadedExecutor(context=ctx)
        states: list[dict] = []
        tap = rclpy.create_node('state_tap', context=ctx)
        tap.create_subscription(String, MEMORY_STATE_TOPIC,
                                lambda m: states.append(json.loads(m.data)), LATCHED_QOS)
        ex.add_node(tap)

        first = OrchestratorNode(context=ctx, parameter_overrides=no_file)
        learned = first.core.state_dict()
        learned['trust']['trust'] = {'vision_encoder': 0.91, 'audio_encoder': 0.12,
                                     'language_encoder': 0.5}
        first.core.load_state_dict(learned)
        ex.add_node(first)
        # Saved while the memory node runs: it stores the checkpoint and republishes it.
        assert spin_until(ex, lambda: (first.save_state() or True) and any(
            'orchestrator' in s.get('states', {}) for s in states), 30.0), states
        ex.remove_node(first)
        first.destroy_node()

        second = OrchestratorNode(context=ctx, parameter_overrides=no_file)
        ex.add_node(second)
        assert second.core.trust.values['vision_encoder'] == 0.5   # nothing local
        assert spin_until(ex, lambda: second.restored, 15.0)
        assert second.core.trust.values['vision_encoder'] == pytest.approx(0.91)
        assert second.core.trust.values['audio_encoder'] == pytest.approx(0.12)
        ex.remove_node(second)
        second.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
        memory.stop()
