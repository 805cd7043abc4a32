"""`sage memory sleep`: ask the running graph's memory node to sleep now (Sleep service).

The same call the orchestrator makes on entering DREAM: consolidation into patterns, then (with
sleep.retrain.enabled) fine-tuning the encoders on the inputs stored since the last retraining.
Run by hand it is not preempted by the metabolic state; Ctrl-C stops waiting, not the sleep.
"""
from __future__ import annotations

import sys
from typing import TextIO

from sage_common.vocabulary import Topic

# How long to wait for the memory node's service to be discovered.
DISCOVERY_TIMEOUT_S = 10.0


def run_memory_sleep(max_duration_s: float, out: TextIO | None = None,
                     err: TextIO | None = None) -> int:
    """Call /sage/memory/sleep; print its answer. 0 on success, 1 when it failed, 2 unreachable."""
    # lazy: keeps ROS out of this module's import
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from sage_interfaces.srv import Sleep

    out = out or sys.stdout
    err = err or sys.stderr
    context = Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node('sage_memory_sleep', context=context)
        client = node.create_client(Sleep, Topic.MEMORY_SLEEP)
        if not client.wait_for_service(timeout_sec=DISCOVERY_TIMEOUT_S):
            print(f'no memory node answers {Topic.MEMORY_SLEEP} on this domain '
                  f'(waited {DISCOVERY_TIMEOUT_S:g} s): is the graph running?', file=err)
            return 2
        future = client.call_async(Sleep.Request(max_duration_s=float(max_duration_s),
                                                 reason='sage memory sleep'))
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        # The node bounds the sleep by max_duration_s; a margin for the answer to come back.
        executor.spin_until_future_complete(future, timeout_sec=max_duration_s + 30.0)
        resp = future.result()
        if resp is None:
            print('no answer from the memory node', file=err)
            return 2
        print(resp.message, file=out)
        print(f'examined {resp.examined}, patterns written {resp.consolidated}', file=out)
        return 0 if resp.success else 1
    finally:
        context.try_shutdown()
