"""The memory node's side of retraining (sage_memory.sleep.retrain.Retrainer) with stand-in
workers: real child processes that take memory, so the limit is seen to act."""
from __future__ import annotations

import sys
import time

import pytest

from sage_common.params import resolve
from sage_memory import memory_params
from sage_memory.sleep.retrain import Retrainer, rss_mb, worker_command
from sage_memory.sleep.worker import finetune_config, parse_args

# A child that grows to about 300 MB resident and then waits; SIGTERM ends it.
HOG = [sys.executable, '-c',
       'import time; b = bytearray(300 * 2**20); b[::4096] = b"x" * len(b[::4096]); '
       'print("{}", flush=True); time.sleep(60)']


def test_a_worker_over_the_memory_limit_is_stopped_and_the_run_says_why():
    t0 = time.monotonic()
    out = Retrainer(lambda s: None).run(HOG, lambda: False, max_rss_mb=150.0)
    assert time.monotonic() - t0 < 30  # stopped, not waited out (the child sleeps 60 s)
    assert out.ran and out.preempted
    assert 'over sleep.retrain.max_rss_mb 150' in out.error, out.error
    assert out.peak_rss_mb > 150.0
    assert out.summary().startswith('retraining stopped: the worker used')


def test_without_a_limit_the_same_worker_runs_until_asked_to_stop():
    asked = time.monotonic() + 2.0
    out = Retrainer(lambda s: None).run(HOG, lambda: time.monotonic() > asked, max_rss_mb=0.0)
    assert out.preempted and 'max_rss_mb' not in out.error  # (the stand-in dies of SIGTERM)
    assert out.peak_rss_mb > 250.0  # the hog was measured, and left alone until the stop


def test_rss_of_a_process_that_is_gone_is_zero():
    assert rss_mb(2**22 + 12345) == 0.0


def test_retrain_parameters_reach_a_command_line_the_worker_parses():
    values = resolve(memory_params.PARAMS, {'sleep.retrain.learning_rate': 0.002,
                                            'sleep.retrain.max_steps': 7,
                                            'sleep.retrain.threads': 3,
                                            'sleep.retrain.nice': 12})
    cmd = worker_command(values, '', '/tmp/d', '/tmp/v', 30.0, {}, 1)
    args = parse_args(cmd[3:])
    assert args.learning_rate == 0.002 and args.max_steps == 7 and args.nice == 12
    assert args.rehearsal == values['sleep.retrain.rehearsal']
    cfg = finetune_config(args, 30.0, 'vision')  # and what the fine-tune is then given
    assert (cfg.lr, cfg.max_steps, cfg.time_budget_s, cfg.threads) == (0.002, 7, 30.0, 3)
    assert cfg.freeze_codebook is True
    # A bool parameter as the command line writes it, both ways.
    values['sleep.retrain.freeze_codebook'] = False
    args = parse_args(worker_command(values, '', '/tmp/d', '/tmp/v', 30.0, {}, 1)[3:])
    assert finetune_config(args, 30.0, 'vision').freeze_codebook is False
    # Audio takes its own rehearsal share when one is set, vision the common one.
    values['sleep.retrain.rehearsal'], values['sleep.retrain.audio_rehearsal'] = 0.5, 0.25
    args = parse_args(worker_command(values, '', '/tmp/d', '/tmp/v', 30.0, {}, 1)[3:])
    assert finetune_config(args, 30.0, 'vision').rehearsal == 0.5
    assert finetune_config(args, 30.0, 'audio').rehearsal == 0.25
    values['sleep.retrain.audio_rehearsal'] = -1.0
    args = parse_args(worker_command(values, '', '/tmp/d', '/tmp/v', 30.0, {}, 1)[3:])
    assert finetune_config(args, 30.0, 'audio').rehearsal == 0.5
    # And its own step limit the same way.
    assert finetune_config(args, 30.0, 'audio').max_steps == 7
    values['sleep.retrain.audio_max_steps'] = 11
    args = parse_args(worker_command(values, '', '/tmp/d', '/tmp/v', 30.0, {}, 1)[3:])
    assert finetune_config(args, 30.0, 'audio').max_steps == 11
    assert finetune_config(args, 30.0, 'vision').max_steps == 7
    # The light and side of the day's crops vary for vision only (the profile's values).
    values['sleep.retrain.vision_gain_jitter'], values['sleep.retrain.vision_flip'] = 0.4, True
    args = parse_args(worker_command(values, '', '/tmp/d', '/tmp/v', 30.0, {}, 1)[3:])
    vision, audio = finetune_config(args, 30.0, 'vision'), finetune_config(args, 30.0, 'audio')
    assert (vision.gain_jitter, vision.flip) == (0.4, True)
    assert (audio.gain_jitter, audio.flip) == (0.0, False)
    values['sleep.retrain.vision_flip'] = False
    args = parse_args(worker_command(values, '', '/tmp/d', '/tmp/v', 30.0, {}, 1)[3:])
    assert finetune_config(args, 30.0, 'vision').flip is False


def test_the_worker_refuses_threads_and_niceness_out_of_range(capsys):
    base = ['--versions-dir', '/tmp/v']
    assert parse_args(base + ['--threads', '16', '--nice', '19']).threads == 16
    for bad in (['--threads', '0'], ['--threads', '17'], ['--nice', '-1'], ['--nice', '20']):
        with pytest.raises(SystemExit):
            parse_args(base + bad)
        assert '--threads must be in [1, 16], --nice in [0, 19]' in capsys.readouterr().err
