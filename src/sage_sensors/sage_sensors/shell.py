"""Small rclpy helpers shared by the three sensor node shells."""
from __future__ import annotations

from collections.abc import Callable

from rclpy.node import Node

from sage_common.health import Level


def node_clock(node: Node) -> Callable[[], float]:
    """The node clock as a float-seconds function (what stamps are made of)."""
    clock = node.get_clock()
    return lambda: clock.now().nanoseconds * 1e-9


def level_logger(node: Node) -> Callable[[Level, str], None]:
    """log(level, message) onto the node's logger (OK -> info, WARN, ERROR)."""
    logger = node.get_logger()

    def log(level: Level, message: str) -> None:
        if level >= Level.ERROR:
            logger.error(message)
        elif level >= Level.WARN:
            logger.warning(message)
        else:
            logger.info(message)
    return log
