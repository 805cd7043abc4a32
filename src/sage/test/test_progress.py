"""Progress bars: the helper draws (with an ETA) when the output is a terminal, and the long
commands print no control codes when their output goes to a pipe."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer

from sage import progress
from sage.bag_types import sage_typestore
from sage.memory_sleep import FeedbackPrinter
from sage.progress import progress_bar, wanted
from sage_interfaces.msg import Latent

CLI = [sys.executable, '-m', 'sage.cli']
T0 = 1_700_000_000.0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_draws_with_eta_when_told_the_output_is_a_terminal():
    out = _Terminal()
    with progress_bar('replay scene', 40.0, unit='s of bag', enabled=True, file=out) as report:
        for done in range(0, 21, 5):
            report(float(done), None)
        report(30.0, 60.0)  # the total is learnt late
    drawn = out.getvalue()  # the last frame is drawn as the bar stops, then wiped
    assert '\x1b[' in drawn and 'replay scene' in drawn and 's of bag' in drawn
    assert 'ETA' in drawn and '/60' in drawn


def test_no_bar_unless_stdout_and_stderr_are_terminals(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, 'stdout', terminal)
    monkeypatch.setattr(sys, 'stderr', terminal)
    assert wanted() and not wanted(json_output=True)
    monkeypatch.setattr(sys, 'stdout', io.StringIO())  # piped: `sage replay ... | jq`
    assert not wanted()
    monkeypatch.setattr(sys, 'stderr', io.StringIO())
    with progress_bar('quiet', 10.0) as report:
        report(5.0, None)
    assert report is progress.ignore


def _latent_bag(path) -> None:
    """30 s of vision latents (scored without encoders: the commands' own cost stays small)."""
    rng = np.random.default_rng(5)
    base = rng.normal(size=32)
    writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    conn = writer.add_connection('/sage/vision/latent', 'sage_interfaces/msg/Latent',
                                 typestore=sage_typestore())
    for k in range(300):
        t = T0 + k * 0.1
        emb = base + rng.normal(size=32) * (3.0 if 200 <= k < 210 else 0.05)
        msg = Latent(modality='vision', input_seq=k, embedding=emb.astype(np.float32).tolist())
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int(round(t % 1 * 1e9))
        writer.write(conn, int(t * 1e9), serialize_message(msg))
    writer.close()


def _piped(args: list[str], cwd, timeout: float = 240) -> str:
    """A `sage` command with stdout and stderr into pipes, as CI or `| tee` runs it."""
    env = {k: v for k, v in os.environ.items() if k not in ('FORCE_COLOR', 'TTY_COMPATIBLE')}
    env['HOME'] = str(cwd)  # the experiment's encoded cache stays in the test's folder
    proc = subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, timeout=timeout)
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == 0, out[-3000:]
    return out


def test_long_commands_print_no_control_codes_into_a_pipe(tmp_path, ros_domain):
    """scenario make, offline replay, bag play, experiment, a bench and train run through
    their bars' code paths with their output a pipe: the output is there, no escape codes,
    no carriage returns."""
    _latent_bag(tmp_path / 'lat')
    outputs = {
        'scenario': _piped(['scenario', 'make', 'scn', '--seed', '1', '--duration', '90'],
                           tmp_path),
        'replay': _piped(['replay', 'lat', '--offline', '--decisions', 'lat.jsonl'], tmp_path),
        'play': _piped(['bag', 'play', 'lat', '--all', '--rate', '10', '--wait', '0.5'],
                       tmp_path),
        'experiment': _piped(['experiment', 'lat', '--set', 'snarc.weights.novelty=0.6',
                              '--vs', 'snarc.weights.novelty=0.1', '--jobs', '1'], tmp_path),
        'bench': _piped(['bench', 'orchestrator', '--seconds', '0.5', '-o', 'orch.json'],
                        tmp_path),
        'train': _piped(['train', 'vision', '--steps', '2', '--no-export', '--out', 'models'],
                        tmp_path),
    }
    assert 'wrote scn' in outputs['scenario']
    assert '"inputs": {"vision": 300}' in outputs['replay']
    assert 'novelty=0.6' in outputs['experiment']
    assert 'played 300 messages' in outputs['play']
    assert 'wrote orch.json' in outputs['bench']
    assert 'step 2/2' in outputs['train']
    for name, out in outputs.items():
        assert '\x1b[' not in out, f'{name}: escape codes in piped output:\n{out[-2000:]}'
        assert '\r' not in out, f'{name}: carriage returns in piped output:\n{out[-2000:]}'


def test_sleep_feedback_moves_the_bar():
    """`sage memory sleep`'s bar follows the Sleep action's feedback: seconds slept against
    the seconds it may take in all (its own printed lines are unchanged)."""
    moved: list[tuple[float, float | None]] = []
    out = io.StringIO()
    printer = FeedbackPrinter(out, lambda done, total: moved.append((done, total)))
    fb = SimpleNamespace(phase='retrain', modality='vision', elapsed_s=12.0, progress=0.3,
                         time_left_s=28.0, steps=40, examined=0, consolidated=0, models=[])
    printer(SimpleNamespace(feedback=fb))
    assert moved == [(12.0, 40.0)]
    assert 'retrain vision' in out.getvalue() and '28 s left' in out.getvalue()
