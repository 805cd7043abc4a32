"""`python -m sage.compose SPEC.yaml`: several SAGE nodes in one process under one executor.

The Python counterpart of a ComposableNodeContainer (which loads C++ components only): each
node keeps its own name, parameters file and remappings, given to it as its own `cli_args`,
so topics, parameters and /diagnostics are the same as when it runs alone. SPEC lists the
nodes: `nodes: [{name, module, params_file, remappings: [[from, to], ...]}]`, and `threads`:
1 (the default) spins them in a SingleThreadedExecutor, N in a MultiThreadedExecutor of N
threads (sage.node_groups.DEFAULT_THREADS says why one). Exit code 2 for a
configuration error of any node (sage_common.ros.run's rule), so the group is not respawned.
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path
import sys
from typing import Any

import yaml


def node_class(module_name: str) -> type:
    """The rclpy Node subclass a node module defines (its executable's node)."""
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


def main(argv: list[str] | None = None) -> int:
    import rclpy
    from rclpy.executors import (ExternalShutdownException, MultiThreadedExecutor,
                                 SingleThreadedExecutor)
    from rclpy.signals import SignalHandlerOptions
    from sage_common.ros import close_node

    from sage_common.errors import SageError
    argv = sys.argv[1:] if argv is None else argv
    spec = yaml.safe_load(Path(argv[0]).read_text())
    # SIGINT stays Python's KeyboardInterrupt: every node closes (capture threads stop) while
    # the context is still valid; rclpy's handler would shut the context down under them
    rclpy.init(args=None, signal_handler_options=SignalHandlerOptions.NO)
    nodes = []
    code = 0
    try:
        for entry in spec['nodes']:
            nodes.append(node_class(entry['module'])(cli_args=node_args(entry)))
        threads = int(spec.get('threads', 1))
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
        for node in reversed(nodes):
            close_node(node)
        rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
