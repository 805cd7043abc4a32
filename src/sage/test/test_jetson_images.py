"""The Jetson images hang together (no Jetson here: files are checked, nothing is run).

docker/README.md's GPU-stack table equals the Dockerfiles' FROM and org.sage.* labels, and
each onnxruntime is built for its base's CUDA, cuDNN and TensorRT; no PyPI onnxruntime or
OpenCV is asked for; docker/compose.yaml is a compose file with the devices, volumes and
limits the nodes need, at the paths the code uses.
"""
from __future__ import annotations

from pathlib import Path
import re
import shlex

import pytest
import yaml

from sage_common.user_cache import cache_dir
from sage_memory.memory_params import PARAMS

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / 'docker'
JETSON = ('orin-humble.Dockerfile', 'thor-jazzy.Dockerfile')
# Table column -> Dockerfile label (FROM is the Base column).
COLUMNS = {
    'JetPack / L4T': ('jetpack', 'l4t'), 'CUDA': 'cuda', 'cuDNN': 'cudnn', 'TensorRT': 'tensorrt',
    'onnxruntime-gpu from': 'ort.source', 'ORT built for CUDA': 'ort.cuda',
    'ORT cuDNN': 'ort.cudnn', 'ORT TensorRT': 'ort.tensorrt',
    'OpenCV (GStreamer) from': 'opencv.source'}
# Top-level and service keys of the compose specification this file may use.
COMPOSE_TOP = {'services', 'volumes', 'networks', 'configs', 'secrets', 'name', 'include'}
SERVICE_KEYS = {'runtime', 'network_mode', 'ipc', 'restart', 'devices', 'ulimits', 'volumes',
                'environment', 'image', 'build', 'command', 'group_add', 'cap_add'}


def gpu_table() -> dict[str, dict[str, str]]:
    """The README table's rows by Dockerfile name."""
    lines = [ln for ln in (DOCKER / 'README.md').read_text().splitlines()
             if ln.startswith('| Dockerfile |') or re.match(r'\| \S+\.Dockerfile \|', ln)]
    header = [c.strip() for c in lines[0].strip('|').split('|')]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip('|').split('|')]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def dockerfile(name: str) -> tuple[str, dict[str, str], str]:
    """(FROM image, org.sage.* labels without the prefix, the text joined over backslashes)."""
    text = (DOCKER / name).read_text().replace('\\\n', ' ')
    base = re.search(r'^FROM\s+(\S+)', text, re.MULTILINE)
    labels = dict(re.findall(r'org\.sage\.([\w.]+)="([^"]*)"', text))
    assert base, name
    return base.group(1), labels, text


def major_minor(version: str, parts: int) -> tuple[int, ...]:
    return tuple(int(v) for v in version.split('.')[:parts])


@pytest.mark.parametrize('name', JETSON)
def test_readme_table_equals_the_dockerfile(name):
    row = gpu_table()[name]
    base, labels, _ = dockerfile(name)
    assert row['Base (FROM)'] == base
    for column, label in COLUMNS.items():
        want = (f'{labels[label[0]]} / {labels[label[1]]}' if isinstance(label, tuple)
                else labels[label])
        assert row[column] == want, (name, column)


@pytest.mark.parametrize('name', JETSON)
def test_onnxruntime_is_built_for_the_base_stack(name):
    _, labels, text = dockerfile(name)
    assert major_minor(labels['ort.cuda'], 2) == major_minor(labels['cuda'], 2)
    assert major_minor(labels['ort.cudnn'], 1) == major_minor(labels['cudnn'], 1)
    assert major_minor(labels['ort.tensorrt'], 2) == major_minor(labels['tensorrt'], 2)
    index = re.search(r'ORT_GPU_INDEX=(\S+)', text)
    if labels['ort.source'] == 'base image':
        assert index is None and 'onnxruntime' not in re.sub(r'#.*', '', text).replace(
            'check_base.py', '')
    else:   # an index of builds for one CUDA: its cuXYZ is the base's CUDA
        assert index and index.group(1).endswith(
            'cu' + labels['cuda'].replace('.', '')), index
        assert labels['ort.source'].split()[-1] in index.group(1)
    assert 'check_base.py' in text      # the build fails on a CPU onnxruntime / no GStreamer


def test_pypi_onnxruntime_and_opencv_are_refused():
    wanted = [ln.strip() for ln in (DOCKER / 'requirements-runtime.txt').read_text().splitlines()
              if ln.strip() and not ln.startswith('#')]
    assert not [w for w in wanted if w.startswith(('onnxruntime', 'opencv'))], wanted
    for cons in sorted(DOCKER.glob('constraints-*.txt')):
        pins = dict(ln.split('==') for ln in cons.read_text().splitlines()
                    if '==' in ln and not ln.startswith('#'))
        for name in ('onnxruntime', 'onnxruntime-gpu', 'opencv-python', 'opencv-python-headless',
                     'opencv-contrib-python', 'opencv-contrib-python-headless'):
            assert pins.get(name) == '0+from.base.image', (cons.name, name)


def test_compose_file_gives_the_nodes_their_devices_volumes_and_limits():
    compose = yaml.safe_load((DOCKER / 'compose.yaml').read_text())
    assert set(k for k in compose if not k.startswith('x-')) <= COMPOSE_TOP
    services = compose['services']
    assert set(services) == {'orin', 'thor'}
    for name, service in services.items():
        assert set(service) <= SERVICE_KEYS, (name, set(service) - SERVICE_KEYS)
        dockerfile_name = service['build']['dockerfile']
        assert (DOCKER / service['build']['context'] / dockerfile_name).resolve() == \
            (DOCKER.parent / dockerfile_name).resolve()
        assert (DOCKER.parent / dockerfile_name).is_file()
        assert service['runtime'] == 'nvidia' and service['network_mode'] == 'host'
        assert service['ipc'] == 'host'
        hosts = [d.split(':')[0] for d in service['devices']]
        for pattern in (r'/dev/video\d+$', r'/dev/snd$', r'/dev/i2c-\d+$'):
            assert any(re.match(pattern, h) for h in hosts), (name, pattern, hosts)
        assert int(service['ulimits']['rtprio']) > 0
        mounts = {v.split(':')[1]: v.split(':')[0] for v in service['volumes']}
        # The memory node's default data_dir and the encoders' TensorRT cache (user_cache,
        # HOME=/root in the image) are on named volumes.
        for path in ('/root/.local/share/sage', '/root/.cache/sage/trt'):
            assert mounts.get(path) in compose['volumes'], (name, path, mounts)
        # The default command is the image's own.
        _, _, text = dockerfile(Path(dockerfile_name).name)
        cmd = re.search(r'^CMD\s+(\[.*\])', text, re.MULTILINE)
        assert cmd and yaml.safe_load(cmd.group(1)) == service['command'], name


def test_volume_paths_are_the_ones_the_code_uses(monkeypatch):
    monkeypatch.setenv('HOME', '/root')
    monkeypatch.delenv('XDG_CACHE_HOME', raising=False)
    assert str(cache_dir('trt')) == '/root/.cache/sage/trt'
    data_dir = next(p.default for p in PARAMS if p.name == 'data_dir')
    assert str(Path(data_dir).expanduser()) == '/root/.local/share/sage'


def test_readme_commands_name_real_files():
    for line in (DOCKER / 'README.md').read_text().splitlines():
        if line.startswith('    docker '):
            args = shlex.split(line)
            path = args[args.index('-f') + 1]
            assert (ROOT / path).is_file(), line
