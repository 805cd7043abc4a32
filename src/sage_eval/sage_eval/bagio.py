"""rosbags plumbing shared by the scenario writer and the offline replay (no rclpy)."""
from __future__ import annotations

from functools import lru_cache

from rosbags.typesys.store import Typestore

from sage_common.typestore import sage_typestore
from sage_common.vocabulary import absolute, LATENT_MODALITIES, Topic

# Bags hold resolved names: a graph with no namespace records /sage/... (vocabulary.absolute).
CAMERA_TOPIC = absolute(Topic.CAMERA_IMAGE)
AUDIO_TOPIC = absolute(Topic.AUDIO_FRAMES)
IMU_TOPIC = absolute(Topic.IMU)
TEXT_TOPIC = absolute(Topic.TEXT_IN)
REWARD_TOPIC = absolute(Topic.REWARD)
STATE_TOPIC = absolute(Topic.METABOLIC_STATE)
BUDGET_TOPIC = absolute(Topic.BUDGET)
LATENT_TOPICS = {m: absolute(Topic.latent(m)) for m in LATENT_MODALITIES}
__all__ = ['AUDIO_TOPIC', 'BUDGET_TOPIC', 'CAMERA_TOPIC', 'IMU_TOPIC', 'LATENT_TOPICS',
           'REWARD_TOPIC', 'STATE_TOPIC', 'TEXT_TOPIC', 'typestore']


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """Typestore with every sage_interfaces message registered (built once per process)."""
    return sage_typestore()
