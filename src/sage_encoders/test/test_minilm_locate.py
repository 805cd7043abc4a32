"""MiniLM where no install step ran (a colcon build): found along the search path, or exported
once on first use into the user's model folder, or a message that names the way out.

The "fresh install" is this package's tree without the MiniLM export, which is what a colcon
build of a clean clone installs (the export is not committed); it runs in a subprocess with its
own HOME, ahead of the venv's editable install on the path.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from sage_common.params import resolve

import sage_encoders
from sage_encoders.language_core import LanguageEncoderCore
from sage_encoders.language_encoder_params import PARAMS, validate
from sage_encoders.minilm import ONNX_NAME, TOKENIZER_NAME
from sage_encoders.minilm_locate import find_minilm
from sage_encoders.model_files import PACKAGED_DIR, search_dirs

pytest.importorskip('onnxruntime')
SENTENCES = ['hello robot', 'the battery is almost empty']
CORE = """
import json, sys
from sage_common.params import resolve
from sage_encoders.errors import ModelError
from sage_encoders.language_core import LanguageEncoderCore
from sage_encoders.language_encoder_params import PARAMS, validate
import sage_encoders
print('PACKAGE', sage_encoders.__file__)
try:
    core = LanguageEncoderCore.from_params(resolve(PARAMS, json.loads(sys.argv[1]), validate),
                                           log=print)
except ModelError as err:
    print('ERROR:', err)
    sys.exit(3)
print('DIR', core.model._dir)
print('EMB', json.dumps(core.embed(json.loads(sys.argv[2])).tolist()))
"""


@pytest.fixture(scope='module')
def fresh(tmp_path_factory):
    """(site folder holding sage_encoders without the MiniLM export, a HOME for it)."""
    root = tmp_path_factory.mktemp('fresh')
    shutil.copytree(Path(sage_encoders.__file__).parent, root / 'site' / 'sage_encoders',
                    ignore=shutil.ignore_patterns('minilm_*', '__pycache__'))
    (root / 'prefix').mkdir()
    return root


def _env(root: Path, home: Path) -> dict[str, str]:
    env = dict(os.environ, HOME=str(home), AMENT_PREFIX_PATH=str(root / 'prefix'),
               HF_HUB_OFFLINE='1')
    env['PYTHONPATH'] = os.pathsep.join([str(root / 'site'), env.get('PYTHONPATH', '')])
    return env


def _core(root: Path, home: Path, overrides: dict, prelude: str = ''
          ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', prelude + CORE, json.dumps(overrides),
                           json.dumps(SENTENCES)], env=_env(root, home), capture_output=True,
                          text=True, timeout=900)


def _user_dir(home: Path) -> Path:
    return home / '.local' / 'share' / 'sage' / 'models'


@pytest.fixture(scope='module')
def first_start(fresh):
    """The first start of the fresh install's language core (it exports MiniLM)."""
    home = fresh / 'home'
    return home, _core(fresh, home, {})


def test_search_is_packaged_then_each_colcon_prefix_then_the_user_folder(monkeypatch, tmp_path):
    monkeypatch.setenv('AMENT_PREFIX_PATH', os.pathsep.join([str(tmp_path / 'a'),
                                                             str(tmp_path / 'b')]))
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert search_dirs('') == [PACKAGED_DIR,
                               tmp_path / 'a' / 'share' / 'sage_encoders' / 'models',
                               tmp_path / 'b' / 'share' / 'sage_encoders' / 'models',
                               _user_dir(tmp_path / 'home')]
    assert search_dirs(str(tmp_path / 'mine')) == [tmp_path / 'mine']


def test_the_first_folder_with_graph_and_tokenizer_wins(minilm_dir, tmp_path):
    half, full, later = tmp_path / 'half', tmp_path / 'full', tmp_path / 'later'
    half.mkdir()
    shutil.copyfile(minilm_dir / TOKENIZER_NAME, half / TOKENIZER_NAME)
    for folder in (full, later):
        folder.mkdir()
        for name in (ONNX_NAME.format(precision='int8'), TOKENIZER_NAME):
            os.link(minilm_dir / name, folder / name)
    assert find_minilm([half, full, later], 'int8') == full
    assert find_minilm([half, full, later], 'fp32') is None


def test_a_fresh_install_exports_minilm_on_first_use_into_the_user_folder(first_start,
                                                                          minilm_dir):
    home, proc = first_start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = dict(line.split(' ', 1) for line in proc.stdout.splitlines()
                 if line.startswith(('PACKAGE ', 'DIR ', 'EMB ')))
    assert not Path(lines['PACKAGE']).is_relative_to(PACKAGED_DIR.parent)
    user = _user_dir(home)
    assert f'exporting MiniLM once into {user}' in proc.stdout
    assert f'MiniLM exported into {user}' in proc.stdout
    assert Path(lines['DIR']) == user
    assert (user / ONNX_NAME.format(precision='fp32')).is_file()
    assert (user / TOKENIZER_NAME).is_file()
    assert not list(user.parent.glob('.models-export-*'))  # the work folder is gone
    emb = np.array(json.loads(lines['EMB']), np.float32)
    ref = LanguageEncoderCore.from_params(resolve(PARAMS, {}, validate)).embed(SENTENCES)
    assert (emb * ref).sum(1).min() > 0.9999


def test_the_next_start_finds_the_export_without_exporting_again(first_start, fresh):
    home, _ = first_start
    t0 = time.monotonic()
    proc = _core(fresh, home, {})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert 'exporting' not in proc.stdout
    assert f'DIR {_user_dir(home)}' in proc.stdout
    assert time.monotonic() - t0 < 60


def test_without_the_export_tools_the_error_names_them_and_the_way_out(fresh, tmp_path):
    proc = _core(fresh, tmp_path / 'home', {},
                 prelude="import sys\nsys.modules['torch'] = None\n")
    assert proc.returncode == 3, proc.stdout[-3000:]
    assert 'torch not installed' in proc.stdout
    assert 'pip install torch' in proc.stdout
    assert 'sage_encoders.export language --out DIR' in proc.stdout
    assert not _user_dir(tmp_path / 'home').exists()


def test_a_colcon_graph_node_without_export_says_how_and_exits_2(fresh, tmp_path, ros_domain):
    home = tmp_path / 'home'
    proc = subprocess.run([sys.executable, '-m', 'sage_encoders.language_encoder_node',
                           '--ros-args', '-p', 'export_if_missing:=false'],
                          env=_env(fresh, home), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'ERROR: ' in proc.stderr
    assert f'--out {_user_dir(home)}' in proc.stderr
    assert 'export_if_missing: true' in proc.stderr
    assert not _user_dir(home).exists()


def test_a_colcon_graph_node_embeds_text_with_the_exported_model(first_start, fresh,
                                                                  ros_domain):
    rclpy = pytest.importorskip('rclpy')
    # lazy: ROS only for this test, which skips without it
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from sage_common.ros import RELIABLE_QOS
    from sage_interfaces.msg import Latent, TextInput

    home, _ = first_start
    node_proc = subprocess.Popen([sys.executable, '-m', 'sage_encoders.language_encoder_node'],
                                 env=_env(fresh, home), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    ctx = Context()
    rclpy.init(context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    node = rclpy.create_node('minilm_probe', context=ctx)
    ex.add_node(node)
    got: list = []
    try:
        node.create_subscription(Latent, '/sage/language/latent', got.append, RELIABLE_QOS)
        pub = node.create_publisher(TextInput, '/sage/text/in', RELIABLE_QOS)
        deadline = time.monotonic() + 60  # generous: a loaded machine starts nodes slowly
        while time.monotonic() < deadline and pub.get_subscription_count() == 0:
            ex.spin_once(timeout_sec=0.1)
        assert pub.get_subscription_count() == 1, 'the node never subscribed'
        # The node's reader may match this writer after a first sample went out (volatile
        # durability: then that sample is not delivered), so send again until one arrives.
        next_send = 0.0
        while time.monotonic() < deadline and not got:
            if time.monotonic() >= next_send:
                pub.publish(TextInput(text='hello robot', source='test'))
                next_send = time.monotonic() + 2.0
            ex.spin_once(timeout_sec=0.1)
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        node_proc.send_signal(signal.SIGINT)
        out, _ = node_proc.communicate(timeout=60)
    assert got, f'no latent within 60 s; the node printed:\n{out[-3000:]}'
    assert (got[0].modality, got[0].text) == ('language', 'hello robot')
    assert len(got[0].embedding) == 384
    assert abs(float(np.linalg.norm(np.asarray(got[0].embedding))) - 1.0) < 1e-4
    assert node_proc.returncode == 0, out[-3000:]
    assert 'exporting' not in out
