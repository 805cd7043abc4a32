"""The retraining half of sleep, in a process of its own: `python -m sage_memory.sleep.worker`.

Started by the memory node (sage_memory.sleep.retrain) so that torch is never loaded into the node.
For each modality it reads the training inputs stored since `--since` from the database
(read-only: the node keeps writing meanwhile), fine-tunes the live model on them
(sage_encoders.finetune), writes a new model version (sage_encoders.model_versions) and makes
it live when it passes the promotion rule, or keeps it marked rejected for inspection. A
version to promote also gets those stored inputs embedded by it, as its encoder will embed
them (`embed_memories`, the version's memory_embeddings file): SNARC fills its novelty memory
for the new model from them, which would otherwise start empty.

Output: log lines on stderr, then ONE JSON line on stdout:

  {"modalities": {"vision": {"decision": "promoted"|"rejected"|"skipped"|"failed"|"preempted",
                             "version": "v0003" or "", "base": ..., "inputs": n, "steps": n,
                             "seconds": s, "day_recon_before": x, "day_recon_after": y,
                             "heldout_recon_before": ..., "heldout_recon_after": ...,
                             "memory_embeddings": {"count": n, "undecodable": n,
                                                   "seconds": s} (promoted only),
                             "reason": "..."}, ...},
   "preempted": false, "seconds": s}

Progress: one line on stderr per change of phase, PROGRESS_PREFIX then a JSON object:
{"phase": "start", "modalities": [...]}; {"phase": "retrain"|"export"|"embed", "modality": m}
(retrain again with "steps" and "max_steps" while it trains, every STEP_REPORT_S); and
{"phase": "decided", "modality": m, with its entry's decision, version, inputs, steps and
reason}. The memory node turns them into the Sleep action's feedback.

Exit 0 when it ran to its end (a skipped or failed modality included; see its reason), 2 on
bad arguments or an unreadable database, 3 when stopped by SIGTERM/SIGINT. A stop lands within
a second (between steps; data building and scoring are interrupted where they are), the
unfinished version is discarded and live.json is left as it was. An export in progress is not
interrupted (ONNX export and INT8 calibration, a few seconds): the stop is honoured right
after it, the version still discarded; so is a stop while a promoted version embeds the stored
inputs (checked between inputs). kill -9 at any point leaves the previous live model,
since a version appears by one rename only when complete. The worker also stops (as on
SIGTERM) when the memory node that started it dies, even by kill -9: an orphan would otherwise
go on and make a version live that no node asked for (`stop_with_parent`).
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
import contextlib
import json
import logging
import math
import os
from pathlib import Path
import signal
import sys
import time
from typing import Any, TYPE_CHECKING

from sage_common.errors import ParamError
from sage_common.params import ParamSpec, coerce
from sage_common.processes import die_with_parent

if TYPE_CHECKING:  # torch comes with it: imported where a run needs it
    from sage_encoders.finetune import FinetuneConfig

PREEMPTED_EXIT = 3
PROGRESS_PREFIX = 'SAGE_SLEEP_PROGRESS '  # a progress line on stderr (see the docstring)
BAD_ARGS_EXIT = 2
MODALITIES = ('vision', 'audio')
# More decoded inputs than steps x batch can use only cost memory: a seeded sample is kept.
DEFAULT_MAX_INPUTS = 2000

# Imports inside functions are lazy: the memory node imports this module's constants
# (sage_memory.sleep.retrain), so its top level stays light; torch (sage_encoders'
# training code), numpy and the store load in the worker process alone.
log = logging.getLogger('sage_memory.sleep.worker')
_FLAG = ParamSpec('flag', True, 'a true/false worker argument')


class Preempted(BaseException):
    """SIGTERM or SIGINT arrived (a BaseException, like KeyboardInterrupt: no library's
    `except Exception` swallows it)."""


class Stopper:
    """SIGTERM/SIGINT handling: a flag, and an immediate Preempted where that is safe.

    While `interruptible` is true (reading, decoding, building data, scoring, training) the
    handler raises Preempted at once, so even a long data build stops within the second. From
    the export to the commit it only sets the flag, which the worker checks before the export,
    after it (discarding the version) and after each modality.
    """

    def __init__(self) -> None:
        self.requested = False
        self.at = 0.0
        self.interruptible = True

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if not self.requested:
            self.requested = True
            self.at = time.monotonic()
        if self.interruptible:
            self.interruptible = False
            raise Preempted

    def __call__(self) -> bool:
        return self.requested


PARENT_ENV = 'SAGE_SLEEP_PARENT'  # the memory node's pid, set by sage_memory.sleep.retrain


def stop_with_parent() -> bool:
    """Ask Linux for SIGTERM when the process that started us dies; False when it is gone.

    The node's thread that starts the worker waits for it to end, so the signal cannot come
    from that thread ending early. Where prctl is missing (not Linux) nothing is asked.
    """
    parent = os.environ.get(PARENT_ENV, '')
    if sys.platform.startswith('linux') and not die_with_parent():
        log.warning('prctl(PR_SET_PDEATHSIG) failed: this worker may outlive its node')
    # The parent may have died before prctl: then we were already handed to another process.
    return not parent.isdigit() or os.getppid() == int(parent)


# Training steps are reported at most this often (a step takes tens of milliseconds).
STEP_REPORT_S = 0.5


def progress(phase: str, **fields: Any) -> None:
    """Tell the memory node which phase this run is in (one stderr line)."""
    sys.stderr.write(PROGRESS_PREFIX + json.dumps({'phase': phase, **fields}) + '\n')
    sys.stderr.flush()


def step_reporter(modality: str, max_steps: int) -> Callable[[int], None]:
    """on_step for sage_encoders.finetune: the first step, then one every STEP_REPORT_S."""
    last = [0.0]

    def on_step(step: int) -> None:
        now = time.monotonic()
        if step == 1 or now - last[0] >= STEP_REPORT_S:
            last[0] = now
            progress('retrain', modality=modality, steps=step, max_steps=max_steps)
    return on_step


def finetune_config(args: argparse.Namespace, budget_s: float, modality: str
                    ) -> 'FinetuneConfig':
    """The fine-tune settings of one modality's run from its arguments (imports torch)."""
    from sage_encoders.finetune import FinetuneConfig
    rehearsal, max_steps = args.rehearsal, args.max_steps
    gain_jitter, flip = args.vision_gain_jitter, args.vision_flip
    if modality == 'audio':  # audio's own settings, where set
        if args.audio_rehearsal >= 0:
            rehearsal = args.audio_rehearsal
        if args.audio_max_steps > 0:
            max_steps = args.audio_max_steps
        gain_jitter, flip = 0.0, False
    return FinetuneConfig(time_budget_s=budget_s, max_steps=max_steps,
                          lr=args.learning_rate, holdout=args.holdout,
                          holdout_gap_s=args.holdout_gap_s,
                          freeze_codebook=args.freeze_codebook, rehearsal=rehearsal,
                          min_gain=args.min_gain,
                          max_forgetting=args.max_forgetting, seed=args.seed,
                          threads=args.threads, gain_jitter=gain_jitter, flip=flip)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog='python -m sage_memory.sleep.worker',
                                 description='Fine-tune the puzzle encoders on the inputs '
                                 'stored since a stamp; write, promote or reject a version.')
    ap.add_argument('--database-url', default='',
                    help="the memory database ('' = SQLite file in --data-dir)")
    ap.add_argument('--data-dir', default='~/.local/share/sage',
                    help='the memory data folder (default SQLite file)')
    ap.add_argument('--versions-dir', required=True, help='root of the model versions')
    ap.add_argument('--modalities', default='vision,audio',
                    help='comma-separated modalities to retrain (vision, audio)')
    ap.add_argument('--time-budget-s', type=float, default=300.0,
                    help='wall seconds of the whole run for data, scoring and training steps, '
                    'shared out between the modalities (the final scoring and the export of '
                    'each come on top: a few seconds)')
    ap.add_argument('--max-steps', type=int, default=2000, help='most steps per modality')
    ap.add_argument('--audio-max-steps', type=int, default=-1,
                    help="the audio model's own step limit (0 or less = --max-steps)")
    ap.add_argument('--learning-rate', type=float, default=5e-4,
                    help='Adam learning rate at the start (cosine decay to a tenth)')
    ap.add_argument('--since', default='0',
                    help='use inputs with stamp >= since: float seconds for every modality, '
                    'or per modality as vision=STAMP,audio=STAMP (missing ones: 0)')
    ap.add_argument('--min-inputs', type=int, default=16,
                    help='a modality with fewer inputs is skipped')
    ap.add_argument('--max-inputs', type=int, default=DEFAULT_MAX_INPUTS,
                    help='decode at most this many inputs (a seeded random sample)')
    ap.add_argument('--holdout', type=float, default=0.2,
                    help='fraction of the inputs held back for validation (at least 1)')
    ap.add_argument('--holdout-gap-s', type=float, default=2.0,
                    help='hold back whole bursts of inputs less than this many seconds apart '
                    '(an event and its context; 0 = single inputs at random)')
    ap.add_argument('--freeze-codebook', type=_truth, default=True, metavar='true|false',
                    help='keep the codebook vectors (codes keep their meaning across '
                    'versions); false = EMA updates as in training')
    ap.add_argument('--rehearsal', type=float, default=0.5,
                    help='fraction of each batch from the shipped training data')
    ap.add_argument('--audio-rehearsal', type=float, default=-1.0,
                    help="the audio model's own rehearsal fraction (negative = --rehearsal)")
    ap.add_argument('--vision-gain-jitter', type=float, default=0.0,
                    help='scale each vision day crop by a random gain in [1 - g, 1 + g], '
                    'g in [0, 0.9] (0 = off)')
    ap.add_argument('--vision-flip', type=_truth, default=False, metavar='true|false',
                    help='mirror half the vision day crops left-right')
    ap.add_argument('--min-gain', type=float, default=0.05,
                    help='relative day reconstruction gain needed to promote')
    ap.add_argument('--max-forgetting', type=float, default=0.05,
                    help='largest relative held-out reconstruction loss allowed to promote')
    ap.add_argument('--calibration-inputs', type=int, default=16,
                    help='inputs that calibrate the INT8 export (its memory grows with them: '
                    'about 270 MB at 16, 500 MB at 48 for vision)')
    ap.add_argument('--seed', type=int, default=0, help='seed of split, sampling and torch')
    ap.add_argument('--threads', type=int, default=1,
                    help='torch threads, 1-16 (the robot keeps running meanwhile)')
    ap.add_argument('--nice', type=int, default=0,
                    help='niceness to add to this process, 0-19 (the graph comes first)')
    args = ap.parse_args(argv)
    mods = [m.strip() for m in args.modalities.split(',') if m.strip()]
    bad = [m for m in mods if m not in MODALITIES]
    if bad:
        ap.error(f"unknown modalities {bad} (known: {', '.join(MODALITIES)})")
    args.modalities = mods
    try:
        args.since = parse_since(args.since)
    except ValueError as err:
        ap.error(f'--since: {err}')
    for name in ('holdout', 'rehearsal'):
        if not 0.0 <= getattr(args, name) <= 1.0:
            ap.error(f'--{name} must be in [0, 1]')
    if not 1 <= args.threads <= 16 or not 0 <= args.nice <= 19:
        ap.error('--threads must be in [1, 16], --nice in [0, 19]')
    if not 0.0 <= args.vision_gain_jitter <= 0.9:
        ap.error('--vision-gain-jitter must be in [0, 0.9]')
    if args.audio_rehearsal > 1.0:
        ap.error('--audio-rehearsal must be at most 1 (negative = --rehearsal)')
    if args.time_budget_s <= 0 or args.max_steps < 1 or args.min_inputs < 2 \
            or not args.learning_rate > 0 or not args.holdout_gap_s >= 0:
        ap.error('--time-budget-s must be > 0, --max-steps >= 1, --min-inputs >= 2, '
                 '--learning-rate > 0, --holdout-gap-s >= 0')
    return args


def _truth(text: str) -> bool:
    """A bool parameter as the node's command line writes it, read as the node reads its
    parameters (sage_common.params.coerce: true/false/1/0, any case)."""
    try:
        return bool(coerce(_FLAG, text.strip()))
    except ParamError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_since(text: str) -> dict[str, float]:
    """'123.4' (every modality) or 'vision=123.4,audio=0' -> since per modality."""
    if '=' not in text:
        return dict.fromkeys(MODALITIES, float(text))
    out = dict.fromkeys(MODALITIES, 0.0)
    for part in filter(None, (p.strip() for p in text.split(','))):
        name, _, value = part.partition('=')
        if name not in MODALITIES:
            raise ValueError(f'unknown modality {name!r}')
        out[name] = float(value)
    return out


def _finite(x: float) -> float | None:
    return round(float(x), 7) if isinstance(x, float) and math.isfinite(x) else None


def _result(**kw: Any) -> dict[str, Any]:
    out = {'decision': 'skipped', 'version': '', 'base': '', 'inputs': 0, 'steps': 0,
           'seconds': 0.0, 'day_recon_before': None, 'day_recon_after': None,
           'heldout_recon_before': None, 'heldout_recon_after': None, 'reason': ''}
    out.update(kw)
    return out


def embed_memories(modality: str, version_dir: Path, items: Iterable[Any], stop: Stopper,
                   threads: int) -> dict[str, Any]:
    """Embed stored inputs with the version being built, as its encoder will embed them,
    into its memory_embeddings file; returns {count, undecodable, seconds}.

    The stored experiences' embeddings are the old model's, and SNARC compares an input only
    with memories its own model embedded: this file fills the new model's novelty memory when
    it goes live. One input at a time from a paged read (the worker's peak stays the
    export's); an input that does not decode is skipped and counted.

    Raises:
        Preempted: a stop request (checked between inputs).
        ModelError: the new model does not load.
    """
    import numpy as np

    from sage_encoders.model_versions import write_memory_embeddings
    from sage_encoders.reembed import stored_input_core

    t0 = time.monotonic()
    core = stored_input_core(modality, version_dir, threads)
    uuids: list[str] = []
    rows: list[np.ndarray] = []
    undecodable = 0
    for item in items:
        if stop.requested:
            raise Preempted
        try:
            rows.append(core.embed_stored(item))
        except ValueError:
            undecodable += 1
            continue
        uuids.append(item.uuid)
    core.unload()  # its sessions: the next modality's training comes after
    if rows:  # none: no file, as for versions from before it
        write_memory_embeddings(version_dir, uuids, np.stack(rows))
    out = {'count': len(rows), 'undecodable': undecodable,
           'seconds': round(time.monotonic() - t0, 3)}
    log.info('%s: %d stored inputs embedded by the new version in %.1f s (%d undecodable)',
             modality, out['count'], out['seconds'], undecodable)
    return out


def retrain_modality(modality: str, store: Any, args: argparse.Namespace,
                     stop: Stopper, budget_s: float) -> dict[str, Any]:
    """Fine-tune, write and decide one modality; its entry of the JSON line.

    Raises:
        Preempted: a stop request (the unfinished version is gone).
    """
    import numpy as np

    from sage_encoders.model_versions import ModelVersions

    t0 = time.monotonic()
    versions = ModelVersions(args.versions_dir, modality)
    base_name, base_dir = versions.live_version(), versions.live_path()
    if base_dir == versions.packaged_dir:
        base_name = 'packaged'
    since = args.since[modality]
    items = store.training_inputs(modality, since=since)
    total = len(items)
    if total < args.min_inputs:
        return _result(base=base_name, inputs=total, seconds=round(time.monotonic() - t0, 3),
                       reason=f'{total} inputs since {since:.3f}, fewer than min_inputs '
                       f'{args.min_inputs}')
    # torch only now: a run with nothing to retrain stays light.
    from sage_encoders import finetune as ft
    from sage_encoders.errors import ModelError
    from sage_encoders.export import export_puzzle

    until = max(i.stamp for i in items)
    if total > args.max_inputs:
        keep = np.sort(np.random.default_rng(args.seed).choice(total, args.max_inputs,
                                                                replace=False))
        items = [items[i] for i in keep]
    if budget_s <= 0:
        return _result(base=base_name, inputs=total, reason='no time left in the budget')
    cfg = finetune_config(args, budget_s, modality)
    try:
        res = ft.finetune(modality, base_dir, items, cfg, stop,
                          step_reporter(modality, cfg.max_steps))
    except ft.Preempted as err:
        raise Preempted from err
    except (ValueError, ModelError) as err:
        return _result(decision='failed', base=base_name, inputs=total,
                       seconds=round(time.monotonic() - t0, 3), reason=str(err))
    del items
    ft.release_shipped_data()  # the export's peak comes next: keep the worker's peak low
    entry = _result(decision=res.decision, base=base_name, inputs=total, steps=res.steps,
                    day_recon_before=_finite(res.day_before),
                    day_recon_after=_finite(res.day_after),
                    heldout_recon_before=_finite(res.heldout_before),
                    heldout_recon_after=_finite(res.heldout_after), reason=res.reason,
                    timings={k: round(v, 3) for k, v in res.timings.items()
                             if math.isfinite(v)},
                    until=until)  # the newest input this decision saw (the next since)
    if res.model is None:
        entry['seconds'] = round(time.monotonic() - t0, 3)
        return entry
    stop.interruptible = False  # from here a stop is checked, not raised, until the commit
    with versions.build() as b:
        if stop.requested:
            raise Preempted
        ft.write_model(res, cfg, b.path, base_dir, base_name)
        t = time.monotonic()
        progress('export', modality=modality)
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON line only
            quality = export_puzzle(modality, b.path, n_calib=args.calibration_inputs)
        entry['timings']['export_s'] = round(time.monotonic() - t, 3)
        if stop.requested:  # arrived during the export: discard it, live.json untouched
            raise Preempted
        if res.decision == 'promoted':  # a rejected version never goes live
            # Read again page by page, not kept since the start: the export's peak is lower.
            progress('embed', modality=modality)
            entry['memory_embeddings'] = embed_memories(
                modality, b.path, store.iter_training_inputs(modality, since, until), stop,
                args.threads)
            entry['timings']['embed_s'] = entry['memory_embeddings']['seconds']
        b.info = {'base': base_name, 'base_path': str(base_dir),
                  'data': {'count': total, 'used': len(res.train_uuids) + len(res.holdout_uuids),
                           'trained': len(res.train_uuids), 'since': since,
                           'until': until, 'heldout_uuids': res.holdout_uuids,
                           'undecodable': [u for u, _ in res.undecodable]},
                  'validation': res.validation(cfg), 'decision': res.decision,
                  'reason': res.reason,
                  'training': {'steps': res.steps, 'max_steps': cfg.max_steps,
                               'time_budget_s': cfg.time_budget_s, 'lr': cfg.lr,
                               'rehearsal': cfg.rehearsal, 'holdout': cfg.holdout,
                               'gain_jitter': cfg.gain_jitter, 'flip': cfg.flip,
                               'holdout_gap_s': cfg.holdout_gap_s,
                               'freeze_codebook': cfg.freeze_codebook,
                               'seed': cfg.seed, 'threads': cfg.threads,
                               'timings': entry['timings'], 'losses': res.losses},
                  'quality': {p: quality[p]['code_agreement_vs_fp32']
                              for p in ('fp16', 'int8')}}
        if 'memory_embeddings' in entry:
            b.info['memory_embeddings'] = entry['memory_embeddings']
    # Committed (fsync + rename); the promotion is one atomic replace of live.json.
    entry['version'] = b.name
    if res.decision == 'promoted':
        versions.promote(b.name, reason=res.reason)
    stop.interruptible = True
    entry['seconds'] = round(time.monotonic() - t0, 3)
    return entry


def main(argv: list[str] | None = None) -> int:
    stop = Stopper()
    stop.install()  # first: a SIGTERM during the imports below is a clean stop too
    t0 = time.monotonic()
    out: dict[str, Any] = {'modalities': {}, 'preempted': False}
    code = 0
    store = None
    try:
        if not stop_with_parent():
            stop.requested, stop.at = True, time.monotonic()
            raise Preempted
        args = parse_args(argv)
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format='sleep_worker: %(message)s')
        if args.nice:
            os.nice(args.nice)  # before torch's threads start: they inherit it
        from sage_memory.errors import MemoryStoreError
        from sage_memory.store.memory_store import MemoryStore, StoreConfig
        try:
            store = MemoryStore(StoreConfig(database_url=args.database_url,
                                            data_dir=args.data_dir, read_only=True))
        except MemoryStoreError as err:
            out['error'] = f'cannot open the memory database: {err}'
            code = BAD_ARGS_EXIT
        else:
            current = ''
            progress('start', modalities=args.modalities)
            try:
                deadline = t0 + args.time_budget_s
                for k, modality in enumerate(args.modalities):
                    current = modality
                    # The budget is for the whole run: each modality gets an equal share of
                    # what is left (a skipped one leaves its share to the next).
                    share = (deadline - time.monotonic()) / (len(args.modalities) - k)
                    progress('retrain', modality=modality, share_s=round(share, 3))
                    try:
                        entry = retrain_modality(modality, store, args, stop, share)
                    except Exception as err:  # noqa: BLE001 (one modality's fault)
                        stop.interruptible = True
                        log.exception('%s: retraining failed', modality)
                        entry = _result(decision='failed',
                                        reason=f'{type(err).__name__}: {err}')
                    out['modalities'][modality] = entry
                    progress('decided', modality=modality, decision=entry['decision'],
                             version=entry['version'], inputs=entry['inputs'],
                             steps=entry['steps'], reason=entry['reason'])
                    log.info('%s: %s %s (%s)', modality, entry['decision'], entry['version'],
                             entry['reason'])
                    if stop.requested:
                        raise Preempted
                    current = ''
            except Preempted:
                if current:
                    out['modalities'][current] = _result(decision='preempted',
                                                         reason='stopped by a signal')
                raise
    except Preempted:
        out['preempted'] = True
        out['stop_s'] = round(time.monotonic() - stop.at, 3) if stop.at else 0.0
        code = PREEMPTED_EXIT
    except SystemExit as err:  # argparse
        return int(err.code or 0)
    finally:
        stop.interruptible = False
        if store is not None:
            store.close()
    out['seconds'] = round(time.monotonic() - t0, 3)
    sys.stdout.write(json.dumps(out, sort_keys=True) + '\n')
    sys.stdout.flush()
    return code


if __name__ == '__main__':
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is written and fsynced: skip the interpreter's teardown of torch and of the
    # data sets (about 1 s on a 2-core x86), so a stop is over when the JSON line is out.
    os._exit(rc)
