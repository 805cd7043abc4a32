"""Shared pytest fixtures: a distinct ROS_DOMAIN_ID per test that talks DDS, a listener node,
a salience recorder, the nano graph as a process, a one-node profile, and folders a process
cannot write."""
from __future__ import annotations

from collections import Counter, defaultdict
import itertools
import json
import os
from pathlib import Path
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest
import yaml

from sage_bringup.paths import config_dir
from sage_common.processes import interrupt
from sage_common.vocabulary import STATE_KEYS
from sage_encoders.model_files import PACKAGED_DIR
from sage_eval.attend_agreement import sequence_gaps

# A suite started from a script's background job (`bash .ci/run &`) inherits SIGINT ignored,
# and so would every process the tests start and then stop with SIGINT, as a user's Ctrl-C
# would. A Python handler here is reset to the default in each child at exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _domain_block() -> tuple[int, int]:
    """(first id, size) of this pytest process's block of DDS domain ids.

    pytest-xdist workers run test files side by side, so each gets a disjoint block of 10..229
    (ids below 10 stay free for the commands the README runs with a literal --domain-id).
    """
    workers = max(1, int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1')))
    worker = int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0')[2:] or 0)
    size = 220 // workers
    return 10 + worker * size, size


_FIRST, _SIZE = _domain_block()
# Test files that keep one domain for a module use SAGE_TEST_DOMAIN_BASE plus an offset of their
# own, 1..FIXED_OFFSETS-1 (grep SAGE_TEST_DOMAIN_BASE); offset 0 is the ambient ROS_DOMAIN_ID.
FIXED_OFFSETS = 20
os.environ['SAGE_TEST_DOMAIN_BASE'] = str(_FIRST)
os.environ['ROS_DOMAIN_ID'] = str(_FIRST)
# Where the per-test ids start inside the rest of the block: differs between concurrent runs.
_START = int(os.environ.get('SAGE_TEST_DOMAIN_SEED', str(os.getpid())))
_counter = itertools.count()


# Seconds per test file in a recent run (scripts/test_weights.py writes it from the suite's JUnit
# XML). xdist hands a worker one file at a time in collection order (scripts/test.sh turns its
# own reorder off), so the heaviest files go first and the short ones fill in behind them: the
# workers end together instead of one starting a long file last. Unknown files count 0.
_WEIGHTS = Path(__file__).parent / 'scripts' / 'test_weights.json'


def pytest_collection_modifyitems(session, config, items) -> None:
    weights = json.loads(_WEIGHTS.read_text()) if _WEIGHTS.is_file() else {}

    def weight(item) -> float:
        return -weights.get(item.nodeid.split('::', 1)[0], 0)

    items.sort(key=weight)  # stable: a file's tests keep their order
    # scripts/test.sh collects the alone stage from the files that name the mark: one marked
    # another way would run in neither stage.
    unnamed = sorted({str(item.path) for item in items if item.get_closest_marker('alone')
                      and 'pytest.mark.alone' not in item.path.read_text()})
    if unnamed:
        raise pytest.UsageError(f'tests marked alone in files that do not say pytest.mark.alone '
                                f'(scripts/test.sh would not collect them): {unnamed}')


@pytest.fixture
def ros_domain(monkeypatch) -> int:
    """A domain id no other test of this run uses, set in the environment."""
    span = _SIZE - FIXED_OFFSETS
    domain = _FIRST + FIXED_OFFSETS + (_START + next(_counter)) % span
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return domain


@pytest.fixture
def topic_listener():
    """listen(domain, [(msg_type, topic, callback)], name) -> stop(): one node in its own rclpy
    context, spun on a thread until stop() is called or the test ends (reliable QoS, the graph's
    own)."""
    started: list[tuple[threading.Event, threading.Thread]] = []

    def spin(domain, subscriptions, name, stop):
        # lazy: keeps ROS out of this module's import
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sage_common.ros import RELIABLE_QOS
        ctx = rclpy.Context()
        rclpy.init(context=ctx, domain_id=domain)
        node = rclpy.create_node(name, context=ctx)
        for msg_type, topic, callback in subscriptions:
            node.create_subscription(msg_type, topic, callback, RELIABLE_QOS)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        while not stop.is_set():
            ex.spin_once(timeout_sec=0.1)
        ex.shutdown()
        rclpy.try_shutdown(context=ctx)

    def listen(domain: int, subscriptions: list, name: str = 'test_listener'):
        stop = threading.Event()
        thread = threading.Thread(target=spin, args=(domain, subscriptions, name, stop),
                                  daemon=True)
        thread.start()
        started.append((stop, thread))

        def halt() -> None:
            stop.set()
            thread.join(timeout=10)
        return halt

    yield listen
    for stop, thread in started:
        stop.set()
        thread.join(timeout=10)


class SalienceListener:
    """Salience and diagnostics of the graph on one domain, in a thread."""

    def __init__(self, domain: int, name: str) -> None:
        self.lock = threading.Lock()
        self.salience: list[tuple[str, int, float, bool]] = []  # modality, input_seq, stamp
        self.axes: list[list[float]] = []  # for the record: what the graph scored
        self.nodes: set[str] = set()
        self.last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(domain, name), daemon=True)
        self._thread.start()

    def _run(self, domain: int, name: str) -> None:
        # lazy: keeps ROS out of this module's import
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from diagnostic_msgs.msg import DiagnosticArray
        from sage_interfaces.msg import Salience
        ctx = rclpy.Context()
        rclpy.init(context=ctx, domain_id=domain)
        node = rclpy.create_node(name, context=ctx)
        deep = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)

        def on_salience(msg: Salience) -> None:
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            with self.lock:
                self.salience.append((msg.modality, int(msg.input_seq), stamp, bool(msg.attend)))
                self.axes.append([msg.surprise, msg.novelty, msg.arousal, msg.reward,
                                  msg.conflict, msg.salience, msg.threshold])
                self.last = time.monotonic()

        def on_diagnostics(msg: DiagnosticArray) -> None:
            with self.lock:
                self.nodes.update(s.name.removeprefix('sage: ') for s in msg.status)

        node.create_subscription(Salience, '/sage/salience', on_salience, deep)
        node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 100)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        while not self._stop.is_set():
            executor.spin_once(timeout_sec=0.1)
        executor.shutdown()
        rclpy.try_shutdown(context=ctx)

    def clear(self) -> None:
        with self.lock:
            self.salience.clear()
            self.axes.clear()
            self.nodes.clear()

    def wait_for(self, condition, timeout: float, proc: subprocess.Popen | None = None) -> bool:
        """Until condition(self) holds; False after timeout or once proc has exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (proc is None or proc.poll() is None):
            with self.lock:
                if condition(self):
                    return True
            time.sleep(0.2)
        return False

    def scored_twice(self) -> dict[tuple[str, int], int]:
        """(modality, input_seq) pairs published more than once, with how often."""
        with self.lock:
            pairs = Counter((m, seq) for m, seq, _, _ in self.salience)
        return {k: n for k, n in pairs.items() if n > 1}

    def seq_gaps(self, modalities) -> dict[str, int]:
        """Per modality, the input_seq values missing between the lowest and highest heard."""
        seqs = defaultdict(list)
        with self.lock:
            for modality, seq, _stamp, _attend in self.salience:
                seqs[modality].append(seq)
        return {m: sequence_gaps(seqs[m]) for m in modalities}

    def wait_quiet(self, quiet_s: float, timeout: float) -> None:
        """Until no salience arrived for quiet_s (the graph has scored what it was sent)."""
        self.wait_for(lambda s: time.monotonic() - s.last >= quiet_s, timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _listeners():
    started: list[SalienceListener] = []

    def listen(domain: int, name: str = 'salience_listener') -> SalienceListener:
        started.append(SalienceListener(domain, name))
        return started[-1]
    yield listen
    for listener in started:
        listener.stop()


@pytest.fixture
def salience_listener():
    """listen(domain, name) -> SalienceListener, stopped when the test ends."""
    yield from _listeners()


@pytest.fixture(scope='module')
def module_salience_listener():
    """listen(domain, name) -> SalienceListener, stopped when the test module ends (for a
    graph a whole module's tests share)."""
    yield from _listeners()


class NanoGraph:
    """`sage launch nano` as a child process (log beside its run folder), stopped by SIGINT."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []

    @staticmethod
    def state_free_threshold() -> list[str]:
        """Overrides that keep SNARC's attend threshold from moving with the metabolic state.

        Two graphs compared on one bag each have their own orchestrator, whose FOCUS or REST
        spells start at other moments; at the states' threshold offsets (FOCUS -0.05) an input
        near the threshold is attended by one and not the other. Tests that judge scoring,
        not state timing, set every offset to 0 in both runs.
        """
        return [f'{key}=0.0' for state in STATE_KEYS
                for key in (f'snarc.threshold.offset.{state}',
                            f'orchestrator.state.{state}.threshold_offset')]

    def launch(self, domain: int, run_dir: Path, overrides: list[str],
               without: tuple[str, ...] = (), compose: bool | None = None,
               args: tuple[str, ...] = ()) -> subprocess.Popen:
        """`sage launch nano` in the background (compose None: as the profile says; args: more
        options, e.g. --namespace /r1 or --use-sim-time)."""
        cmd = [sys.executable, '-m', 'sage.cli', 'launch', 'nano', '--duration', '300',
               '--domain-id', str(domain), '--quiet', '--run-dir', str(run_dir)]
        for value in overrides:
            cmd += ['--set', value]
        if without:
            cmd += ['--without', ','.join(without)]
        if compose is not None:
            cmd.append('--compose' if compose else '--no-compose')
        cmd += list(args)
        with (run_dir.parent / f'{run_dir.name}.log').open('w') as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    env=dict(os.environ))
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> int:
        return interrupt(proc, 30.0)


def _nano_graphs():
    graphs = NanoGraph()
    yield graphs
    for proc in graphs.running:
        if proc.poll() is None:
            graphs.stop(proc)


@pytest.fixture
def nano_graph():
    """A NanoGraph; graphs still running when the test ends are stopped."""
    yield from _nano_graphs()


@pytest.fixture(scope='module')
def module_nano_graph():
    """A NanoGraph whose graphs run until the test module ends."""
    yield from _nano_graphs()


def _nano_with_only(nodes) -> dict:
    """The nano profile's YAML with only `nodes` launched (compose groups trimmed to them)."""
    data = yaml.safe_load((config_dir() / 'nano.yaml').read_text())
    launch = data['launch']
    launch['nodes'] = {n: launch['nodes'][n] for n in nodes}
    launch['compose_groups'] = {g: [n for n in names if n in nodes]
                                for g, names in launch.get('compose_groups', {}).items()}
    return data


@pytest.fixture
def nano_with_only():
    """nano_with_only(nodes) -> the nano profile's YAML (a dict) launching only those nodes."""
    return _nano_with_only


@pytest.fixture
def imu_only_profile(tmp_path):
    """make(domain) -> path of the nano profile with only its IMU node (the cheapest real graph)
    on that domain."""
    def make(domain: int):
        data = _nano_with_only(['imu'])
        data['launch']['domain_id'] = domain
        path = tmp_path / 'imu_only.yaml'  # the profile's name is its file's stem
        path.write_text(yaml.safe_dump(data))
        return path
    return make


@pytest.fixture
def unwritable():
    """make(folder) -> command prefix; processes started with it cannot write folder or its files.

    Tests run as root, whom permissions do not stop: there the files are given to `nobody`
    and children run as root without the capabilities that override file permissions
    (setpriv), so the kernel really refuses writes. Other users: the write bits are removed.
    """
    restore: list[tuple[Path, int]] = []

    def make(folder: Path) -> list[str]:
        paths = [folder, *sorted(folder.rglob('*'))]
        if os.geteuid() == 0:
            setpriv = shutil.which('setpriv')
            if setpriv is None:
                pytest.skip('setpriv (util-linux) is needed to drop root\'s file capabilities')
            try:
                owner = pwd.getpwnam('nobody')
                uid, gid = owner.pw_uid, owner.pw_gid
            except KeyError:
                uid = gid = 65534
            for p in paths:
                os.chown(p, uid, gid)
                os.chmod(p, 0o755 if p.is_dir() else 0o644)
            return [setpriv, '--bounding-set=-dac_override,-dac_read_search,-fowner']
        for p in paths:
            mode = stat.S_IMODE(p.stat().st_mode)
            restore.append((p, mode))
            os.chmod(p, mode & ~0o222)
        return []

    yield make
    for p, mode in reversed(restore):  # let pytest remove its temporary folders
        os.chmod(p, mode)


@pytest.fixture(scope='session')
def minilm_dir():
    """Packaged model dir with MiniLM exported (the install step; done once if missing)."""
    # lazy: keeps onnxruntime out of this module's import
    from sage_encoders.minilm import ONNX_NAME, TOKENIZER_NAME
    needed = [PACKAGED_DIR / ONNX_NAME.format(precision=p) for p in ('fp32', 'int8')]
    needed += [PACKAGED_DIR / TOKENIZER_NAME, PACKAGED_DIR / 'language_quality.json']
    if not all(p.is_file() for p in needed):
        # lazy: keeps cv2 out of this module's import
        from sage_encoders.export import export_language
        export_language(PACKAGED_DIR)
    return PACKAGED_DIR
