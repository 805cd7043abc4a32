"""Parameters of the frame mailbox path, shared by the camera (writer) and vision encoder.

When both enable it, the camera writes each frame once into a shared-memory focus tensor
mailbox (sage_cuda_mailbox) and publishes a small FrameRef on /sage/camera/frame_ref; the
encoder reads the frame in place. Without it both use /sage/camera/image_raw.
"""
from __future__ import annotations

from sage_common.params import ParamSpec
from sage_common.vocabulary import Topic

FRAME_REF_TOPIC = Topic.CAMERA_FRAME_REF

ENABLED = ParamSpec('mailbox.enabled', False,
                    'frames through the shared-memory mailbox (FrameRef on DDS): the camera '
                    'writes each frame there once and sends Image messages at '
                    'mailbox.image_rate_hz only; the encoder reads FrameRefs and still encodes '
                    'Images (a bag played), a frame that comes both ways once', read_only=True)
SEGMENT = ParamSpec('mailbox.segment', '',
                    "shared-memory segment name ('' = sage_frames_<ROS domain>_<namespace>, so "
                    'graphs on other domains or namespaces of one machine never share frames; '
                    'the encoder reads the name from each FrameRef)', read_only=True)

IMAGE_RATE = ParamSpec('mailbox.image_rate_hz', 2.0, 'Image messages still published for rviz2 '
                       'and bags while the mailbox carries frames (0 = none)', 0.0, 240.0)

WRITER_PARAMS = (
    ENABLED, SEGMENT,
    ParamSpec('mailbox.slots', 4, 'frames held at once (readers lease them)', 2, 64,
              read_only=True),
    IMAGE_RATE,
)
READER_PARAMS = (
    ENABLED,
    ParamSpec('mailbox.lease_ms', 1000, 'how long a frame view stays stable while encoding',
              1, 60000, read_only=True),
)


def default_segment(domain_id: int, namespace: str) -> str:
    """The segment a graph's camera writes when mailbox.segment is '': one per ROS domain and
    namespace (a second graph with the same name would replace the first one's segment)."""
    ns = '_'.join(part for part in namespace.split('/') if part)
    return f'sage_frames_{int(domain_id)}' + (f'_{ns}' if ns else '')
