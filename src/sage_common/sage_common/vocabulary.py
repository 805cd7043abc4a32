"""SAGE's shared vocabulary: metabolic states, salience axes, modalities and topic names.

Every package names these through this module (a test fails on a topic literal or a state name
written anywhere else); the message definitions in sage_interfaces stay the wire contract.

Topic, service and action names are relative ('sage/salience'), so a node's namespace moves the
whole graph (`sage launch --namespace /r1`: /r1/sage/salience); with no namespace they resolve
to DESIGN.md's /sage/... names. /diagnostics and /clock stay absolute (the ROS conventions).
Bags hold resolved names: readers match `absolute(name)` (the un-namespaced /sage/... name).
Pure Python: no rclpy, so cores and offline tools import it too. QoS profiles live beside the
rclpy helpers in `sage_common.ros`.
"""
from __future__ import annotations

from enum import Enum


class MetabolicState(str, Enum):
    """The five metabolic states (values equal sage_interfaces/MetabolicState constants)."""

    WAKE = 'WAKE'
    FOCUS = 'FOCUS'
    REST = 'REST'
    DREAM = 'DREAM'
    CRISIS = 'CRISIS'

    @property
    def key(self) -> str:
        """Lower-case name used in parameter keys (threshold.offset.wake, state.rest.*)."""
        return self.value.lower()


STATES: tuple[MetabolicState, ...] = tuple(MetabolicState)
STATE_NAMES: tuple[str, ...] = tuple(s.value for s in STATES)
STATE_KEYS: tuple[str, ...] = tuple(s.key for s in STATES)

# Salience axes, in the order of the Salience message fields.
AXES: tuple[str, ...] = ('surprise', 'novelty', 'arousal', 'reward', 'conflict')

# Modalities (the strings of Latent.modality and Salience.modality).
VISION, AUDIO, IMU, LANGUAGE = 'vision', 'audio', 'imu', 'language'
MODALITIES: tuple[str, ...] = (VISION, AUDIO, IMU, LANGUAGE)
# Modalities that arrive as encoder latents (IMU is scored from raw samples).
LATENT_MODALITIES: tuple[str, ...] = (VISION, AUDIO, LANGUAGE)
# Modalities whose latents carry a puzzle code grid.
PUZZLE_MODALITIES: tuple[str, ...] = (VISION, AUDIO)

PREFIX = 'sage/'  # relative: resolved under the node's namespace


class Topic:
    """Topic and service names (DESIGN.md's table)."""

    CAMERA_IMAGE = 'sage/camera/image_raw'
    CAMERA_INFO = 'sage/camera/camera_info'
    CAMERA_FRAME_REF = 'sage/camera/frame_ref'
    AUDIO_FRAMES = 'sage/audio/frames'
    IMU = 'sage/imu/data'
    TEXT_IN = 'sage/text/in'
    SALIENCE = 'sage/salience'
    REWARD = 'sage/reward'
    BUDGET = 'sage/budget'
    METABOLIC_STATE = 'sage/metabolic_state'
    MEMORY_STORED = 'sage/memory/stored'
    MEMORY_QUERY = 'sage/memory/query'
    MEMORY_SLEEP = 'sage/memory/sleep'
    # The Sleep action (feedback, cancel) beside the Sleep service, under the same name: an
    # action's own services and topics live under <name>/_action/, and a remapping of the
    # name (the workstation profile's shared_memory) moves both.
    MEMORY_SLEEP_ACTION = MEMORY_SLEEP
    MEMORY_CHECKPOINT = 'sage/memory/checkpoint'
    MEMORY_STATE = 'sage/memory/state'
    MODELS_LIVE = 'sage/models/live'
    VISION_LATENT = 'sage/vision/latent'
    AUDIO_LATENT = 'sage/audio/latent'
    LANGUAGE_LATENT = 'sage/language/latent'
    VIZ_MARKERS = 'sage/viz/markers'
    VIZ_SALIENCE_OVERLAY = 'sage/viz/salience_overlay'
    DIAGNOSTICS = '/diagnostics'
    CLOCK = '/clock'

    @staticmethod
    def latent(modality: str) -> str:
        """sage/<modality>/latent."""
        return f'{PREFIX}{modality}/latent'

    @staticmethod
    def latent_initial(modality: str) -> str:
        """sage/<modality>/latent_initial: a puzzle encoder's latent before refinement
        (halt_reason 'pending'; the refined one follows on sage/<modality>/latent)."""
        return f'{PREFIX}{modality}/latent_initial'

    @staticmethod
    def encoder_input(modality: str) -> str:
        """sage/<modality>/encoder_input: the encoder's service for what it encoded."""
        return f'{PREFIX}{modality}/encoder_input'

    @staticmethod
    def viz_puzzle(modality: str) -> str:
        """The viz node's image of a modality's puzzle grid."""
        return f'{PREFIX}viz/puzzle/{modality}'

    @staticmethod
    def viz_salience(modality: str) -> str:
        """The viz node's per-modality salience series (for PlotJuggler)."""
        return f'{PREFIX}viz/salience/{modality}'


class LiveView:
    """Channels of the Foxglove live view (sage.foxglove_node) that are no graph topic's name.

    Its other channels carry the name of the graph topic they show (Topic.BUDGET, ...);
    config/foxglove/sage_layout.json names both.
    """

    CAMERA = '/sage/camera/image_raw/compressed'  # the camera as JPEG, at a capped rate
    SCENE = '/sage/viz/scene'                     # the viz markers as a foxglove.SceneUpdate
    MEMORY = '/sage/memory/summary'               # rows, the last stored experience, sleep
    LOG = '/rosout'                               # every node's log (rcl_interfaces/Log in)


def absolute(name: str, namespace: str = '') -> str:
    """A relative name resolved under namespace ('' or '/': the root, as bags recorded a graph
    with no namespace: 'sage/salience' -> '/sage/salience'); an absolute name stays as it is."""
    if name.startswith('/'):
        return name
    ns = namespace.strip('/')
    return f'/{ns}/{name}' if ns else f'/{name}'


LATENT_TOPICS: dict[str, str] = {m: Topic.latent(m) for m in LATENT_MODALITIES}
# What sensors and operators feed the graph (the rest is the graph's own output). frame_ref is
# left out: it points into the recording camera's shared memory, which a player does not have.
INPUT_TOPICS: tuple[str, ...] = (Topic.CAMERA_IMAGE, Topic.CAMERA_INFO, Topic.AUDIO_FRAMES,
                                 Topic.IMU, Topic.TEXT_IN, Topic.REWARD)
