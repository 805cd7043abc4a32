"""rosbags plumbing shared by the scenario writer and the offline replay (no rclpy)."""
from __future__ import annotations

from functools import lru_cache
import os
from pathlib import Path
import sys

from rosbags.typesys import Stores, get_typestore, get_types_from_msg
from rosbags.typesys.store import Typestore

from sage_snarc.errors import ReplayError

CAMERA_TOPIC = '/sage/camera/image_raw'
AUDIO_TOPIC = '/sage/audio/frames'
IMU_TOPIC = '/sage/imu/data'
TEXT_TOPIC = '/sage/text/in'
REWARD_TOPIC = '/sage/reward'
STATE_TOPIC = '/sage/metabolic_state'
LATENT_TOPICS = {'vision': '/sage/vision/latent', 'audio': '/sage/audio/latent',
                 'language': '/sage/language/latent'}


def msg_dir() -> Path:
    """Folder holding sage_interfaces/msg/*.msg (env, installed share, or the source tree).

    Raises:
        ReplayError: no folder with the message definitions was found.
    """
    candidates = []
    if os.environ.get('SAGE_INTERFACES_MSG_DIR'):
        candidates.append(Path(os.environ['SAGE_INTERFACES_MSG_DIR']))
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / 'share' / 'sage_interfaces' / 'msg')
    candidates.append(Path(sys.prefix) / 'share' / 'sage_interfaces' / 'msg')
    candidates.append(Path(__file__).resolve().parents[2] / 'sage_interfaces' / 'msg')
    for path in candidates:
        if (path / 'Latent.msg').is_file():
            return path
    raise ReplayError('cannot find sage_interfaces/msg/*.msg (set SAGE_INTERFACES_MSG_DIR)')


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """ROS 2 Kilted typestore with every sage_interfaces message registered."""
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted(msg_dir().glob('*.msg')):
        types.update(get_types_from_msg(path.read_text(), f'sage_interfaces/msg/{path.stem}'))
    store.register(types)
    return store
