"""The live model versions the memory node publishes (Topic.MODELS_LIVE), read by the encoders
(which swap the version in) and SNARC (which adds the version's re-embedded memories).

std_msgs/String JSON, latched:
    {"vision": {"version": "v0002", "path": "/abs/dir/of/v0002"},
     "audio": {"version": "packaged", "path": ""}}
'packaged' names the encoder's own model_dir (what it loaded at start); any other version
names a complete model folder (the packaged file names). Pure: no rclpy.
"""
from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path

from sage_encoders.errors import ModelError
from sage_encoders.model_versions import PACKAGED


@dataclass(frozen=True)
class LiveModel:
    """One modality's live version and the folder it loads from."""

    version: str
    directory: Path


def live_model(data: str, modality: str, start_dir: Path) -> LiveModel | None:
    """The entry of `modality` in a MODELS_LIVE message.

    Args:
        data: the message's JSON text.
        modality: 'vision' or 'audio'.
        start_dir: the encoder's model_dir, where 'packaged' points.

    Returns:
        The version and folder; None when the message has no entry for this modality.

    Raises:
        ModelError: the message is not a JSON object, or the entry lacks a version or (not
            'packaged') a path; the message says which.
    """
    try:
        doc = json.loads(data)
    except (TypeError, ValueError) as err:
        raise ModelError(f'live models message is not JSON: {err}') from err
    if not isinstance(doc, dict):
        raise ModelError(f'live models message is not a JSON object: {data[:80]!r}')
    entry = doc.get(modality)
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise ModelError(f'live models entry for {modality} is not an object: {entry!r}')
    version, path = entry.get('version'), entry.get('path', '')
    if not isinstance(version, str) or not version:
        raise ModelError(f'live models entry for {modality} has no version: {entry!r}')
    if not isinstance(path, str):
        raise ModelError(f'live models entry for {modality}: path is not a string: {path!r}')
    if version == PACKAGED:
        return LiveModel(PACKAGED, start_dir)
    if not path:
        raise ModelError(f'live models entry for {modality} names version {version!r} '
                         'without a path')
    return LiveModel(version, Path(path).expanduser())
