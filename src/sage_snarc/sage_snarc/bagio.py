"""rosbags plumbing shared by the scenario writer and the offline replay (no rclpy)."""
from __future__ import annotations

from functools import lru_cache

from rosbags.typesys.store import Typestore

from sage_common.typestore import sage_typestore

CAMERA_TOPIC = '/sage/camera/image_raw'
AUDIO_TOPIC = '/sage/audio/frames'
IMU_TOPIC = '/sage/imu/data'
TEXT_TOPIC = '/sage/text/in'
REWARD_TOPIC = '/sage/reward'
STATE_TOPIC = '/sage/metabolic_state'
BUDGET_TOPIC = '/sage/budget'
LATENT_TOPICS = {'vision': '/sage/vision/latent', 'audio': '/sage/audio/latent',
                 'language': '/sage/language/latent'}


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """Typestore with every sage_interfaces message registered (built once per process)."""
    return sage_typestore()
