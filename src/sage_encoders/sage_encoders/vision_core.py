"""Vision puzzle encoder core: RGB frame -> 30x30 codes, embedding, features, IRP report.

No rclpy and no torch: the node shell decodes sensor_msgs/Image with
`preprocess.rgb_from_buffer` and calls `encode`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
import threading
import time
from typing import Any

import cv2
import numpy as np
from sage_common.previews import encode_image
from sage_common.records import LatentRecord

from sage_encoders.errors import EncoderError, InputError
from sage_encoders.block_change import block_change, chromaticity, relative_luma
from sage_encoders.input_ring import InputRing, jpeg_input, kept_frame
from sage_encoders.preprocess import resize_rgb, scale_rgb
from sage_encoders.puzzle import (IrpConfig, LatentSink, PuzzleModel, PuzzleStart,
                                  RuntimeConfig, SwappableModel, before_refinement,
                                  start_puzzle)
from sage_encoders.runtime import Log

FEATURES = ('brightness', 'brightness_change', 'motion', 'colour_change', 'grey_change')


def exposed_rgb(rgb: np.ndarray, gain: float) -> np.ndarray:
    """A uint8 RGB frame scaled by the exposure gain, clipped: `scale_rgb` of it is the
    network input `encode` makes (to within half a grey level)."""
    # numpy's stubs type np.clip of an array expression as Any; the result is a uint8 array.
    exposed: np.ndarray = np.clip(rgb.astype(np.float32) * gain + 0.5, 0.0, 255.0).astype(np.uint8)
    return exposed


@dataclass(frozen=True)
class VisionConfig:
    """Resolved settings of the vision encoder (see vision_encoder_params)."""

    runtime: RuntimeConfig
    irp: IrpConfig
    input_size: int = 240
    lazy_load: bool = True
    motion_size: tuple[int, int] = (32, 24)  # (width, height)
    colour_block: int = 4  # cells of the motion thumbnail (block_change.py)
    colour_shift: int = 1
    colour_dark: float = 0.04
    preview_size: tuple[int, int] = (64, 48)  # (width, height)
    preview_format: str = 'webp'
    preview_quality: int = 70
    exposure_target: float = 0.45  # mean grey frames are scaled to (0 = no normalisation)
    exposure_max_gain: float = 4.0
    training_keep: int = 32  # inputs kept for the memory node (0 = off)
    training_jpeg_quality: int = 90

    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> 'VisionConfig':
        """Build from the node's resolved parameters."""
        return cls(runtime=RuntimeConfig.from_params('vision', values),
                   irp=IrpConfig.from_params(values), input_size=int(values['input_size']),
                   lazy_load=bool(values['lazy_load']),
                   motion_size=(int(values['motion.width']), int(values['motion.height'])),
                   colour_block=int(values['colour.block']),
                   colour_shift=int(values['colour.shift']),
                   colour_dark=float(values['colour.dark']),
                   preview_size=(int(values['preview.width']), int(values['preview.height'])),
                   preview_format=str(values['preview.format']),
                   preview_quality=int(values['preview.quality']),
                   exposure_target=float(values['exposure.target']),
                   exposure_max_gain=float(values['exposure.max_gain']),
                   training_keep=int(values['training_input.keep']),
                   training_jpeg_quality=int(values['training_input.jpeg_quality']))


@dataclass(frozen=True)
class PendingFrame:
    """A frame `VisionEncoderCore.begin` encoded and `finish` refines."""

    model: PuzzleModel  # the version that began it
    start: PuzzleStart
    stamp: float
    input_seq: int
    features: dict[str, float]
    gain: float  # exposure gain the model input got
    kept: np.ndarray | None  # input-size frame for the ring of kept inputs (before gain)
    preview_rgb: np.ndarray  # the frame at preview size
    begin_ms: float  # compute time of begin


class VisionEncoderCore(SwappableModel):
    """Encodes RGB frames with the vision puzzle VQ-VAE.

    Deterministic: the same frame sequence gives the same records (brightness_change and
    motion compare each frame with the previous one). Another model version can replace
    the running one between two frames (`use_model`, from SwappableModel).
    """

    def __init__(self, cfg: VisionConfig, log: Log | None = None) -> None:
        if cfg.input_size % 8:
            raise EncoderError(f'input_size {cfg.input_size} is not a multiple of 8')
        self.cfg = cfg
        self.irp = cfg.irp
        self.model = PuzzleModel(cfg.runtime, log)
        self.model_lock = threading.Lock()  # held per frame and for a model swap
        self.refine_lock = threading.Lock()  # held per refinement, a model swap and unload
        self._prev: tuple[np.ndarray, ...] | None = None  # last grey, chroma and luma thumbs
        # The newest model-input frames, for the memory node (what sleep retrains on).
        self.inputs = InputRing(cfg.training_keep,
                                partial(jpeg_input, quality=cfg.training_jpeg_quality))
        if not cfg.lazy_load:
            self.model.load()

    @classmethod
    def from_params(cls, values: Mapping[str, Any], log: Log | None = None
                    ) -> 'VisionEncoderCore':
        """Build from the node's resolved ROS parameters."""
        return cls(VisionConfig.from_params(values), log)

    def encode(self, rgb: np.ndarray, stamp: float, input_seq: int, atp: float | None = None,
               on_initial: LatentSink | None = None) -> LatentRecord:
        """Encode one frame: `begin`, then `finish` (the offline replay's path).

        Args:
            rgb: (H, W, 3) uint8 RGB, any size.
            stamp: capture time (s), copied to the record.
            input_seq: per-modality input counter.
            atp: ATP available for refinement (None = irp.default_atp).
            on_initial: given the frame's latent before refinement (`before_refinement`).

        Returns:
            The latent record (codes (30, 30) at the default size).

        Raises:
            InputError: rgb is not a non-empty (H, W, 3) uint8 array.
            ModelError: the model cannot be loaded.
        """
        return self.finish(self.begin(rgb, stamp, input_seq, on_initial), atp)

    def begin(self, rgb: np.ndarray, stamp: float, input_seq: int,
              on_initial: LatentSink | None = None) -> PendingFrame:
        """Encode one frame up to its refinement: features, nearest codes, embedding, and
        `on_initial` with them (what salience needs). `rgb` is not used after this returns
        (a mailbox slot may be reused). Frames must be begun in order (features compare
        each with the previous one); `finish` may run on another thread.

        Raises:
            InputError: rgb is not a non-empty (H, W, 3) uint8 array.
            ModelError: the model cannot be loaded.
        """
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 \
                or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
            raise InputError('frame must be a non-empty (H, W, 3) uint8 RGB array, got '
                             f'{getattr(rgb, "shape", None)} {getattr(rgb, "dtype", None)}')
        with self.model_lock:  # one model version for the whole frame
            return self._begin(self.model, rgb, stamp, input_seq, on_initial)

    def _begin(self, model: PuzzleModel, rgb: np.ndarray, stamp: float, input_seq: int,
               on_initial: LatentSink | None) -> PendingFrame:
        model.load()  # encode_ms excludes a lazy load (reported as load_ms)
        t0 = time.perf_counter()
        features = self._features(rgb)
        sized = resize_rgb(rgb, self.cfg.input_size)
        x = scale_rgb(sized)
        gain = self._gain(features['brightness'])
        if gain != 1.0:
            x = np.clip((x + 1.0) * gain - 1.0, -1.0, 1.0)
        early = before_refinement(on_initial, t0, stamp=float(stamp), modality='vision',
                                  input_seq=int(input_seq), codebook_size=model.codebook_size,
                                  features=features, model_version=model.version)
        start = start_puzzle(model, x, self.irp, early)
        # What finish needs of the frame, ours: a frame already at input size is the
        # caller's buffer (a mailbox slot the camera reuses), and so is rgb. The preview
        # is made at its size here (encode_image leaves a frame of its size as it is).
        kept = None
        if self.inputs.enabled:
            kept = sized.copy() if np.may_share_memory(sized, rgb) else sized
        small = cv2.resize(rgb, self.cfg.preview_size, interpolation=cv2.INTER_AREA)
        return PendingFrame(model, start, float(stamp), int(input_seq), features, gain, kept,
                            small, (time.perf_counter() - t0) * 1e3)

    def finish(self, pending: PendingFrame, atp: float | None = None,
               before_step: Callable[[], None] | None = None) -> LatentRecord:
        """Refine a begun frame under `atp` (None = irp.default_atp) and make its record.

        When the model was swapped or unloaded since `begin`, the frame takes no step (its
        model is gone): its record says so by atp_spent 0 (halt_reason budget or target).
        `before_step` is called before each refinement step (it may wait).
        """
        t0 = time.perf_counter()
        model = pending.model
        res = self.refine_begun(pending.start, model, atp, before_step)
        preview = self._preview(pending.preview_rgb)
        if pending.kept is not None:
            # Sleep retrains on what the model saw: the frame after exposure normalisation
            # (a raw frame is up to max_gain darker than anything the model is asked to
            # encode).
            gain = pending.gain
            self.inputs.put(pending.input_seq, pending.stamp,
                            exposed_rgb(pending.kept, gain) if gain != 1.0 else pending.kept)
        irp = res.irp
        return LatentRecord(
            stamp=pending.stamp, modality='vision', input_seq=pending.input_seq,
            codes=res.codes, codes_initial=res.codes_initial if irp.iterations else None,
            codebook_size=model.codebook_size, embedding=res.embedding,
            features=pending.features, recon_error=irp.energy_final, iterations=irp.iterations,
            energy_initial=irp.energy_initial, energy_final=irp.energy_final,
            converged=irp.converged, halt_reason=irp.halt_reason, atp_spent=irp.atp_spent,
            encode_ms=pending.begin_ms + (time.perf_counter() - t0) * 1e3,
            preview_format=self.cfg.preview_format, preview=preview,
            model_version=model.version)

    def _gain(self, brightness: float) -> float:
        """Gain that brings the frame's mean grey to exposure.target (clamped)."""
        target, most = self.cfg.exposure_target, self.cfg.exposure_max_gain
        if target <= 0.0:
            return 1.0
        return float(min(most, max(1.0 / most, target / max(brightness, 1e-3))))

    def _features(self, rgb: np.ndarray) -> dict[str, float]:
        """brightness (0..1), |brightness change|, motion (mean abs grey difference),
        colour_change and grey_change (block_change.py)."""
        cfg = self.cfg
        small, grey = self._thumbnail(rgb)
        chroma = chromaticity(small, cfg.colour_dark)
        luma = relative_luma(grey)
        brightness = float(grey.mean())
        last, self._prev = self._prev, (grey, chroma, luma)
        if last is None:
            return {'brightness': brightness, 'brightness_change': 0.0, 'motion': 0.0,
                    'colour_change': 0.0, 'grey_change': 0.0}
        prev, prev_chroma, prev_luma = last
        return {'brightness': brightness,
                'brightness_change': float(abs(brightness - float(prev.mean()))),
                'motion': float(np.abs(grey - prev).mean()),
                'colour_change': block_change(prev_chroma, chroma, cfg.colour_block,
                                              cfg.colour_shift),
                'grey_change': block_change(prev_luma, luma, cfg.colour_block,
                                            cfg.colour_shift)}

    def _thumbnail(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(motion-size RGB thumbnail, its grey levels 0..1)."""
        small = cv2.resize(rgb, self.cfg.motion_size, interpolation=cv2.INTER_AREA)
        return small, cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0

    def model_frame(self, rgb: np.ndarray) -> np.ndarray:
        """The uint8 frame at input size that `encode` gives the model (exposure
        normalised) and keeps for sleep, without encoding it (for tools that hand frames
        over as this core does; the state kept between frames is not touched)."""
        sized = resize_rgb(rgb, self.cfg.input_size)
        gain = self._gain(float(self._thumbnail(rgb)[1].mean()))
        return exposed_rgb(sized, gain) if gain != 1.0 else sized

    def _preview(self, rgb: np.ndarray) -> bytes:
        cfg = self.cfg
        return encode_image(rgb, cfg.preview_size, cfg.preview_format, cfg.preview_quality)

    def set_irp(self, irp: IrpConfig) -> None:
        """Apply changed irp.* parameters."""
        self.irp = irp

    def set_training_input(self, values: Mapping[str, Any]) -> None:
        """Apply changed training_input.* parameters."""
        self.inputs.resize(int(values['training_input.keep']))
        self.inputs.encode = partial(jpeg_input,
                                     quality=int(values['training_input.jpeg_quality']))

    def probe_input(self, model: PuzzleModel | None = None) -> np.ndarray:
        """A mid-grey frame as the network sees it (the model-swap probe; every vision model
        takes the same input)."""
        size = self.cfg.input_size
        return scale_rgb(np.full((size, size, 3), 128, np.uint8))

    def stored_model_input(self, model: PuzzleModel, item: Any) -> np.ndarray:
        """A stored frame (exposure already normalised when it was kept: no gain again)
        scaled as `encode` scales the frames it keeps.

        Raises:
            ValueError: not a JPEG input, or the bytes do not decode.
        """
        return scale_rgb(resize_rgb(kept_frame(item.format, item.data), self.cfg.input_size))

    def load(self) -> None:
        """Load the model now (it also loads on first use)."""
        with self.model_lock:
            self.model.load()

    def unload(self) -> None:
        """Free the model; the next encode reloads it (a frame begun before refines no
        more)."""
        # refine_lock first: an encode waits for no refinement (see PuzzleCore)
        with self.refine_lock, self.model_lock:
            self.model.unload()
