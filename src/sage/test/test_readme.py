"""Every command the docs show runs as written, and shows what the docs say it shows.

The commands are read from the docs themselves (README.md, docs/*.md and the package READMEs in
PACKAGE_READMES: shell blocks and inline `sage ...`, `make ...`, `ros2 ...`, `colcon ...`
spans), so a command added to a doc without a check here fails
`test_every_doc_command_has_a_check`. Each check runs the command's own words; the only changes
are shorter durations (a 60 s recording becomes a few seconds) and concrete values for
placeholders (FILE, NAME). Commands that need what this machine does not have (colcon, ros2, a
Jetson, root, minutes to hours of benchmark) are covered by the named test that runs the same
code on a small input; `test_every_named_test_exists` keeps those names true.
docs/results/ is generated (scripts/results.py) and not read here: test_results_pages checks it.
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
import threading
import time

import pytest
from rcl_interfaces.srv import DescribeParameters
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rosbags.highlevel import AnyReader

from sage_common.ros import declare_params, RELIABLE_QOS, spin_until
from sage_common.stamps import cdr_header_stamp
from sage_eval.bagio import typestore
from sage_interfaces.msg import TextInput
from sage_sensors.camera_params import PARAMS

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / 'README.md'
# Package READMEs whose commands are checked too (add one here with checks for its commands).
PACKAGE_READMES = tuple(ROOT / 'src' / p / 'README.md'
                        for p in ('sage_interfaces', 'sage_common', 'sage_encoders', 'sage_eval'))
pytestmark = pytest.mark.graph

_PREFIXES = ('.venv/bin/sage ', 'sage ', 'make ', 'ros2 ', 'colcon ')


def doc_files() -> list[Path]:
    """The hand-written docs whose commands are checked (docs/results/ is generated)."""
    return [README, *sorted((ROOT / 'docs').glob('*.md')),
            *(p for p in PACKAGE_READMES if p.is_file())]


def readme_commands(text: str) -> list[str]:
    """Commands in a doc: shell-block lines (comments cut) and inline command spans."""
    out: list[str] = []
    in_block = False
    for line in text.splitlines():
        if line.startswith('```'):
            in_block = line.strip() in ('```bash', '```sh', '```console')
            continue
        if in_block:
            cmd = re.split(r'\s+#\s', line.strip(), maxsplit=1)[0].strip()
            if cmd and not cmd.startswith('#') and cmd not in out:
                out.append(cmd)
            continue
        for span in re.findall(r'`([^`\n]+)`', line):
            if span.startswith(_PREFIXES) and span not in out:
                out.append(span)
    return out


def doc_commands() -> dict[str, list[str]]:
    """Every command of every doc -> the docs (paths from the repo root) that show it."""
    out: dict[str, list[str]] = {}
    for path in doc_files():
        for cmd in readme_commands(path.read_text()):
            out.setdefault(cmd, []).append(str(path.relative_to(ROOT)))
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

BENCH_TEST = ('{} here; {} runs the same benchmark code on a small input')

CHECKS: dict[str, Check] = {
    # README.md: the two commands
    'make run': Check('make run DURATION=12', SUMMARY, 'the 60 s run shortened'),
    'make run DURATION=300': Check('', note="same target as 'make run' (DURATION=12 there)"),
    'make test': Check('', note='CI runs it: .ci/run is `make test`'),
    '.venv/bin/python scripts/test_weights.py test-artifacts/junit.xml': Check(
        '', note='test_suite_order reads a JUnit XML with its code and checks the order'),
    # README.md: on a ROS 2 machine
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
    'ros2 launch': Check('', note="the 'ros2 launch sage nano.launch.py' checks above"),
    # README.md: sage launch, watching, recording, replaying
    '.venv/bin/sage launch nano --duration 30 --set snarc.threshold.target_rate_hz=0.2': Check(
        '.venv/bin/sage launch nano --duration 15 --set snarc.threshold.target_rate_hz=0.2',
        SUMMARY, 'shortened to 15 s (test time): the memory commands below read what this run '
        'stored'),
    '.venv/bin/sage launch thor --domain-id 7': Check(
        '.venv/bin/sage launch thor --domain-id 7', [*SUMMARY, r'ROS_DOMAIN_ID=7'],
        'runs until Ctrl-C: stopped with SIGINT once it is up'),
    'sage launch': Check('', note="run by the 'sage launch nano/thor' commands above"),
    '.venv/bin/sage status': Check(
        '.venv/bin/sage status', [r'SAGE status', r'Salience', r'vision', r'ATP',
                                   r'Metabolic state', r'Nodes'],
        'live screen: read for a few seconds, then stopped'),
    '.venv/bin/sage bag record runs/my_bag --duration 60': Check(
        '.venv/bin/sage bag record runs/my_bag --duration 4',
        [r'/sage/camera/image_raw', r'asked for an Image of every frame'], 'duration shortened'),
    '.venv/bin/sage bag info runs/my_bag': Check(
        '.venv/bin/sage bag info runs/my_bag',
        [r'/sage/camera/image_raw', r'/sage/audio/frames', r'/sage/imu/data']),
    '.venv/bin/sage bag play runs/my_bag --rate 0.5 --clock': Check(
        '.venv/bin/sage bag play runs/my_bag --rate 0.5 --clock', [r'/sage/camera/image_raw']),
    '.venv/bin/sage replay runs/my_bag --offline --profile nano --decisions out.jsonl': Check(
        '.venv/bin/sage replay runs/my_bag --offline --profile nano --decisions out.jsonl',
        [r'"inputs"', r'"vision"']),
    '.venv/bin/sage scenario make runs/scn --seed 3': Check(
        '.venv/bin/sage scenario make runs/scn --seed 3 --duration 60', [r'wrote runs/scn'],
        "duration shortened to the program's 60 s minimum (150 s replayed three times cost "
        '2.5 min of CI)'),
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
    '.venv/bin/sage memory summary': Check('.venv/bin/sage memory summary',
                                           [r'"total": [1-9]\d*', r'"by_modality"']),
    ".venv/bin/sage memory query 'low battery' --k 5": Check(
        ".venv/bin/sage memory query 'low battery' --k 5", [r'battery']),
    '.venv/bin/sage memory sleep --max-duration 120': Check(
        '.venv/bin/sage memory sleep --max-duration 30', [r'consolidated', r'retraining'],
        'a shorter sleep, too short to retrain after the export reserve (test_sleep_node '
        'retrains through the same service)'),
    'sage bench': Check('', note='docs/benchmarks.md: each benchmark command is checked there'),
    # docs/deployment.md
    'ros2 param describe /camera fps': Check(
        '', note='no ros2 CLI here; test_readme_camera_fps_is_described asks a camera node '
                 'through the same DescribeParameters service'),
    '.venv/bin/sage launch nano --without camera,microphone,imu --duration 20': Check(
        '', note='test_bag_play_graph runs this graph without its sensors and plays a bag '
                 'into it'),
    'sage bag play': Check('', note="run by the README's 'sage bag play' command"),
    'docker build -f docker/orin-humble.Dockerfile -t sage:orin .': Check(
        '', note='on a Jetson only (no Docker engine, no Jetson base here); make test lints the '
                 'Dockerfiles (hadolint) and resolves their pins (scripts/check_image_pins.py)'),
    'docker compose -f docker/compose.yaml up orin': Check(
        '', note='on a Jetson only (no Jetson, no compose here); test_jetson_images checks '
                 "compose.yaml's structure, test_image runs the same graph in the x86 image"),
    'docker build -f docker/thor-jazzy.Dockerfile -t sage:thor .': Check(
        '', note='on a Thor only; make test lints the Dockerfile and resolves its pins'),
    'docker compose -f docker/compose.yaml up thor': Check(
        '', note='on a Thor only; test_jetson_images checks compose.yaml, test_image runs '
                 'the same graph in the x86 image'),
    'make image': Check('', note='minutes, root and podman: test_image builds the image and '
                                 'runs the nano graph in it when SAGE_TEST_IMAGE=1'),
    'sudo .venv/bin/sage service install --profile nano --user robot': Check(
        '', note='writes to /etc: test_service_unit installs into a temporary folder and '
                 'verifies the unit with systemd-analyze'),
    'sudo systemctl daemon-reload && sudo systemctl enable --now sage': Check(
        '', note='no systemd as PID 1 here; test_service_notify runs the launcher under the '
                 'notify protocol and watchdog the unit asks for'),
    'journalctl -u sage -f': Check('', note='no journald here: test_service_unit checks the '
                                            'unit logs to the journal'),
    'sudo .venv/bin/sage service uninstall': Check(
        '', note='test_service_unit uninstalls from its temporary folder'),
    'sage service install': Check('', note="the 'sudo .venv/bin/sage service install' check"),
    '.venv/bin/sage params nano -o runs/nano.params.yaml': Check(
        '.venv/bin/sage params nano -o runs/nano.params.yaml',
        [r'wrote runs/nano\.params\.yaml: \d+ nodes'],
        'test_readme_params_file_loads_in_rclpy also loads the file with rclpy\'s parser'),
    'sage params': Check('', note="the '.venv/bin/sage params nano -o "
                                  "runs/nano.params.yaml' check"),
    '.venv/bin/python -m sage_snarc.snarc_node --ros-args --params-file runs/nano.params.yaml '
    '-r __ns:=/r1 -p use_sim_time:=true': Check(
        '', note='runs until Ctrl-C: test_params_file starts each node executable so and reads '
                 'every value back through its parameter services'),
    '.venv/bin/sage launch nano --namespace /r1 --use-sim-time --log-level warn --without '
    'camera,microphone,imu --params-file runs/nano.params.yaml': Check(
        '', note='runs until Ctrl-C: test_namespaces runs two graphs with --namespace, '
                 'test_sim_time one with --use-sim-time, test_launch_files checks every option '
                 'reaches every process'),
    '.venv/bin/sage bag play runs/my_bag --clock --rate 2 --namespace /r1': Check(
        '', note='test_sim_time plays a bag with --clock at 0.5x and 2x into a graph on sim '
                 'time, test_namespaces one with --namespace'),
    'ros2 launch sage nano.launch.py params_file:=/etc/sage/robot.params.yaml namespace:=/r1 '
    'use_sim_time:=true log_level:=warn': Check(
        '', note='no ros2 CLI here: test_launch_files_take_params_file_namespace_use_sim_time_'
                 'and_log_level runs the launch description with these arguments'),
    'sage launch nano --multi-host': Check(
        '', note='test_dds_host_only runs the graph with and without --multi-host and probes '
                 'it from another network namespace'),
    # docs/two-hosts.md
    '.venv/bin/sage launch nano --role edge': Check(
        '', note='two hosts: test_twohost runs both roles in two network namespaces'),
    '.venv/bin/sage launch workstation --role assist': Check(
        '', note='two hosts: test_twohost runs both roles in two network namespaces'),
    'sage memory sync status': Check(
        '', note='needs a store with an outbox: test_outbox runs it against PostgreSQL'),
    'sage memory models': Check('.venv/bin/sage memory models',
                                [r'vision:', r'audio:', r'\*\s+packaged']),
    '.venv/bin/sage memory export runs/mem.jsonl': Check(
        '.venv/bin/sage memory export runs/mem.jsonl', [r'"inserted": [1-9]\d*']),
    # Importing what was just exported changes nothing: merges are idempotent.
    '.venv/bin/sage memory import runs/mem.jsonl': Check(
        '.venv/bin/sage memory import runs/mem.jsonl', [r'"inserted": 0', r'"updated": 0']),
    'sudo .venv/bin/sage bench twohost --delays 0,10 --loss 0,5': Check(
        '', note='root and network namespaces: test_twohost runs the bench'),
    # docs/salience.md
    'sage scenario make': Check('', note="the README's 'sage scenario make' command"),
    'sage experiment': Check('', note="run by the README's '.venv/bin/sage experiment' "
                                      'command, on both cores'),
    'sage replay BAG --offline --profile nano --decisions OUT.jsonl': Check(
        '', note="the README's two '.venv/bin/sage replay ... --offline' commands"),
    '.venv/bin/sage bench salience --seeds 20': Check(
        '', note=BENCH_TEST.format('hours', 'test_salience_scenes')),
    '.venv/bin/sage bench salience --seed-set tuning --seeds 10': Check(
        '', note=BENCH_TEST.format('an hour', 'test_salience_scenes (on a tuning scene)')),
    '.venv/bin/sage bench salience --seed-set tuning --seeds 10 --set snarc.threshold.min=0.33':
        Check('', note='test_salience_scenes runs the bench twice and checks the second '
                       'reuses its scenes'),
    '.venv/bin/sage bench salience --scenes busy --seeds 10': Check(
        '', note=BENCH_TEST.format('an hour', 'test_salience_scenes') + '; test_busy builds '
                 'and scores a short busy room'),
    # docs/benchmarks.md
    'sage bench NAME': Check('', note="the '.venv/bin/sage bench orchestrator' check"),
    '.venv/bin/sage bench salience --seeds 20 -o docs/results/data/salience.json': Check(
        '', note=BENCH_TEST.format('hours', 'test_salience_scenes') + '; test_results_pages '
                 'checks the page made from its JSON'),
    '.venv/bin/sage bench salience --seeds 6 --ablate -o docs/results/data/salience-ablation.json':
        Check('', note=BENCH_TEST.format('an hour', 'test_salience_scenes (with two of the '
                                         'ablations)') + '; test_results_pages checks the page '
                       "and the SNARC README's block made from its JSON"),
    '.venv/bin/sage bench salience --scenes busy --seeds 10 --ablate -o '
    'docs/results/data/salience-busy.json':
        Check('', note=BENCH_TEST.format('an hour', 'test_salience_scenes (with two of the '
                                         'ablations)') + '; test_results_pages checks the page '
                       "and the SNARC README's block made from its JSON"),
    '.venv/bin/sage bench orchestrator -o docs/results/data/orchestrator.json': Check(
        '', note="the '.venv/bin/sage bench orchestrator' check (the same run, its JSON in the "
                 "working folder); test_results_pages checks the page made from its JSON"),
    '.venv/bin/sage bench snarc --seconds 5 -o docs/results/data/snarc.json': Check(
        '', note="the '.venv/bin/sage bench snarc --seconds 5' check; test_results_pages "
                 'checks the page made from its JSON'),
    '.venv/bin/sage bench graph --seconds 20 --foxglove --domain-id 231 -o '
    'docs/results/data/graph.json':
        Check('', note="the '.venv/bin/sage bench graph --seconds 20' check (5 s, -o "
                       'runs/graph.json) and test_foxglove_cost (the --foxglove phases); '
                       'test_results_pages checks the page made from its JSON'),
    '.venv/bin/sage bench graph --seconds 20 --domain-id 231 -o '
    'docs/results/data/graph-runs/RUN.json':
        Check('', note="the '.venv/bin/sage bench graph --seconds 20' check (5 s, -o "
                       'runs/graph.json); test_results_pages checks the README block made from '
                       'the runs\' JSON'),
    '.venv/bin/sage bench memory -o docs/results/data/memory.json': Check(
        '', note="the '.venv/bin/sage bench memory' check (test_bench_memory); "
                 'test_results_pages checks the page made from its JSON'),
    'make results': Check('', note='test_results_pages runs its one command (scripts/results.py) '
                                   'on a copy of docs/results and checks the committed pages'),
    '.venv/bin/sage bench graph --seconds 20': Check(
        '.venv/bin/sage bench graph --seconds 5 -o runs/graph.json',
        [r'capture->salience', r'wrote runs/graph\.json'], 'a shorter measurement'),
    '.venv/bin/sage bench graph --seconds 10 --foxglove --no-compose --domain-id 231 -o '
    'docs/results/data/graph-live-view.json':
        Check('', note="the '.venv/bin/sage bench graph --seconds 20' check and "
                       'test_foxglove_cost (the --foxglove phases, the foxglove node in a process '
                       'of its own); test_results_pages checks the page made from its JSON'),
    '.venv/bin/sage bench graph --foxglove': Check(
        '', note='a full-graph benchmark; test_foxglove_cost runs its phases (off, on with a '
                 'client) on a small graph'),
    'sage bench graph --foxglove': Check('', note="the '.venv/bin/sage bench graph --foxglove' "
                                                  'check'),
    '.venv/bin/sage bench graph --swap': Check(
        '', note='a full-graph benchmark; test_swap_window checks its report and the '
                 'promotion of the versions'),
    '.venv/bin/python -m sage_bench.footprint --after 20 -- .venv/bin/sage launch nano '
    '--duration 25 --quiet': Check('', note='test_compose_footprint measures the composed graph '
                                            'with the same footprint code'),
    '.venv/bin/sage bench sensors --with-graph': Check(
        '', note='a full-graph benchmark; test_bench_sensors runs it'),
    '.venv/bin/sage bench encoders': Check(
        '', note=BENCH_TEST.format('minutes', 'test_encoders_bench')),
    '.venv/bin/sage bench snarc --seconds 5': Check(
        '', note='100 k memories to build first: test_snarc_bench runs it on fewer'),
    '.venv/bin/sage bench orchestrator': Check(
        '.venv/bin/sage bench orchestrator', [r'wrote bench-orchestrator\.json'],
        'as written: the JSON lands in the working folder'),
    '.venv/bin/sage bench transport': Check(
        '', note='two processes per transport and size: test_mailbox_bench runs it'),
    '.venv/bin/sage bench memory': Check(
        '', note='100 k rows take a minute; test_bench_memory runs the same run_bench on 6,000'),
    '.venv/bin/sage bench sleep': Check(
        '', note='two full scenes and an 8 min sleep: test_bench_sleep runs the same run_bench '
                 'on one short scene per day'),
    '.venv/bin/sage bench sleep --skip 2': Check(
        '', note='test_bench_sleep checks --skip takes the next rooms of the set'),
    '.venv/bin/sage bench sleep --hour': Check(
        '', note='an hour of inputs from full scenes (minutes): test_bench_sleep runs the same '
                 'bench on 24 inputs per modality of two short scenes'),
    '.venv/bin/sage bench sleep --preempt 20': Check(
        '', note='20 sleeps of a two-node graph (about 2 min): test_bench_sleep runs the same '
                 'run_preempt with 2'),
    '.venv/bin/sage bench targets': Check(
        '', note='six full scenes (minutes): test_bench_targets runs the same run_bench on two '
                 'short scenes of tuning rooms per profile and prints its table'),
    # docs/recording.md
    'sage status': Check('', note="the README's '.venv/bin/sage status' check"),
    'sage bag record': Check('', note="the README's '.venv/bin/sage bag record' check"),
    'ros2 bag': Check('', note='no ros2 CLI here; '
                               'test_recorded_bag_reads_independently_and_plays_back_identical_'
                               'messages reads a recording with a reader other than ours'),
    'sage report': Check('', note="the README's '.venv/bin/sage report' check"),
    'sage scenario score': Check('', note="the README's '.venv/bin/sage scenario score' check"),
    # docs/sleep.md
    'sage memory models --modality vision --rollback packaged': Check(
        '', note='needs a promoted version: test_sleep_node rolls one back under a running '
                 'memory node'),
    'sage bench targets': Check('', note="docs/benchmarks.md's '.venv/bin/sage bench targets'"),
    # docs/robot-drivers.md
    '.venv/bin/sage launch nano --set camera.backend=ros camera.topic=/camera/image_raw '
    'imu.backend=ros imu.topic=/imu/data microphone.backend=audio_common '
    'microphone.audio_topic=/audio': Check(
        '', note='needs the robot\'s drivers: test_robot_drivers runs this command as written '
                 '(on a test domain) beside the driver stand-ins'),
    '.venv/bin/sage launch nano --set camera.backend=ros '
    'camera.topic=/camera/camera/color/image_raw/compressed '
    'camera.info_topic=/camera/camera/color/camera_info microphone.backend=audio_common '
    'microphone.audio_topic=/audio/audio_stamped': Check(
        '', note='needs a RealSense and audio_capture: test_ros_backends_nodes runs the camera '
                 'and microphone nodes with these parameters on the RealSense and Humble-era '
                 'audio_common stand-ins'),
    'ros2 launch sage nano.launch.py set:="camera.backend=ros imu.backend=ros '
    'microphone.backend=audio_common"': Check(
        '', note='no ros2 CLI here; test_launch_files covers the set:= argument, '
                 'test_robot_drivers the values'),
    '.venv/bin/python tools/driver_standins/robot.py --camera usb_cam --audio 4x --imu '
    '--object-at 10 --clap-at 13': Check(
        '', note='runs until Ctrl-C: test_robot_drivers runs it as written for 17 s beside the '
                 'graph'),
    '.venv/bin/sage launch nano --set camera.backend=ros camera.topic=/camera/image_raw '
    'frames.camera.frame=camera_color_optical_frame frames.camera.x=0.12 '
    'frames.camera.z=0.31': Check(
        '', note='needs a camera driver: test_frames starts the frames node with --set poses '
                 'and reads them back from tf_static'),
    'ros2 param set /frames camera.z 0.31': Check(
        '', note='no ros2 CLI here; test_frames sets a pose on the running frames node through '
                 'the same parameter callback and reads the new transform from tf_static'),
    # docs/inspect.md
    '.venv/bin/sage topic list': Check(
        '', note='needs a running graph: test_topic_echo_prints_five_salience_messages lists '
                 'the topics of a live nano graph'),
    '.venv/bin/sage topic echo /sage/salience --count 5': Check(
        '', note='needs a running graph: test_topic_echo_prints_five_salience_messages runs it '
                 'against a live nano graph'),
    '.venv/bin/sage topic echo /sage/camera/image_raw --count 1 --json': Check(
        '', note='needs a running graph: test_topic_echo_prints_five_salience_messages runs it '
                 'against a live nano graph'),
    '.venv/bin/sage topic hz /sage/camera/image_raw': Check(
        '', note='runs until Ctrl-C: test_param_set_is_read_back_and_applied_by_the_camera runs '
                 'it with --count'),
    '.venv/bin/sage param get camera fps': Check(
        '', note='needs a running graph: test_param_set_is_read_back_and_applied_by_the_camera'),
    '.venv/bin/sage param set camera fps 10': Check(
        '', note='needs a running graph: test_param_set_is_read_back_and_applied_by_the_camera'),
    '.venv/bin/sage param dump camera -o camera.yaml': Check(
        '', note='needs a running graph: test_param_set_is_read_back_and_applied_by_the_camera'),
    'sage param get camera': Check(
        '', note="the '.venv/bin/sage param get camera fps' check"),
    ".venv/bin/sage say 'the battery is getting low'": Check(
        '', note='needs a running graph: test_said_text_is_scored_by_snarc'),
    '.venv/bin/sage reward 0.8': Check('', note='needs a running graph: test_rewards_reach_snarc'),
    '.venv/bin/sage reward -0.5': Check('', note='needs a running graph: '
                                                 'test_rewards_reach_snarc'),
    'sage train': Check('', note="the 'sage train vision --help' check; "
                                 'test_long_commands_print_no_control_codes_into_a_pipe trains '
                                 'two steps'),
    'sage memory sleep': Check('', note="the README's '.venv/bin/sage memory sleep' check; "
                                        'test_sleep_feedback_moves_the_bar checks its bar'),
    # package READMEs (PACKAGE_READMES)
    'ros2 param describe': Check('', note="the 'ros2 param describe /camera fps' check"),
    'sage bench encoders': Check('', note="the '.venv/bin/sage bench encoders' check"),
    'sage replay --offline': Check('', note="the README's two '.venv/bin/sage replay ... "
                                            "--offline' commands"),
    'sage scenario': Check('', note="the README's 'sage scenario make' and 'score' commands"),
    'sage bench salience': Check('', note="the '.venv/bin/sage bench salience' checks"),
    'sage bench sleep': Check('', note="the '.venv/bin/sage bench sleep' checks"),
    'sage train vision --help': Check('.venv/bin/sage train vision --help',
                                      [r'--steps', r'--seed', r'--out']),
    # docs/live-view-browser.md
    '.venv/bin/sage launch nano --duration 600': Check(
        '', note='runs ten minutes: test_live_view_browser launches nano with its Foxglove '
                 'server and opens it in headless Chromium'),
    '.venv/bin/python web/serve.py --ws ws://127.0.0.1:8765': Check(
        '', note='serves until stopped: test_live_view_browser runs it (on a free port) and '
                 'loads the page it serves'),
    '.venv/bin/python -m sage.graph_picture --profile nano --out docs/img/graph': Check(
        '', note='rewrites docs/img: test_graph_picture draws and renders a graph with its code, '
                 'test_live_view_browser reads a live graph with it'),
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


def test_every_doc_command_has_a_check():
    cmds = doc_commands()
    assert len(cmds) >= 15
    missing = [f'{c}  (in {", ".join(where)})' for c, where in cmds.items() if c not in CHECKS]
    assert not missing, 'doc commands without a check in test_readme.py:\n' + '\n'.join(missing)
    stale = [k for k in CHECKS if k not in cmds]
    assert not stale, f'checks for commands no doc shows any more: {stale}'
    for key, check in CHECKS.items():
        assert check.run or check.note, key
        if check.run:
            assert check.expect, f'{key}: a check must look for something in the output'


def test_every_named_test_exists():
    """A note that says "test_x covers it" names a test file or function that exists."""
    files = list(ROOT.glob('src/*/test/test_*.py'))
    names = {f.stem for f in files}
    for f in files:
        names |= set(re.findall(r'^def (test_\w+)', f.read_text(), re.M))
    named = {n for c in CHECKS.values() for n in re.findall(r'\btest_\w+', c.note)}
    unknown = sorted(named - names)
    assert not unknown, f'notes name tests that do not exist: {unknown}'


def test_inline_code_fits_on_one_line():
    """An inline span broken over two lines would hide its command from readme_commands."""
    bad = []
    for path in doc_files():
        in_block = False
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.startswith('```'):
                in_block = not in_block
                continue
            if not in_block and line.count('`') % 2:
                bad.append(f'{path.relative_to(ROOT)}:{n}: {line}')
    assert not bad, 'odd number of backticks (a span split over lines):\n' + '\n'.join(bad)


def test_doc_links_resolve():
    """Every relative link of the docs (and the generated results pages) names a file or
    folder that exists."""
    pages = [*doc_files(), *sorted((ROOT / 'docs' / 'results').glob('*.md'))]
    bad = []
    for path in pages:
        for target in re.findall(r'\]\(([^)\s]+)\)', path.read_text()):
            if re.match(r'[a-z]+:', target) or target.startswith('#'):
                continue
            if not (path.parent / target.split('#')[0]).exists():
                bad.append(f'{path.relative_to(ROOT)}: {target}')
    assert not bad, 'links to nothing:\n' + '\n'.join(bad)


def test_readme_camera_fps_is_described(ros_domain):
    """What `ros2 param describe /camera fps` shows: the camera's DescribeParameters service
    answers with the description and range of its parameter spec."""
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    camera = rclpy.create_node('camera', context=ctx)
    cli_node = rclpy.create_node('readme_param_describe', context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(camera)
    ex.add_node(cli_node)
    try:
        declare_params(camera, PARAMS)
        client = cli_node.create_client(DescribeParameters, '/camera/describe_parameters')
        assert spin_until(ex, client.service_is_ready, 10.0), 'no describe_parameters service'
        future = client.call_async(DescribeParameters.Request(names=['fps']))
        assert spin_until(ex, future.done, 10.0), 'describe_parameters did not answer'
        desc = future.result().descriptors[0]
    finally:
        ex.shutdown()
        camera.destroy_node()
        cli_node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    spec = next(s for s in PARAMS if s.name == 'fps')
    assert desc.name == 'fps' and desc.description == spec.description
    assert desc.floating_point_range[0].from_value == spec.min_value
    assert desc.floating_point_range[0].to_value == spec.max_value


def test_readme_params_file_loads_in_rclpy(user_dir):
    """docs/deployment.md's `sage params` writes a file rclpy's own parser loads as it is."""
    cwd, env = user_dir
    key = '.venv/bin/sage params nano -o runs/nano.params.yaml'
    _expect(key, _run(CHECKS[key].run, cwd, env, 60))
    path = cwd / 'runs' / 'nano.params.yaml'
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=int(env['ROS_DOMAIN_ID']),
               args=['readme', '--ros-args', '--params-file', str(path), '-r', '__ns:=/r1'])
    try:
        node = rclpy.create_node('snarc', context=ctx,
                                 automatically_declare_parameters_from_overrides=True)
        assert node.get_fully_qualified_name() == '/r1/snarc'
        assert node.has_parameter('threshold.target_rate_hz')
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


@pytest.fixture
def user_dir(tmp_path, ros_domain):
    """A working folder like a user's checkout (.venv linked) and an environment with its own
    HOME (the default database lives there) and DDS domain."""
    (tmp_path / '.venv').symlink_to(ROOT / '.venv')
    (tmp_path / 'runs').mkdir()
    env = dict(os.environ, HOME=str(tmp_path / 'home'), ROS_DOMAIN_ID=str(ros_domain),
               HF_HUB_OFFLINE='1', PYTHONUNBUFFERED='1')
    return tmp_path, env


def _interrupt_once(cmd: str, cwd: Path, env: dict[str, str], ready, timeout: float
                    ) -> tuple[int, str]:
    """Start a command that runs until Ctrl-C, send SIGINT as soon as `ready(output so far)`
    holds (or after `timeout` s): its exit code and all it printed."""
    proc = subprocess.Popen(shlex.split(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if not seen.is_set() and ready(''.join(lines)):
                seen.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen.wait(timeout)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=90)
    reader.join(timeout=10)
    return proc.returncode, ''.join(lines)


def _say(domain: int, texts: list[str]) -> None:
    """Publish operator texts on /sage/text/in (what an operator console would do)."""
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


def _header_stamps(bag: Path, topics: tuple[str, ...]) -> dict[str, set[float]]:
    """Each topic's header stamps in a bag (read from the CDR bytes, rounded to the µs)."""
    with AnyReader([bag], default_typestore=typestore()) as reader:
        conns = [c for c in reader.connections if c.topic in topics]
        out: dict[str, set[float]] = {t: set() for t in topics}
        for conn, _time, raw in reader.messages(connections=conns):
            out[conn.topic].add(round(cdr_header_stamp(raw), 6))
    return out


def test_readme_watch_record_replay_flow(user_dir):
    cwd, env = user_dir
    # The graph the README's watch/record commands look at.
    graph = subprocess.Popen(shlex.split('.venv/bin/sage launch nano --duration 60 --quiet'),
                             cwd=cwd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        key = '.venv/bin/sage status'
        # Piped, `sage status` prints its last screen when stopped: read for 12 s.
        status = subprocess.Popen(shlex.split(CHECKS[key].run), cwd=cwd, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(12)
        status.send_signal(signal.SIGINT)
        out, _ = status.communicate(timeout=30)
        _expect(key, out)
        key = '.venv/bin/sage memory sleep --max-duration 120'
        _expect(key, _run(CHECKS[key].run, cwd, env, 120))
        key = '.venv/bin/sage bag record runs/my_bag --duration 60'
        _expect(key, _run(CHECKS[key].run, cwd, env, 120))
        _say(int(env['ROS_DOMAIN_ID']), ['the battery is getting low, find a charger',
                                         'a red cup is on the kitchen table'])
    finally:
        graph.send_signal(signal.SIGINT)
        summary, _ = graph.communicate(timeout=90)
    assert graph.returncode == 0, summary[-3000:]
    # The camera hands frames to the encoder by shared memory, and the bag still holds an Image
    # of every frame: the recording's seconds count from when the camera sends them all, so
    # of the frames the encoder took in the bag's last 3 s of capture stamps (whatever came
    # before, on a loaded machine), nearly all have their Image in the bag (matched by stamp).
    stamps = _header_stamps(cwd / 'runs' / 'my_bag', ('/sage/camera/image_raw',
                                                      '/sage/vision/latent_initial'))
    taken = stamps['/sage/vision/latent_initial']
    late = {s for s in taken if s > max(taken) - 3.0}
    kept = late & stamps['/sage/camera/image_raw']
    print(f'frames taken in the last 3 s: {len(late)}, with their Image in the bag: {len(kept)}')
    assert len(late) >= 10, len(late)
    # 0.8: a recorder on loaded cores loses a few best-effort 900 kB Images (74 of 79 kept
    # beside three busy loops); at the camera's own 10 Hz it would keep about half.
    assert len(kept) >= 0.8 * len(late), (len(kept), len(late))
    # The text said to the graph is recalled by meaning from the database it wrote.
    key = ".venv/bin/sage memory query 'low battery' --k 5"
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
    for key in ('.venv/bin/sage memory summary', '.venv/bin/sage memory export runs/mem.jsonl',
                '.venv/bin/sage memory import runs/mem.jsonl', 'sage memory models',
                '.venv/bin/sage bench orchestrator', 'sage train vision --help',
                '.venv/bin/sage bench graph --seconds 20'):
        _expect(key, _run(CHECKS[key].run, cwd, env, 300))
    assert json.loads((cwd / 'bench-orchestrator.json').read_text())['benchmark'] == 'orchestrator'
    # The nano graph ran composed, as its profile says (the profile's groups, one process each).
    assert json.loads((cwd / 'runs' / 'graph.json').read_text())['results']['compose'] is True
    key = '.venv/bin/sage launch thor --domain-id 7'
    # Up: its two-second line has counted vision and audio inputs (the summary lists those).
    up = re.compile(r'vision: n=[1-9].*audio: n=[1-9]|audio: n=[1-9].*vision: n=[1-9]')
    code, out = _interrupt_once(CHECKS[key].run, cwd, dict(env, ROS_DOMAIN_ID=''),
                                lambda out: bool(up.search(out)), 60)
    assert code == 0, out[-3000:]
    _expect(key, out)
    key = 'make run'
    _expect(key, _run(CHECKS[key].run, ROOT, env, 600))
