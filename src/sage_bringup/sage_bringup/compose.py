"""`python -m sage_bringup.compose SPEC.yaml`: several SAGE nodes in one process
(one rclpy context).

The Python counterpart of a ComposableNodeContainer (which loads C++ components only): each
node keeps its own name, parameters file and remappings, given to it as its own `cli_args`,
so topics, parameters and /diagnostics are the same as when it runs alone. SPEC lists the
nodes: `nodes: [{name, module, params_file, remappings: [[from, to], ...]}]`, `ros_args` (the
graph's namespace and log level, given to rclpy.init: they hold for every node of the process)
and `threads` (launch.compose_threads): 0 (the default) gives each node a SingleThreadedExecutor
on a thread of its own, all in one rclpy context, spinning from the moment the node is built;
1 spins them all in one SingleThreadedExecutor,
N in one MultiThreadedExecutor of N threads (sage_bringup.node_groups.DEFAULT_THREADS has the
measurements).
Exit code 2 for a configuration error of any node (sage_common.ros.run's rule), so the group is
not respawned; 1 when a node's executor thread ends on an error, so the group is respawned.
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path
import sys
import threading
import time
from typing import Any

import yaml

from sage_common.errors import SageError


def node_class(module_name: str) -> type:
    """The rclpy Node subclass a node module defines (its executable's node)."""
    # lazy: keeps ROS out of this module's import
    from rclpy.node import Node
    module = importlib.import_module(module_name)
    found = [cls for _, cls in inspect.getmembers(module, inspect.isclass)
             if issubclass(cls, Node) and cls.__module__ == module.__name__]
    if len(found) != 1:
        raise ValueError(f'{module_name}: expected one Node class, found {len(found)}')
    return found[0]


def node_args(entry: dict[str, Any]) -> list[str]:
    """The node's own --ros-args, as `python -m MODULE` would get them from the Supervisor."""
    args = ['--ros-args', '-r', f'__node:={entry["name"]}', '--params-file',
            str(entry['params_file'])]
    for src, dst in entry.get('remappings', ()):
        args += ['-r', f'{src}:={dst}']
    return args


POLL_S = 0.2  # how soon the main thread sees that a node's executor thread has ended
STOP_S = 1.0  # how long each executor may take to finish its callback at shutdown


class NodeThreads:
    """Each node in its own SingleThreadedExecutor on its own thread (one wait set per node),
    started as soon as the node is built: a sensor publishes and an encoder encodes while the
    nodes after it in the group are still being built (the language encoder's model load
    takes seconds), so the first inputs are scored that much sooner."""

    def __init__(self) -> None:
        self.executors: list = []
        self.workers: list[threading.Thread] = []

    def add(self, node: Any) -> None:
        """Spin a built node on a thread of its own, from now on."""
        # lazy: keeps ROS out of this module's import
        from rclpy.executors import SingleThreadedExecutor
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        self.executors.append(executor)
        worker = threading.Thread(target=executor.spin, name=node.get_name(), daemon=True)
        self.workers.append(worker)
        worker.start()

    def wait(self) -> int:
        """Until one thread ends (returns 1: the process exits and the group is respawned)
        or SIGINT arrives (KeyboardInterrupt, raised here in the main thread)."""
        while all(w.is_alive() for w in self.workers):
            time.sleep(POLL_S)
        return 1

    def stop(self) -> None:
        """Shut every executor down and wait for its thread: the nodes are destroyed next,
        and no thread may still be inside spin then (a thread left in rcl's wait at exit
        aborts the process)."""
        for executor in self.executors:
            executor.shutdown(timeout_sec=STOP_S)
        for worker in self.workers:
            worker.join(timeout=STOP_S)


def main(argv: list[str] | None = None) -> int:
    # lazy: keeps ROS out of this module's import
    import rclpy
    from rclpy.executors import (ExternalShutdownException, MultiThreadedExecutor,
                                 SingleThreadedExecutor)
    from rclpy.signals import SignalHandlerOptions
    from sage_common.ros import close_node

    argv = sys.argv[1:] if argv is None else argv
    spec = yaml.safe_load(Path(argv[0]).read_text())
    # SIGINT stays Python's KeyboardInterrupt: every node closes (capture threads stop) while
    # the context is still valid; rclpy's handler would shut the context down under them
    ros_args = [str(a) for a in spec.get('ros_args') or ()]
    rclpy.init(args=[sys.argv[0], '--ros-args', *ros_args] if ros_args else None,
               signal_handler_options=SignalHandlerOptions.NO)
    nodes = []
    code = 0
    threads = int(spec.get('threads', 0))
    each = NodeThreads() if threads == 0 else None
    try:
        for entry in spec['nodes']:
            nodes.append(node_class(entry['module'])(cli_args=node_args(entry)))
            if each is not None:
                each.add(nodes[-1])
        if each is not None:
            code = each.wait()
        else:
            executor = (SingleThreadedExecutor() if threads == 1
                        else MultiThreadedExecutor(num_threads=threads))
            for node in nodes:
                executor.add_node(node)
            executor.spin()
    except SageError as err:
        print(f'ERROR: {err}', file=sys.stderr, flush=True)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if each is not None:
            each.stop()
        for node in reversed(nodes):
            close_node(node)
        rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
