"""Where the packaged models live and what their metadata says (pure: no torch, no ORT).

Each puzzle model `<modality>` ships in `sage_encoders/models/` as:
  <modality>_vqvae.pt             torch weights + config (training, parity tests)
  <modality>_vqvae.json           config, preprocessing, training record, evaluation
  <modality>_codebook.npy         (K, D) float32 codebook (numpy quantisation at inference)
  <modality>_{encoder,decoder}.{fp32,fp16,int8}.onnx   inference graphs
  <modality>_quality.json         FP16/INT8 quality report against FP32
MiniLM (`minilm_l6_v2.{fp32,int8}.onnx` + tokenizer.json) is exported at install time by
`python -m sage_encoders.export language` (90 MB: not committed); where no install step ran
(a colcon build) it is looked for along `search_dirs` and exported on first use
(`sage_encoders.minilm_locate`).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from sage_encoders.errors import ModelError

Precision = Literal['fp32', 'fp16', 'int8']
PRECISIONS: tuple[str, ...] = ('fp32', 'fp16', 'int8')
PACKAGED = 'packaged'  # the version name of the models a package ships
VERSION_FILE = 'version.json'  # in a version folder made by sleep (sage_encoders.model_versions)
PACKAGED_DIR = Path(__file__).resolve().parent / 'models'
# Models of this user (MiniLM exported on first use), beside the memory's default data_dir.
USER_MODEL_DIR = '~/.local/share/sage/models'


def model_dir(path: str) -> Path:
    """The model directory named by a parameter ('' = the packaged models)."""
    return Path(path).expanduser() if path else PACKAGED_DIR


def user_model_dir() -> Path:
    """This user's model folder (USER_MODEL_DIR, expanded)."""
    return Path(USER_MODEL_DIR).expanduser()


def search_dirs(path: str) -> list[Path]:
    """Folders where a model named by a model_dir parameter is looked for, in order.

    An explicit path is the only place. '' = the packaged models (a venv install, a colcon
    --symlink-install), then share/sage_encoders/models under every AMENT_PREFIX_PATH prefix
    (a colcon install, a system image), then this user's folder.
    """
    if path:
        return [Path(path).expanduser()]
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    return [PACKAGED_DIR, *(Path(p) / 'share' / 'sage_encoders' / 'models' for p in prefixes),
            user_model_dir()]


def onnx_path(directory: Path, modality: str, part: str, precision: str) -> Path:
    """Path of one ONNX graph, e.g. vision_encoder.int8.onnx."""
    return directory / f'{modality}_{part}.{precision}.onnx'


def read_meta(directory: Path, modality: str) -> dict[str, Any]:
    """Read <modality>_vqvae.json.

    Raises:
        ModelError: the file is missing or not valid JSON.
    """
    path = directory / f'{modality}_vqvae.json'
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ModelError(f'model metadata not found: {path} (train with '
                         f'`python -m sage_encoders.train {modality}`)') from err
    except json.JSONDecodeError as err:
        raise ModelError(f'{path}: invalid JSON ({err})') from err


def model_identity(directory: Path, modality: str, precision: str) -> str:
    """'<version>:<digest>' of the model a puzzle encoder reads from `directory`.

    The version is the name in the folder's version.json, else 'packaged' for the package's
    own folder, else the folder's name (a model a user trained elsewhere); the digest (8 hex)
    covers the encoder graph of `precision` and the codebook, the files that decide the codes,
    so a model retrained in place is another model too. Missing files are left out: loading
    reports them.
    """
    try:
        name = str(json.loads((directory / VERSION_FILE).read_text())['version'])
    except (OSError, ValueError, KeyError, TypeError):
        name = PACKAGED if directory.resolve() == PACKAGED_DIR else directory.name
    digest = hashlib.sha256()
    for path in (onnx_path(directory, modality, 'encoder', precision),
                 directory / f'{modality}_codebook.npy'):
        try:
            digest.update(path.read_bytes())
        except OSError:
            continue
    return f'{name}:{digest.hexdigest()[:8]}'


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON with stable key order and a trailing newline."""
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + '\n')
