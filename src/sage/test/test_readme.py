"""Every command the README shows runs as written, and shows what the README says it shows.

The commands are read from README.md itself (shell blocks and inline `sage ...`, `make ...`,
`ros2 ...`, `colcon ...` spans), so a command added to the README without a check here fails
`test_every_readme_command_has_a_check`. Each check runs the command's own words; the only
changes are shorter durations (a 60 s recording becomes a few seconds) and concrete values for
placeholders (FILE, NAME). Commands that need ROS tooling this machine does not have (colcon,
ros2) are checked by the equivalent that exercises the same claim, and say so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import re
import shlex
import signal
import subprocess
import time

import pytest

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / 'README.md'
pytestmark = pytest.mark.graph

_PREFIXES = ('.venv/bin/sage ', 'sage ', 'make ', 'ros2 ', 'colcon ')


def readme_commands(text: str) -> list[str]:
    """Commands in the README: shell-block lines (comments cut) and inline command spans."""
    out: list[str] = []
    in_block = False
    for line in text.splitlines():
        if line.startswith('```'):
            in_block = line.strip() in ('```bash', '```sh', '```console')
            continue
        if in_block:
            cmd = re.split(r'\s+#\s', line.strip(), maxsplit=1)[0].strip()
            if cmd and not cmd.startswith('#'):
                out.append(cmd)
            continue
        for span in re.findall(r'`([^`\n]+)`', line):
            if span.startswith(_PREFIXES) and span not in out:
                out.append(span)
    return out


@dataclass
class Check:
    """How one README command is run here, and what its output must show.

    Attributes:
        run: the command as run (the README's words, shortened or made concrete), or '' when
            another check or test runs it (named in `note`).
        expect: regular expressions its output (stdout + stderr) must match.
        note: why the command is run differently, or where it is covered.
    """

    run: str = ''
    expect: list[str] = field(default_factory=list)
    note: str = ''


SUMMARY = [r'\[sage\] summary', r'vision\s+inputs\s+\d+', r'audio\s+inputs\s+\d+',
           r'attention rate', r'experiences stored this run', r'database ']

CHECKS: dict[str, Check] = {
    'make run': Check('make run DURATION=12', SUMMARY, 'the 60 s run shortened'),
    'make run DURATION=300': Check('', note="same target as 'make run' (DURATION=12 there)"),
    'make test': Check('', note='CI runs it: .ci/run is `make test`'),
    'make image': Check('', note='minutes, root and podman: test_image.py builds the image and '
                                 'runs the nano graph in it when SAGE_TEST_IMAGE=1'),
    "sudo apt-get install $(grep -v '^#' requirements/colcon/apt.txt)": Check(
        '', note='test_package_dependencies checks apt.txt lists every <apt_depend>'),
    'rosdep install --from-paths src --ignore-src -y': Check(
        '', note='no rosdep here; test_package_dependencies checks every key against a '
                 'rosdistro snapshot and every import against the package.xml files'),
    'python3 -m pip install -r requirements/colcon/pip.txt': Check(
        '', note='test_package_dependencies checks pip.txt lists every run <pip_depend> and '
                 'that each is a real distribution (installed in this venv)'),
    'colcon build --symlink-install && source install/setup.bash': Check(
        '', note='no colcon on this machine; test_package_dependencies checks what colcon '
                 'needs, test_minilm_locate the first start of a build without MiniLM'),
    'colcon build': Check('', note='no colcon on this machine; test_package_dependencies '
                                   'checks the package manifests colcon reads'),
    'ros2 launch sage nano.launch.py': Check(
        '', note='no ros2 CLI here; test_launch_files loads this launch file with launch_ros '
                 'semantics and compares it with `sage launch`'),
    'ros2 launch sage nano.launch.py set:="camera.backend=v4l2 camera.device=/dev/video0"':
        Check('', note='needs a camera device; test_launch_files covers the set:= argument'),
    '.venv/bin/sage launch nano --duration 30 --set snarc.threshold.target_rate_hz=0.2': Check(
        '.venv/bin/sage launch nano --duration 30 --set snarc.threshold.target_rate_hz=0.2',
        SUMMARY, 'as written: the memory commands below read what this run stored'),
    '.venv/bin/sage launch thor --domain-id 7': Check(
        '.venv/bin/sage launch thor --domain-id 7', [*SUMMARY, r'ROS_DOMAIN_ID=7'],
        'runs until Ctrl-C: stopped with SIGINT once it is up'),
    '.venv/bin/sage status': Check(
        '.venv/bin/sage status', [r'SAGE status', r'Salience', r'vision', r'ATP',
                                   r'Metabolic state', r'Nodes'],
        'live screen: read for a few seconds, then stopped'),
    '.venv/bin/sage bag record runs/my_bag --duration 60': Check(
        '.venv/bin/sage bag record runs/my_bag --duration 8', [r'/sage/camera/image_raw'],
        'duration shortened'),
    '.venv/bin/sage bag info runs/my_bag': Check(
        '.venv/bin/sage bag info runs/my_bag',
        [r'/sage/camera/image_raw', r'/sage/audio/frames', r'/sage/imu/data']),
    '.venv/bin/sage bag play runs/my_bag --rate 0.5 --clock': Check(
        '.venv/bin/sage bag play runs/my_bag --rate 0.5 --clock', [r'/sage/camera/image_raw']),
    '.venv/bin/sage replay runs/my_bag --offline --profile nano --decisions out.jsonl': Check(
        '.venv/bin/sage replay runs/my_bag --offline --profile nano --decisions out.jsonl',
        [r'"inputs"', r'"vision"']),
    '.venv/bin/sage scenario make runs/scn --seed 3': Check(
        '.venv/bin/sage scenario make runs/scn --seed 3 --duration 90', [r'wrote runs/scn'],
        'duration shortened (150 s replayed three times cost 2.5 min of CI)'),
    '.venv/bin/sage replay runs/scn --offline --profile nano --decisions scn.jsonl': Check(
        '.venv/bin/sage replay runs/scn --offline --profile nano --decisions scn.jsonl',
        [r'"attended"']),
    '.venv/bin/sage scenario score scn.jsonl runs/scn': Check(
        '.venv/bin/sage scenario score scn.jsonl runs/scn', [r'recall', r'false']),
    ".venv/bin/sage experiment runs/scn --set snarc.weights.novelty=0.6 --vs "
    "'snarc.weights.novelty=0.1'": Check(
        ".venv/bin/sage experiment runs/scn --set snarc.weights.novelty=0.6 --vs "
        "'snarc.weights.novelty=0.1'", [r'novelty=0\.6', r'novelty=0\.1']),
    '.venv/bin/sage report runs/my_bag -o runs/report': Check(
        '.venv/bin/sage report runs/my_bag -o runs/report', [r'wrote .*report']),
    'sage launch': Check('', note="run by the 'sage launch nano/thor' commands above"),
    'sage bag play': Check('', note="run by the 'sage bag play' command above"),
    'sage experiment': Check('', note="run by the '.venv/bin/sage experiment' command above, "
                             'on both cores'),
    'ros2 param describe /camera fps': Check(
        '', note='no ros2 CLI here; test_readme_parameters_are_described asks the running '
                 'camera node through the same DescribeParameters service'),
    "sage memory query 'low battery' --k 5": Check(
        ".venv/bin/sage memory query 'low battery' --k 5", [r'battery']),
    'sage status': Check('', note="run as '.venv/bin/sage status' above"),
    'sage memory summary': Check('.venv/bin/sage memory summary',
                                 [r'"total": [1-9]\d*', r'"by_modality"']),
    'sage memory export FILE': Check('.venv/bin/sage memory export runs/mem.jsonl',
                                     [r'"inserted": [1-9]\d*']),
    # Importing what was just exported changes nothing: merges are idempotent.
    'sage memory import FILE': Check('.venv/bin/sage memory import runs/mem.jsonl',
                                     [r'"inserted": 0', r'"updated": 0']),
    'sage memory sync POSTGRES_URL': Check(
        '', note='needs a PostgreSQL server: test_transfer runs sync against the real one'),
    'sage bench NAME [-o OUT.json]': Check(
        '.venv/bin/sage bench orchestrator -o runs/bench.json', [r'wrote runs/bench.json']),
    'sage bench sensors --with-graph': Check(
        '', note='a full-graph benchmark; test_bench_sensors runs it'),
    'sage bench graph --seconds 20': Check(
        '.venv/bin/sage bench graph --seconds 5 -o runs/graph.json',
        [r'capture->salience', r'wrote runs/graph\.json'], 'a shorter measurement'),
    'sage launch nano --no-compose': Check(
        '', note='test_graph runs the nano graph with one process per node; test_compose_graph '
                 'runs it composed and test_compose_footprint measures that'),
    'sage launch nano --role edge': Check(
        '', note='two hosts: test_twohost runs both roles in two network namespaces'),
    'sage launch workstation --role assist': Check(
        '', note='two hosts: test_twohost runs both roles in two network namespaces'),
    'sage bench twohost': Check('', note='root and namespaces: test_twohost runs it'),
    'sage memory sync status': Check(
        '', note='needs a store with an outbox: test_outbox runs it against PostgreSQL'),
    'sage bench salience --seeds 10': Check(
        '', note='minutes per scene; test_salience_scenes runs the bench on a short scene'),
    'sage bench salience --seed-set tuning --seeds 10': Check(
        '', note='minutes per scene; test_salience_scenes runs the bench on a short scene of '
                 'the tuning set'),
    'sage bench memory': Check(
        '', note='100 k rows take minutes; test_bench_memory runs the same run_bench on 600'),
    'sage memory sleep --max-duration 120': Check(
        '.venv/bin/sage memory sleep --max-duration 30', [r'consolidated', r'retraining'],
        'a shorter sleep, too short to retrain after the export reserve (test_sleep_node '
        'retrains through the same service)'),
    'sage bench graph --swap': Check(
        '', note='a full-graph benchmark; test_swap_window checks its report and the '
                 'promotion of the versions'),
    'sage bench sleep --hour': Check(
        '', note='an hour of inputs from full scenes (minutes): test_bench_sleep runs the same '
                 'bench on 24 inputs per modality of two short scenes'),
    'sage bench sleep --preempt 20': Check(
        '', note='20 sleeps of a two-node graph (about 2 min): test_bench_sleep runs the same '
                 'run_preempt with 2'),
    'sage bench sleep': Check(
        '', note='two full scenes and a 5 min sleep (about 14 min): test_bench_sleep runs the '
                 'same run_bench on one short scene per day'),
    'sage bench targets': Check(
        '', note='six full scenes (minutes): test_bench_targets runs the same run_bench on two '
                 'short scenes of tuning rooms per profile and prints its table'),
    'sage memory models': Check('.venv/bin/sage memory models',
                                [r'vision:', r'audio:', r'\*\s+packaged']),
    'sage memory models --modality vision --rollback packaged': Check(
        '', note='needs a promoted version: test_sleep_node rolls one back under a running '
                 'memory node'),
    'sage train vision|audio': Check('.venv/bin/sage train vision --help',
                                     [r'--steps', r'--seed', r'--out']),
}


def _run(cmd: str, cwd: Path, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'`{cmd}` exited {proc.returncode}:\n{out[-3000:]}'
    return out


def _expect(key: str, out: str) -> None:
    for pattern in CHECKS[key].expect:
        assert re.search(pattern, out), f'`{key}`: output lacks {pattern!r}:\n{out[-2000:]}'


def test_every_readme_command_has_a_check():
    cmds = readme_commands(README.read_text())
    assert len(cmds) >= 15
    missing = [c for c in cmds if c not in CHECKS]
    assert not missing, f'README commands without a check in test_readme.py: {missing}'
    stale = [k for k in CHECKS if k not in cmds]
    assert not stale, f'checks for commands the README no longer shows: {stale}'
    for key, check in CHECKS.items():
        assert check.run or check.note, key
        if check.run:
            assert check.expect, f'{key}: a check must look for something in the output'


@pytest.fixture
def user_dir(tmp_path, ros_domain):
    """A working folder like a user's checkout (.venv linked) and an environment with its own
    HOME (the default database lives there) and DDS domain."""
    (tmp_path / '.venv').symlink_to(ROOT / '.venv')
    (tmp_path / 'runs').mkdir()
    env = dict(os.environ, HOME=str(tmp_path / 'home'), ROS_DOMAIN_ID=str(ros_domain),
               HF_HUB_OFFLINE='1', PYTHONUNBUFFERED='1')
    return tmp_path, env


def _say(domain: int, texts: list[str]) -> None:
    """Publish operator texts on /sage/text/in (what an operator console would do)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from sage_common.ros import RELIABLE_QOS
    from sage_interfaces.msg import TextInput
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node('readme_operator', context=ctx)
    pub = node.create_publisher(TextInput, '/sage/text/in', RELIABLE_QOS)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    try:
        end = time.monotonic() + 30
        while pub.get_subscription_count() == 0 and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.1)
        assert pub.get_subscription_count() > 0, 'the language encoder never subscribed'
        for text in texts:
            msg = TextInput(text=text, source='operator')
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                ex.spin_once(timeout_sec=0.1)
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_readme_watch_record_replay_flow(user_dir):
    cwd, env = user_dir
    # The graph the README's watch/record commands look at.
    graph = subprocess.Popen(shlex.split('.venv/bin/sage launch nano --duration 60 --quiet'),
                             cwd=cwd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        key = '.venv/bin/sage status'
        status = subprocess.Popen(shlex.split(CHECKS[key].run), cwd=cwd, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(12)
        status.send_signal(signal.SIGINT)
        out, _ = status.communicate(timeout=30)
        _expect(key, out)
        key = 'sage memory sleep --max-duration 120'
        _expect(key, _run(CHECKS[key].run, cwd, env, 120))
        key = '.venv/bin/sage bag record runs/my_bag --duration 60'
        _expect(key, _run(CHECKS[key].run, cwd, env, 120))
        _say(int(env['ROS_DOMAIN_ID']), ['the battery is getting low, find a charger',
                                         'a red cup is on the kitchen table'])
    finally:
        graph.send_signal(signal.SIGINT)
        summary, _ = graph.communicate(timeout=90)
    assert graph.returncode == 0, summary[-3000:]
    # The text said to the graph is recalled by meaning from the database it wrote.
    key = "sage memory query 'low battery' --k 5"
    _expect(key, _run(CHECKS[key].run, cwd, env, 120))
    for key in ('.venv/bin/sage bag info runs/my_bag',
                '.venv/bin/sage bag play runs/my_bag --rate 0.5 --clock',
                '.venv/bin/sage replay runs/my_bag --offline --profile nano --decisions '
                'out.jsonl',
                '.venv/bin/sage report runs/my_bag -o runs/report',
                '.venv/bin/sage scenario make runs/scn --seed 3',
                '.venv/bin/sage replay runs/scn --offline --profile nano --decisions scn.jsonl',
                '.venv/bin/sage scenario score scn.jsonl runs/scn',
                ".venv/bin/sage experiment runs/scn --set snarc.weights.novelty=0.6 --vs "
                "'snarc.weights.novelty=0.1'"):
        _expect(key, _run(CHECKS[key].run, cwd, env, 300))
    lines = [json.loads(s) for s in (cwd / 'out.jsonl').read_text().splitlines()]
    assert lines and {'stamp', 'modality', 'salience', 'attend', 'stored'} <= set(lines[0])
    assert any((cwd / 'runs' / 'report').rglob('*.png'))


def test_readme_launch_memory_bench_and_train_commands(user_dir):
    cwd, env = user_dir
    key = '.venv/bin/sage launch nano --duration 30 --set snarc.threshold.target_rate_hz=0.2'
    _expect(key, _run(CHECKS[key].run, cwd, env, 180))
    # The memory commands read the database that run wrote (under this HOME).
    for key in ('sage memory summary', 'sage memory export FILE', 'sage memory import FILE',
                'sage memory models', 'sage bench NAME [-o OUT.json]',
                'sage train vision|audio', 'sage bench graph --seconds 20'):
        _expect(key, _run(CHECKS[key].run, cwd, env, 300))
    assert json.loads((cwd / 'runs' / 'bench.json').read_text())
    # The nano graph ran composed, as its profile says (the profile's groups, one process each).
    assert json.loads((cwd / 'runs' / 'graph.json').read_text())['results']['compose'] is True
    key = '.venv/bin/sage launch thor --domain-id 7'
    proc = subprocess.Popen(shlex.split(CHECKS[key].run), cwd=cwd,
                            env=dict(env, ROS_DOMAIN_ID=''), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    time.sleep(15)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out[-3000:]
    _expect(key, out)
    key = 'make run'
    _expect(key, _run(CHECKS[key].run, ROOT, env, 600))
