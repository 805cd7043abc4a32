"""The profile as a ROS params file (issue 52, must-show 2), and the ROS launch conventions
SAGE takes: use_sim_time on every node, a user's params file, a namespace, a log level.

`sage params nano` writes every node's section under /**/<node>; each node executable, started
directly with rclpy's own parser (`--ros-args --params-file FILE -r __ns:=/r1 -p
use_sim_time:=true`), must hold every value of its section (read back through its parameter
services, as `ros2 param get` would) and use_sim_time true. Kept short: the nodes start in
parallel, and the language and audio encoders are left out (the vision encoder stands for the
three encoder shells, which share one base), as is the Foxglove server (it would take a port
the live-view tests use).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from rcl_interfaces.srv import GetParameters
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import parameter_value_to_python
import yaml

from sage_bringup.profile import (check_log_level, check_namespace, load_profile, ParamError,
                                  params_file_content, ProfileError,
                                  ros_args)
from sage_common.params import flatten

LEFT_OUT = ('language_encoder', 'audio_encoder', 'foxglove')
START_TIMEOUT_S = 90.0  # nine processes import their stacks at once on 2 shared cores
NAMESPACE = '/r1'


# --- the profile's side: checks before anything starts --------------------------------------

def test_use_sim_time_is_taken_for_every_node_and_kept_apart_from_the_cores_parameters():
    prof = load_profile('nano', ['snarc.use_sim_time=true'])
    snarc = prof.node('snarc')
    assert snarc.ros_parameters == {'use_sim_time': True}
    assert 'use_sim_time' not in snarc.parameters  # the core's values stay its own
    assert prof.node('camera').ros_parameters == {}
    assert params_file_content(snarc)['/**/snarc']['ros__parameters']['use_sim_time'] is True
    every = load_profile('nano', use_sim_time=True)
    assert all(n.ros_parameters == {'use_sim_time': True} for n in every.nodes)
    with pytest.raises(ParamError, match="snarc: parameter 'use_sim_time': cannot use 'maybe'"):
        load_profile('nano', ['snarc.use_sim_time=maybe'])
    with pytest.raises(ParamError, match="unknown parameter 'use_sim_tim'"):
        load_profile('nano', ['snarc.use_sim_tim=true'])


def test_a_ros_params_file_lays_over_the_profile_and_set_wins(tmp_path):
    robot = tmp_path / 'robot.yaml'
    robot.write_text(yaml.safe_dump({
        '/**': {'ros__parameters': {'use_sim_time': True, 'diagnostics_period_s': 2.0}},
        '/r1/camera': {'ros__parameters': {'fps': 12.5, 'scene': {'period_s': 30.0}}},
        '/r1': {'snarc': {'ros__parameters': {'threshold': {'target_rate_hz': 0.3}}}},
        'usb_cam': {'ros__parameters': {'video_device': '/dev/video0'}},  # not SAGE's: skipped
    }))
    prof = load_profile('nano', ['camera.fps=15.0'], params_files=[robot])
    camera = prof.node('camera').parameters
    assert camera['fps'] == 15.0 and camera['scene.period_s'] == 30.0
    assert prof.node('snarc').parameters['threshold.target_rate_hz'] == 0.3
    # /** reaches every node that declares the parameter, as rclpy would
    assert all(n.ros_parameters['use_sim_time'] for n in prof.nodes)
    assert all(n.parameters['diagnostics_period_s'] == 2.0 for n in prof.nodes
               if 'diagnostics_period_s' in n.parameters)
    bad = tmp_path / 'bad.yaml'
    bad.write_text(yaml.safe_dump({'/**': {'ros__parameters': {'no_such_thing': 1}}}))
    with pytest.raises(ProfileError, match='no node declares no_such_thing'):
        load_profile('nano', params_files=[bad])
    out_of_range = tmp_path / 'range.yaml'
    out_of_range.write_text(yaml.safe_dump({'camera': {'ros__parameters': {'fps': -1.0}}}))
    with pytest.raises(ParamError, match="camera: parameter 'fps'"):
        load_profile('nano', params_files=[out_of_range])
    # the profile itself is no ROS params file (its launch: block), and is refused as one
    with pytest.raises(ProfileError, match='launch: expected ros__parameters'):
        load_profile('nano', params_files=[load_profile('nano').path])


def test_namespace_and_log_level_become_every_process_ros_args():
    prof = load_profile('nano', namespace='r1', log_level='WARN')
    assert ros_args(prof) == ['-r', '__ns:=/r1', '--log-level', 'warn']
    assert ros_args(load_profile('nano')) == []
    assert check_namespace('/') == '' and check_namespace('/a/b_2') == '/a/b_2'
    for bad in ('1r', 'r-1', 'a//b'):
        with pytest.raises(ProfileError, match='bad namespace'):
            check_namespace(bad)
    with pytest.raises(ProfileError, match='bad log level'):
        check_log_level('loud')


# --- must-show 2: each node reads the file back ---------------------------------------------

def _get(executor, node, fqn: str, names: list[str], deadline: float, proc, log) -> dict:
    client = node.create_client(GetParameters, f'{fqn}/get_parameters')
    while not client.service_is_ready():
        assert proc.poll() is None, f'{fqn} exited: {log.read_text()[-2000:]}'
        assert time.monotonic() < deadline, f'{fqn}: no parameter service'
        executor.spin_once(timeout_sec=0.2)
    future = client.call_async(GetParameters.Request(names=names))
    executor.spin_until_future_complete(future, timeout_sec=max(1.0, deadline - time.monotonic()))
    assert future.done(), f'{fqn}: no answer'
    return {n: parameter_value_to_python(v) for n, v in zip(names, future.result().values)}


@pytest.mark.graph
def test_each_node_started_by_rclpys_parser_reads_the_params_file_back(ros_domain, tmp_path):
    # values unlike the defaults, so a node that missed its section would show it
    sets = ['camera.fps=3.5', 'camera.width=160', 'camera.height=120', 'imu.rate=50.0',
            'microphone.gain=0.5', 'snarc.threshold.target_rate_hz=0.3', "snarc.state_file=''",
            'snarc.memory.preload_k=0', f'orchestrator.state_dir={tmp_path / "st"}',
            f'memory.data_dir={tmp_path / "mem"}', "memory.language_encoder=''",
            'viz.marker_rate_hz=2.0', 'vision_encoder.threads=1']
    params = tmp_path / 'nano.params.yaml'
    written = subprocess.run([sys.executable, '-m', 'sage.cli', 'params', 'nano', '-o',
                              str(params), *[a for s in sets for a in ('--set', s)]],
                             capture_output=True, text=True, timeout=60)
    assert written.returncode == 0, written.stderr
    sections = yaml.safe_load(params.read_text())
    nodes = [n for n in load_profile('nano').nodes if n.name not in LEFT_OUT]
    env = dict(os.environ, ROS_DOMAIN_ID=str(ros_domain))
    procs = {}
    for spec in nodes:  # exactly what a user types: no name remap, SAGE's file, rclpy's parser
        log = (tmp_path / f'{spec.name}.log').open('w')
        procs[spec.name] = subprocess.Popen(
            [sys.executable, '-m', spec.module, '--ros-args', '--params-file', str(params),
             '-r', f'__ns:={NAMESPACE}', '-p', 'use_sim_time:=true'],
            env=env, stdout=log, stderr=subprocess.STDOUT)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    probe = rclpy.create_node('params_probe', context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(probe)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        for spec in nodes:
            expected = flatten(sections[f'/**/{spec.name}']['ros__parameters'])
            assert expected, spec.name
            log = tmp_path / f'{spec.name}.log'
            got = _get(executor, probe, f'{NAMESPACE}/{spec.name}',
                       [*expected, 'use_sim_time'], deadline, procs[spec.name], log)
            assert procs[spec.name].poll() is None, log.read_text()
            assert got.pop('use_sim_time') is True, spec.name
            differ = {k: (v, got[k]) for k, v in expected.items()
                      if (list(got[k]) if isinstance(v, list) else got[k]) != v}
            assert not differ, (spec.name, differ)
        # and nothing of the graph answers outside the namespace
        names = {(ns, n) for n, ns in probe.get_node_names_and_namespaces()}
        assert {(NAMESPACE, s.name) for s in nodes} <= names
        assert not {('/', s.name) for s in nodes} & names
    finally:
        executor.shutdown()
        rclpy.try_shutdown(context=ctx)
        for proc in procs.values():
            proc.send_signal(signal.SIGINT)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
