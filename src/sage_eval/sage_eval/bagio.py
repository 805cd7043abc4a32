"""rosbags plumbing shared by the scenario writer and the offline replay (no rclpy)."""
from __future__ import annotations

from functools import lru_cache

from rosbags.typesys.store import Typestore

from sage_common.typestore import sage_typestore
from sage_common.vocabulary import LATENT_TOPICS, Topic

CAMERA_TOPIC = Topic.CAMERA_IMAGE
AUDIO_TOPIC = Topic.AUDIO_FRAMES
IMU_TOPIC = Topic.IMU
TEXT_TOPIC = Topic.TEXT_IN
REWARD_TOPIC = Topic.REWARD
STATE_TOPIC = Topic.METABOLIC_STATE
BUDGET_TOPIC = Topic.BUDGET
__all__ = ['AUDIO_TOPIC', 'BUDGET_TOPIC', 'CAMERA_TOPIC', 'IMU_TOPIC', 'LATENT_TOPICS',
           'REWARD_TOPIC', 'STATE_TOPIC', 'TEXT_TOPIC', 'typestore']


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """Typestore with every sage_interfaces message registered (built once per process)."""
    return sage_typestore()
