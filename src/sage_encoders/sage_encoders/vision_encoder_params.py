"""Parameters of the vision encoder node (pure module: the launcher imports it)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sage_common import mailbox_params
from sage_common.params import ParamSpec
from sage_common.preview_formats import IMAGE_FORMATS

from sage_encoders.common_params import (irp_params, models_params, runtime_params,
                                         training_input_params, validate_runtime)

PARAMS: tuple[ParamSpec, ...] = runtime_params() + irp_params(9, 4.0) + (
    ParamSpec('input_size', 240, 'side (px) frames are resized to before encoding; the code '
              'grid is input_size/8 (240 -> 30x30; the model was trained at 240)', 64, 960,
              read_only=True),
    ParamSpec('motion.width', 32, 'thumbnail width for brightness, motion, '
              'colour_change and grey_change', 4, 320),
    ParamSpec('motion.height', 24, 'thumbnail height for brightness, motion, '
              'colour_change and grey_change', 4, 240),
    ParamSpec('colour.block', 4, 'side (thumbnail cells) of the blocks the colour_change '
              'and grey_change features average chromaticity and relative luma changes over '
              '(an object fills one; noise averages out in it)', 1, 64),
    ParamSpec('colour.shift', 1, 'thumbnail cells a cell may have moved since the previous '
              'frame and still be the same colour or luma (a pan or a jitter is not a change); '
              'as many cells along the edge are left out (a pan brings new content in there)',
              0, 4),
    ParamSpec('colour.dark', 0.04, 'offset (0..1) added to r, g and b before the chromaticity '
              'ratio, so near-black cells (mostly noise) stay close to grey', 0.0, 1.0),
    ParamSpec('exposure.target', 0.45, 'mean grey (0..1) frames are scaled to before '
              'encoding, so an exposure or gain step does not change the codes (0 = off); '
              'the brightness feature is measured before, so a light change is still seen',
              0.0, 1.0),
    ParamSpec('exposure.max_gain', 4.0, 'largest gain (and 1/smallest) the exposure '
              'normalisation applies: two stops, so a dim room with a light off still reaches '
              'the target and its exposure steps do not change the codes; a near-black frame '
              'is not amplified into noise', 1.0, 16.0),
    ParamSpec('preview.format', 'webp', 'image format of the preview kept with stored '
              'experiences (webp: about half the bytes of jpeg at a better PSNR)',
              choices=IMAGE_FORMATS),
    ParamSpec('preview.width', 64, 'preview width (px)', 8, 640),
    ParamSpec('preview.height', 48, 'preview height (px)', 8, 480),
    ParamSpec('preview.quality', 70, 'preview quality (WebP or JPEG, 10-100)', 10, 100),
) + training_input_params() + (
    ParamSpec('training_input.jpeg_quality', 90, 'JPEG quality of a kept frame when memory '
              'asks for it (input_size x input_size RGB)', 10, 100),
) + models_params() + mailbox_params.READER_PARAMS


def validate(values: Mapping[str, Any]) -> list[str]:
    """Cross-field rules: runtime/precision, input size a multiple of the model stride."""
    errors = validate_runtime(values)
    if int(values['input_size']) % 8:
        errors.append(f"input_size {values['input_size']} is not a multiple of 8")
    return errors
