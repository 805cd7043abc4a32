"""Shared machinery of the vision and audio puzzle encoders (no torch, no rclpy).

`PuzzleModel` loads a VQ-VAE lazily through a runtime backend and can unload it;
`CodeSwapRefiner` is the IRP plugin that refines a code grid; `encode_puzzle` runs
encoder -> nearest codes -> IRP refinement -> embedding for one preprocessed input, and can
hand over the input's latent before refinement (`before_refinement`): all SNARC scores.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
import threading
import time
from typing import Any

import numpy as np

from sage_encoders.errors import EncoderError, ModelError
from sage_common.irp import PENDING, IrpResult, check_settings, refine_from
from sage_common.records import LatentRecord
from sage_encoders.model_files import PRECISIONS, model_dir, model_identity, read_meta
from sage_encoders.quantize import lookup, nearest_codes, ranked_codes
from sage_encoders.runtime import (BACKENDS, Log, PuzzleBackend, limit_blas_threads,
                                   resolve_providers)


@dataclass(frozen=True)
class IrpConfig:
    """Refinement settings (parameters irp.*).

    Attributes:
        eps: relative energy decrease over k steps below which refinement has converged.
        k: convergence window in steps.
        max_iterations: hard cap on steps per input (0 = no refinement).
        atp_per_step: ATP charged per step.
        default_atp: ATP per input when no /sage/budget allocation has arrived.
        candidates: codes tried per cell (nearest first; 1 = no swaps).
        target: reconstruction error at or below which an input is good enough: refinement
            stops there, and takes no step for an input that starts there (0 = off).
    """

    eps: float = 0.002
    k: int = 3
    max_iterations: int = 9
    atp_per_step: float = 1.0
    default_atp: float = 4.0
    candidates: int = 4
    target: float = 0.0

    @classmethod
    def from_params(cls, values: Any) -> 'IrpConfig':
        """Build from resolved parameters (irp.* names)."""
        return cls(eps=float(values['irp.eps']), k=int(values['irp.k']),
                   max_iterations=int(values['irp.max_iterations']),
                   atp_per_step=float(values['irp.atp_per_step']),
                   default_atp=float(values['irp.default_atp']),
                   candidates=int(values['irp.candidates']),
                   target=float(values['irp.target']))


@dataclass(frozen=True)
class RuntimeConfig:
    """Which model files and runtime to use (parameters model_dir, runtime, precision...)."""

    modality: str
    model_dir: str = ''
    runtime: str = 'onnx'
    precision: str = 'fp32'
    providers: str = 'CPUExecutionProvider'
    threads: int = 1
    trt_fp16: bool = False

    @classmethod
    def from_params(cls, modality: str, values: Any) -> 'RuntimeConfig':
        """Build from resolved parameters."""
        return cls(modality=modality, model_dir=str(values['model_dir']),
                   runtime=str(values['runtime']), precision=str(values['precision']),
                   providers=str(values['providers']), threads=int(values['threads']),
                   trt_fp16=bool(values['trt_fp16']))


class PuzzleModel:
    """A puzzle VQ-VAE that loads on first use and unloads when told.

    Attributes:
        version: '<version>:<digest>' of its files (model_files.model_identity).
        load_ms: wall time of the last load (0 before the first).
        unload_ms: wall time of the last unload.
        loads: how many times the model was loaded.
        providers: execution providers of the loaded sessions.
    """

    def __init__(self, cfg: RuntimeConfig, log: Log | None = None,
                 directory: Path | None = None) -> None:
        if cfg.runtime not in BACKENDS:
            raise EncoderError(f"unknown runtime '{cfg.runtime}' (known: {', '.join(BACKENDS)})")
        if cfg.precision not in PRECISIONS:
            raise EncoderError(f"unknown precision '{cfg.precision}'")
        self.cfg = cfg
        self.log: Log = log or (lambda _: None)
        # directory: another version of the model (hot swap); None = cfg.model_dir
        self._dir = Path(directory) if directory is not None else model_dir(cfg.model_dir)
        limit_blas_threads()  # here, not in load(): inspecting the libraries takes ~30 ms
        self.meta = read_meta(self._dir, cfg.modality)
        if self.meta.get('modality') != cfg.modality:
            raise ModelError(f'{self._dir}: metadata is for {self.meta.get("modality")!r}, '
                             f'not {cfg.modality!r}')
        # Stamped on every latent: SNARC restarts its model-dependent predictions on a change.
        self.version = model_identity(self._dir, cfg.modality, cfg.precision)
        conf = self.meta['config']
        self.stride = 2 ** len(conf['channels'])
        self.codebook_size = int(conf['codebook_size'])
        self.code_dim = int(conf['code_dim'])
        self._backend: PuzzleBackend | None = None
        self._codebook: np.ndarray | None = None
        self.load_ms = 0.0
        self.unload_ms = 0.0
        self.loads = 0
        self.providers: list[str] = []

    @property
    def directory(self) -> Path:
        """The folder this model's files are read from."""
        return self._dir

    @property
    def loaded(self) -> bool:
        """True while the sessions are in memory."""
        return self._backend is not None

    def load(self) -> None:
        """Load the codebook and the sessions now (no-op when loaded).

        Raises:
            ModelError: a file is missing or has the wrong shape.
        """
        if self._backend is not None:
            return
        t0 = time.perf_counter()
        path = self._dir / f'{self.cfg.modality}_codebook.npy'
        try:
            codebook = np.load(path).astype(np.float32)
        except FileNotFoundError as err:
            raise ModelError(f'codebook not found: {path}') from err
        if codebook.shape != (self.codebook_size, self.code_dim):
            raise ModelError(f'{path}: shape {codebook.shape} != '
                             f'({self.codebook_size}, {self.code_dim})')
        providers = (resolve_providers(self.cfg.providers, self.log)
                     if self.cfg.runtime == 'onnx' else [])
        self._backend = BACKENDS[self.cfg.runtime](self._dir, self.cfg.modality,
                                                   self.cfg.precision, providers,
                                                   self.cfg.threads, self.cfg.trt_fp16)
        self._codebook = codebook
        self.providers = list(self._backend.providers)
        self.load_ms = (time.perf_counter() - t0) * 1e3
        self.loads += 1

    def unload(self) -> None:
        """Drop the sessions and codebook (they reload on next use)."""
        if self._backend is None:
            return
        t0 = time.perf_counter()
        self._backend = None
        self._codebook = None
        self.unload_ms = (time.perf_counter() - t0) * 1e3

    @property
    def codebook(self) -> np.ndarray:
        """(K, D) codebook (loads the model if needed)."""
        self.load()
        assert self._codebook is not None
        return self._codebook

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(1, C, H, W) -> (D, h, w) continuous latent (loads the model if needed)."""
        self.load()
        assert self._backend is not None
        return self._backend.encode(x)[0]

    def decode(self, z_q: np.ndarray) -> np.ndarray:
        """(B, D, h, w) -> (B, C, H, W) reconstruction (loads the model if needed)."""
        self.load()
        assert self._backend is not None
        return self._backend.decode(z_q)


class SwappableModel:
    """Mixin of the puzzle cores: another version of the model replaces the one in use.

    Sleep writes a fine-tuned model as a complete model folder; the node shell hands its path
    here. `prepare_model` builds and checks the new version on the caller's thread (a
    background one) without touching the model in use; `swap_model` puts it in use between
    two inputs. Every input is encoded holding `model_lock` with the model read once under
    it, so an input is encoded wholly by one version; a swap holds the lock for an
    assignment only, so at most one input waits for it (a few microseconds), never for a
    load. Everything else the core holds (ring of kept inputs, counters, state from the
    previous input) stays across the swap.

    An input may be encoded in two parts (the cores' `begin`, then `finish` on another
    thread): its refinement holds `refine_lock` and refines no more once the model it began
    with is swapped out or unloaded; a swap (and an unload) holds both locks, `refine_lock`
    first: it waits for a refinement in progress without holding `model_lock`, so the
    inputs arriving meanwhile are encoded on time.

    A subclass sets `self.model`, `self.model_lock`, `self.refine_lock` and `self.irp` and
    defines `probe_input`.
    """

    model: PuzzleModel
    irp: IrpConfig
    model_lock: threading.Lock
    refine_lock: threading.Lock

    def probe_input(self, model: PuzzleModel | None = None) -> np.ndarray:
        """A neutral network input of the running shape (grey frame, digital silence), as
        `model` (default: the running one) takes it."""
        raise NotImplementedError

    def stored_model_input(self, model: PuzzleModel, item: Any) -> np.ndarray:
        """The network input, as `model` takes it, of a stored training input (what this
        core's `inputs` kept, as memory stores it: `format`, `data`, `sample_rate`).

        Raises:
            ValueError: the input does not decode (another format, corrupt bytes).
        """
        raise NotImplementedError

    def embed_stored(self, item: Any) -> np.ndarray:
        """The embedding the encoder gave SNARC for a stored training input, by the model in
        use: the mean code vector of its nearest codes (`code_embedding`). No refinement,
        features or state between inputs are touched: only the embedding is made.

        Raises:
            ValueError: the input does not decode.
            ModelError: the model cannot be loaded.
        """
        with self.model_lock:  # one model version for the whole input
            model = self.model
            z_e = model.encode(self.stored_model_input(model, item))
            return code_embedding(model, nearest_codes(z_e, model.codebook))

    def grid_shape(self, model: PuzzleModel) -> tuple[int, int]:
        """(h, w) code grid `model` makes from this core's input (its metadata's stride)."""
        h, w = self.probe_input(model).shape[2:]
        return h // model.stride, w // model.stride

    def prepare_model(self, directory: Path | str) -> PuzzleModel:
        """Load the model of another folder and check it can replace the running one.

        Same runtime, precision and providers as the running model. Checked: the folder's
        metadata is for this modality, the code grid on this core's input, codebook size
        and code dimension equal the running model's (SNARC keeps statistics per grid cell
        and code: another grid would break them), every file loads, and one encode of a
        neutral input gives a grid of that shape and finite values. Thread safe; the model
        in use is not touched.

        Raises:
            ModelError: the folder is missing, a file is missing or broken, or the model
                does not fit (the message says which check failed).
        """
        path = Path(directory).expanduser()
        if not path.is_dir():
            raise ModelError(f'model directory not found: {path}')
        current = self.model
        candidate = PuzzleModel(current.cfg, current.log, directory=path)
        want, got = self.grid_shape(current), self.grid_shape(candidate)
        if got != want:
            raise ModelError(f'{path}: code grid {got[0]}x{got[1]} differs from the running '
                             f"model's {want[0]}x{want[1]} (SNARC's per-cell statistics "
                             'need the same grid)')
        if candidate.codebook_size != current.codebook_size:
            raise ModelError(f'{path}: codebook size {candidate.codebook_size} differs from '
                             f"the running model's {current.codebook_size}")
        if candidate.code_dim != current.code_dim:
            raise ModelError(f'{path}: code dimension {candidate.code_dim} differs from the '
                             f"running model's {current.code_dim}")
        candidate.load()
        try:
            res = encode_puzzle(candidate, self.probe_input(candidate), 0.0,
                                IrpConfig(max_iterations=0))
        except ModelError:
            raise
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise ModelError(f'{path}: probe encode failed: {err}') from err
        if res.codes.shape != want:
            raise ModelError(f'{path}: probe encode gave a {res.codes.shape} grid, expected '
                             f'{want}')
        if not (np.isfinite(res.embedding).all() and np.isfinite(res.irp.energy_final)):
            raise ModelError(f'{path}: probe encode gave non-finite values')
        return candidate

    def refine_begun(self, start: PuzzleStart, began_with: PuzzleModel, atp: float | None,
                     before_step: Callable[[], None] | None = None) -> PuzzleResult:
        """`finish_puzzle` of an input begun with `began_with`, under `refine_lock`: when that
        model was swapped out or unloaded since, the input takes no step (atp 0)."""
        with self.refine_lock:
            if began_with is not self.model or not began_with.loaded:
                atp = 0.0
            return finish_puzzle(start, atp, self.irp, before_step)

    def swap_model(self, candidate: PuzzleModel) -> PuzzleModel:
        """Put a prepared model in use between two inputs; return the one it replaced.

        The replaced model is unloaded. When the running model is not loaded (suspended in
        DREAM, or lazy and not used yet) the candidate is unloaded too: it loads on the next
        input, as the old one would have. `loads` keeps counting across versions.
        """
        # refine_lock first: an encode waits for no refinement (see PuzzleCore)
        with self.refine_lock, self.model_lock:
            old = self.model
            if not old.loaded:
                candidate.unload()
            candidate.loads += old.loads
            self.model = candidate
        old.unload()  # outside the lock: freeing sessions delays no input
        return old

    def use_model(self, directory: Path | str) -> PuzzleModel:
        """`prepare_model` then `swap_model`; returns the model now in use.

        Raises:
            ModelError: as prepare_model (the running model stays).
        """
        candidate = self.prepare_model(directory)
        self.swap_model(candidate)
        return candidate


@dataclass
class SwapState:
    """IRP state of a code grid: codes, what was tried, and the current reconstruction."""

    codes: np.ndarray  # (h, w) int64
    tried: np.ndarray  # (h, w) int: index in the candidate list of the last code tried
    recon: np.ndarray  # (C, H, W)
    cell_err: np.ndarray  # (h, w) summed squared error per cell
    energy: float  # mean squared error over the input


class CodeSwapRefiner:
    """IRP plugin: swap cells to their next-nearest codes where that lowers the recon error.

    Each step visits one of the 9 phases of a 3x3 lattice (cells whose row % 3 and
    column % 3 match), so swapped cells are far enough apart that one decoder pass tests
    them all; a swap is kept when the squared error over the cell's 3x3 neighbourhood falls,
    and the step as a whole is kept when the total error falls (second decoder pass).
    Deterministic: fixed phase order and stable candidate ranking.
    """

    def __init__(self, model: PuzzleModel, x: np.ndarray, z_e: np.ndarray,
                 candidates: int) -> None:
        self._model = model
        self._x = x[0]  # (C, H, W)
        self._ranked = ranked_codes(z_e, model.codebook, max(1, candidates))  # (h, w, r)
        self._s = model.stride

    def _cell_err(self, recon: np.ndarray) -> np.ndarray:
        c, h, w = recon.shape
        s = self._s
        se = ((recon - self._x) ** 2).reshape(c, h // s, s, w // s, s)
        return se.sum(axis=(0, 2, 4))  # (h/s, w/s)

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        return self._model.decode(lookup(codes, self._model.codebook))[0]

    def _state(self, codes: np.ndarray, tried: np.ndarray) -> SwapState:
        recon = self._decode(codes)
        err = self._cell_err(recon)
        return SwapState(codes, tried, recon, err, float(err.sum() / self._x.size))

    @property
    def nearest(self) -> np.ndarray:
        """(h, w) each cell's nearest code: the grid before refinement."""
        return self._ranked[:, :, 0]

    def init_state(self) -> SwapState:
        """Nearest codes and their reconstruction."""
        codes = self.nearest.copy()
        return self._state(codes, np.zeros(codes.shape, np.int64))

    def energy(self, state: SwapState) -> float:
        """Reconstruction MSE in normalised units."""
        return state.energy

    def halt(self, state: SwapState) -> bool:
        """True when every cell has tried every candidate."""
        return bool((state.tried >= self._ranked.shape[2] - 1).all())

    def step(self, state: SwapState, iteration: int) -> SwapState:
        """Try the next candidate code at one lattice phase of cells."""
        py, px = divmod(iteration % 9, 3)
        h, w = state.codes.shape
        rows = (np.arange(h) % 3 == py)[:, None]
        cols = (np.arange(w) % 3 == px)[None, :]
        mask = rows & cols & (state.tried < self._ranked.shape[2] - 1)
        if not mask.any():
            return state
        tried = state.tried.copy()
        tried[mask] += 1
        cand = state.codes.copy()
        nxt = np.take_along_axis(self._ranked, tried[:, :, None], axis=2)[:, :, 0]
        cand[mask] = nxt[mask]
        cand_err = self._cell_err(self._decode(cand))
        better = mask & (_box3(cand_err) < _box3(state.cell_err))
        if not better.any():
            return SwapState(state.codes, tried, state.recon, state.cell_err, state.energy)
        codes = state.codes.copy()
        codes[better] = cand[better]
        new = self._state(codes, tried)
        if new.energy >= state.energy:  # neighbours interfered: keep the old codes
            return SwapState(state.codes, tried, state.recon, state.cell_err, state.energy)
        return new


def _box3(a: np.ndarray) -> np.ndarray:
    """Sum over each cell's 3x3 neighbourhood (zero padded)."""
    p = np.pad(a, 1)
    return sum(p[dy:dy + a.shape[0], dx:dx + a.shape[1]] for dy in range(3) for dx in range(3))


@dataclass(frozen=True)
class PuzzleResult:
    """Codes, embedding and IRP report of one encoded input."""

    codes: np.ndarray  # (h, w) uint16 after refinement
    codes_initial: np.ndarray  # (h, w) uint16 before refinement (nearest codes)
    embedding: np.ndarray  # (D,) float32 mean of the code vectors of codes_initial
    irp: IrpResult[SwapState]


def code_embedding(model: PuzzleModel, codes: np.ndarray) -> np.ndarray:
    """(D,) float32 mean of the code vectors of a grid: the embedding SNARC scores and
    memory stores for an input (from its nearest codes, so it describes the input, not the
    refinement the input's ATP bought)."""
    return model.codebook[codes].reshape(-1, model.code_dim).mean(0).astype(np.float32)


# Takes (nearest codes (h, w) uint16, embedding, reconstruction error of the nearest codes).
InitialHook = Callable[[np.ndarray, np.ndarray, float], None]
# Takes an input's latent before refinement (halt_reason PENDING).
LatentSink = Callable[[LatentRecord], None]


@dataclass(frozen=True)
class PuzzleStart:
    """An encoded input before its refinement steps: what `start_puzzle` made and
    `finish_puzzle` refines (on the same model)."""

    model: PuzzleModel
    plugin: CodeSwapRefiner
    state: SwapState  # the nearest codes and their reconstruction
    energy: float  # reconstruction error of the nearest codes
    nearest: np.ndarray  # (h, w) uint16 nearest codes
    embedding: np.ndarray  # (D,) float32 mean of their code vectors


def start_puzzle(model: PuzzleModel, x: np.ndarray, irp: IrpConfig,
                 on_initial: InitialHook | None = None) -> PuzzleStart:
    """Encode one preprocessed input up to its refinement: encoder, nearest codes, their
    decoding, and `on_initial` with them (all SNARC scores).

    Args:
        model: the puzzle model (loaded on demand).
        x: (1, C, H, W) float32 network input.
        irp: refinement settings (checked here, so a bad one fails before on_initial).
        on_initial: called once the nearest codes are decoded.
    """
    check_settings(irp.eps, irp.k, irp.max_iterations, irp.atp_per_step, irp.target)
    z_e = model.encode(x)
    plugin = CodeSwapRefiner(model, x, z_e, irp.candidates)
    # The embedding describes the input, not the refinement: from the nearest codes, so it
    # does not move with the ATP this input happened to get.
    nearest = plugin.nearest.astype(np.uint16)
    embedding = code_embedding(model, plugin.nearest)
    state = plugin.init_state()
    energy = float(plugin.energy(state))
    if on_initial is not None:
        on_initial(nearest, embedding, energy)
    return PuzzleStart(model, plugin, state, energy, nearest, embedding)


def finish_puzzle(start: PuzzleStart, atp: float | None, irp: IrpConfig,
                  before_step: Callable[[], None] | None = None) -> PuzzleResult:
    """Refine a started input's codes under an ATP allocation (None = irp.default_atp);
    `before_step` is called before each refinement step (it may wait)."""
    budget = irp.default_atp if atp is None else atp
    result = refine_from(start.plugin, start.state, start.energy, budget, irp.eps, irp.k,
                         irp.max_iterations, irp.atp_per_step, target=irp.target,
                         before_step=before_step)
    return PuzzleResult(result.state.codes.astype(np.uint16), start.nearest, start.embedding,
                        result)


def encode_puzzle(model: PuzzleModel, x: np.ndarray, atp: float | None, irp: IrpConfig,
                  on_initial: InitialHook | None = None) -> PuzzleResult:
    """Encode one preprocessed input and refine its codes under an ATP allocation:
    `start_puzzle` then `finish_puzzle`.

    Args:
        model: the puzzle model (loaded on demand).
        x: (1, C, H, W) float32 network input.
        atp: ATP available (None = irp.default_atp).
        irp: refinement settings.
        on_initial: called once the nearest codes are decoded, before the first refinement
            step (also when refinement is off).

    Returns:
        Final codes, embedding and the refinement report.
    """
    return finish_puzzle(start_puzzle(model, x, irp, on_initial), atp, irp)


def before_refinement(sink: LatentSink | None, t0: float, **fields: Any
                      ) -> InitialHook | None:
    """The `encode_puzzle` hook that hands `sink` the input's latent before refinement.

    That latent carries what depends on the input alone (nearest codes, embedding, features,
    the nearest codes' reconstruction error), which is all SNARC scores: salience need not
    wait for the refinement steps the input's ATP buys. Its halt_reason is PENDING, and the
    refined latent (same input_seq and stamp) follows.

    Args:
        sink: where the latent goes (None: no hook).
        t0: perf_counter() when the input's encoding started (for encode_ms).
        fields: the other LatentRecord fields (stamp, modality, input_seq, codebook_size,
            features, model_version).
    """
    if sink is None:
        return None

    def hook(codes: np.ndarray, embedding: np.ndarray, energy: float) -> None:
        sink(LatentRecord(codes=codes, embedding=embedding, recon_error=energy,
                          energy_initial=energy, energy_final=energy, halt_reason=PENDING,
                          encode_ms=(time.perf_counter() - t0) * 1e3, **fields))
    return hook
