"""Profiles: the node list and every node's parameters, defined once in config/<name>.yaml.

Both `sage launch` and the launch_ros files (launch/*.launch.py) call `load_profile`, so the
node set, parameters and remappings cannot drift apart. Every value, including `--set`
overrides, is checked against the node's ParamSpecs before anything starts.

Profile layout::

    launch:                         # read by the launchers only
      domain_id: 42
      nodes:
        camera: {package: sage_sensors, executable: camera_node,
                 params: sage_sensors.camera_params, respawn: true}
    camera:                         # one key per node, each with its ros__parameters
      ros__parameters: {...}

The `launch:` block makes a profile no ROS params file: rclpy's parser refuses it. The profile
stays the one source of truth, and the params files nodes get are written from it
(`params_file_content`, keyed /**/<node> so they hold in any namespace): `sage params nano`
prints the whole graph's, `sage launch` writes one per node into its run folder. A ROS params
file given to `sage launch --params-file` (or params_file:=) goes the other way: its values
lay over the profile's and are checked like --set.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
import importlib
from pathlib import Path
from typing import Any

import yaml

from sage_bringup.frames_core import frame_mismatches
from sage_bringup.paths import config_dir
from sage_common.errors import ParamError, SageError
from sage_common.params import ParamSpec, ParamValue, flatten, resolve


class ProfileError(SageError):
    """A profile cannot be found or is malformed."""


# Parameters rclpy declares on every node itself (absent from the nodes' PARAMS): a profile
# section, --set and a params file may set them for any node.
ROS_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec('use_sim_time', False, 'the node clock follows /clock (a bag played with '
              '--clock, a simulator) instead of the system clock'),
)
ROS_PARAM_NAMES = frozenset(s.name for s in ROS_PARAMS)
LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')
# A node with no namespace: a params file's section for every node (/**) or one in any (/**/x).
ANY_NODE = ('**', '*')


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph, with its fully resolved parameters."""

    name: str
    package: str
    executable: str
    params_module: str
    parameters: dict[str, ParamValue]
    respawn: bool = True
    remappings: tuple[tuple[str, str], ...] = ()
    # Stopped after the others (memory: so their shutdown checkpoints reach it).
    stop_last: bool = False
    # Started this many seconds after the others (sage_bringup.start_later): background work
    # (memory) leaves a small machine's CPU to the sensors and scoring while they start.
    start_delay_s: float = 0.0
    # ROS_PARAMS given for this node (use_sim_time), kept apart: cores never see them.
    ros_parameters: dict[str, ParamValue] = field(default_factory=dict)

    @property
    def module(self) -> str:
        """Python module run by `python -m` (executable name == module name)."""
        return f'{self.package}.{self.executable}'


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    nodes: tuple[NodeSpec, ...]
    settings: dict[str, Any] = field(default_factory=dict)

    def composed(self, choice: bool | None = None) -> bool:
        """Whether the graph runs its compose groups one process each: `choice` (a command
        line's --compose / --no-compose) when given, else launch.compose (absent: off)."""
        return bool(self.settings.get('compose', False)) if choice is None else bool(choice)

    def without(self, names: Iterable[str]) -> Profile:
        """The same profile minus some nodes (e.g. sensors while a bag is played in).

        Raises:
            ProfileError: a name is not a node of the profile.
        """
        names = set(names)
        unknown = names - {n.name for n in self.nodes}
        if unknown:
            raise ProfileError(f"--without: no node {', '.join(sorted(unknown))} in profile "
                               f"'{self.name}'")
        return replace(self, nodes=tuple(n for n in self.nodes if n.name not in names))

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise ProfileError(f"profile '{self.name}' has no node '{name}'")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML would silently keep the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ProfileError(f'duplicate key {key!r} at line {key_node.start_mark.line + 1}')
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """Parse a profile file strictly (duplicate keys are errors)."""
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - safe loader
    except yaml.YAMLError as err:
        raise ProfileError(f'{path}: {err}') from err
    except ProfileError as err:
        raise ProfileError(f'{path}: {err}') from err


def _merged(base: Any, over: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        return {**base, **{k: _merged(base.get(k), v) for k, v in over.items()}}
    return over


def profile_data(path: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A profile file's content over the profile it `extends` (a name, or a path relative to
    the file): mappings merge key by key, any other value replaces the base's.

    Raises:
        ProfileError: malformed YAML, an unknown base, or a cycle of extends.
    """
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ProfileError(f'{path}: a profile is a mapping')
    base = data.pop('extends', None)
    if base is not None:
        ref = Path(str(base))
        base_path = ((path.parent / ref) if ref.suffix in ('.yaml', '.yml')
                     else profile_path(str(base)))
        if base_path.resolve() in (*_chain, path.resolve()):
            raise ProfileError(f'{path}: extends {base} makes a cycle')
        data = _merged(profile_data(base_path, (*_chain, path.resolve())), data)
    return data if _chain else _params_from(data, path)


def _params_from(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """A node entry with `params_from: other` starts from the other node's parameters, and its
    own section merges over them (a second memory node writes only what differs)."""
    nodes = (data.get('launch') or {}).get('nodes')
    if not isinstance(nodes, Mapping):
        return data
    for name, entry in nodes.items():
        source = entry.get('params_from') if isinstance(entry, Mapping) else None
        if source is None:
            continue
        if source not in data or source == name:
            raise ProfileError(f'{path}: launch.nodes.{name}.params_from: no section {source}')
        data[name] = _merged(data[source], data.get(name) or {})
    return data


def profile_path(name_or_path: str) -> Path:
    """Path of a profile given its name ('nano') or a YAML path."""
    candidate = Path(name_or_path)
    if candidate.suffix in ('.yaml', '.yml'):
        if not candidate.is_file():
            raise ProfileError(f'profile file not found: {candidate}')
        return candidate
    path = config_dir() / f'{name_or_path}.yaml'
    if not path.is_file():
        known = sorted(p.stem for p in config_dir().glob('*.yaml') if _is_profile(p))
        raise ProfileError(f"unknown profile '{name_or_path}' (known: {', '.join(known)})")
    return path


def _is_profile(path: Path) -> bool:
    try:
        data = profile_data(path)
    except ProfileError:
        return False
    return isinstance(data, dict) and 'launch' in data


def parse_set(expr: str) -> tuple[str, str, Any]:
    """Split 'node.param=value' (param may contain dots); the value is parsed as YAML.

    Raises:
        ProfileError: the expression is not of that form.
    """
    key, sep, raw = expr.partition('=')
    node, dot, param = key.strip().partition('.')
    if not sep or not dot or not node or not param:
        raise ProfileError(f"bad --set '{expr}': expected node.param=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ''
    except yaml.YAMLError as err:
        raise ProfileError(f"bad --set '{expr}': {err}") from err
    return node, param, value


def check_namespace(namespace: str) -> str:
    """A graph namespace as ROS spells it ('r1' -> '/r1'; '' or '/' -> '' = none).

    Raises:
        ProfileError: not a valid ROS namespace.
    """
    tokens = namespace.strip().strip('/').split('/') if namespace.strip('/ ') else []
    for token in tokens:
        if not token or not (token[0].isalpha() or token[0] == '_') \
                or not all(c.isalnum() or c == '_' for c in token):
            raise ProfileError(f"bad namespace '{namespace}': tokens of letters, digits and _ "
                               "(not starting with a digit), separated by /")
    return '/' + '/'.join(tokens) if tokens else ''


START_DELAY_MAX_S = 60.0


def check_start_delay(value: Any, where: str) -> float:
    """A node entry's `start_delay_s`: seconds, 0-60.

    Raises:
        ProfileError: not a number in that range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0.0 <= value <= START_DELAY_MAX_S:
        raise ProfileError(f'{where}: start_delay_s must be a number of seconds 0-'
                           f'{START_DELAY_MAX_S:g} (0 = with the others), not {value!r}')
    return float(value)


def check_log_level(level: str) -> str:
    """A ROS log level in lower case ('' = the nodes' default).

    Raises:
        ProfileError: not one of LOG_LEVELS.
    """
    word = level.strip().lower()
    if word and word not in LOG_LEVELS:
        raise ProfileError(f"bad log level '{level}' (one of: {', '.join(LOG_LEVELS)})")
    return word


def params_file_values(path: Path,
                       nodes: Mapping[str, frozenset[str]]) -> dict[str, dict[str, Any]]:
    """A ROS params file's values for the profile's nodes (node -> flat name -> value).

    Sections are matched by node name in any namespace (`camera`, `/camera`, `/r1/camera`,
    `/**/camera`, or `/r1: {camera: ...}`); a `/**` section goes to every node that declares
    its parameters (the ROS rule: a node ignores what it does not declare). Sections of
    nodes the profile does not run (the robot's own drivers) are skipped.

    nodes: node name -> the parameter names it declares (PARAMS and ROS_PARAMS).

    Raises:
        ProfileError: the file is not a ROS params file, or a /** parameter no node declares.
    """
    data = read_yaml(path)
    if not isinstance(data, Mapping):
        raise ProfileError(f'{path}: a ROS params file maps node names to ros__parameters')
    sections: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping) and 'ros__parameters' in value:
            sections.append((str(key), value['ros__parameters'] or {}))
        elif isinstance(value, Mapping) and all(isinstance(v, Mapping) and 'ros__parameters' in v
                                                for v in value.values()):
            sections += [(f'{key}/{k}', v['ros__parameters'] or {}) for k, v in value.items()]
        else:
            raise ProfileError(f'{path}: {key}: expected ros__parameters under a node name '
                               '(the ROS params file layout)')
    out: dict[str, dict[str, Any]] = {}
    for key, params in sections:
        if not isinstance(params, Mapping):
            raise ProfileError(f'{path}: {key}: ros__parameters must be a mapping')
        name = key.rstrip('/').rsplit('/', 1)[-1]
        flat = flatten(params)
        if name in ANY_NODE:
            unknown = [p for p in flat if not any(p in known for known in nodes.values())]
            if unknown:
                raise ProfileError(f"{path}: {key}: no node declares {', '.join(unknown)}")
            for node, known in nodes.items():
                out.setdefault(node, {}).update({p: v for p, v in flat.items() if p in known})
        elif name in nodes:
            out.setdefault(name, {}).update(flat)
    return out


def load_profile(name_or_path: str, overrides: Iterable[str] = (),
                 role: str | None = None, *, params_files: Iterable[Path] = (),
                 use_sim_time: bool | None = None, namespace: str = '',
                 log_level: str = '') -> Profile:
    """Read, merge `--set` overrides into, and validate a profile.

    role: one host's part of a graph that spans hosts (`launch.roles`): only its nodes (those
    absent from the profile are skipped), its own `set` overrides under the user's, and DDS
    open to the LAN (the other host must see them).
    params_files: ROS params files whose values lay over the profile's (`params_file_values`),
    under the role's and the user's overrides.
    use_sim_time: set on every node (None: as the profile and overrides say).
    namespace, log_level: the graph's ROS namespace and log level, kept in settings
    (`ros_args` turns them into each process's --ros-args).

    Raises:
        ProfileError: unknown profile, malformed YAML, unknown node or role.
        ParamError: an unknown parameter or a value outside its spec (message names it).
    """
    path = profile_path(name_or_path)
    data = profile_data(path)
    launch = data.get('launch')
    if not isinstance(launch, Mapping) or not isinstance(launch.get('nodes'), Mapping):
        raise ProfileError(f'{path}: missing launch.nodes')
    node_entries: Mapping[str, Mapping[str, Any]] = launch['nodes']
    roles = role_table(launch, path)
    if role is None:
        # Nodes that exist for one host's part only (the assist host's shared memory).
        node_entries = {n: e for n, e in node_entries.items() if not e.get('only_in_roles')}
    else:
        if role not in roles:
            raise ProfileError(f"profile '{path.stem}' has no role '{role}' (launch.roles: "
                               f"{', '.join(roles) or 'none'})")
        keep = set(roles[role].nodes)
        node_entries = {n: e for n, e in node_entries.items() if n in keep}
        overrides = [*(e for e in roles[role].sets if e.split('.', 1)[0] in node_entries),
                     *overrides]

    per_node: dict[str, dict[str, Any]] = {}
    modules = {}
    for node, entry in node_entries.items():
        section = data.get(node) or {}
        per_node[node] = flatten(section.get('ros__parameters') or {})
        if entry.get('params'):
            modules[node] = importlib.import_module(entry['params'])
    declared = {n: frozenset(s.name for s in m.PARAMS) | ROS_PARAM_NAMES
                for n, m in modules.items()}
    for file in params_files:
        for node, values in params_file_values(Path(file), declared).items():
            per_node[node].update(values)
    if use_sim_time is not None:
        overrides = [*overrides, *(f'{n}.use_sim_time={str(use_sim_time).lower()}'
                                   for n in per_node)]
    for expr in overrides:
        node, param, value = parse_set(expr)
        if node not in per_node:
            raise ProfileError(f"bad --set '{expr}': no node '{node}' in profile "
                               f"(nodes: {', '.join(per_node)})")
        per_node[node][param] = value

    nodes = []
    for node, entry in node_entries.items():
        for key in ('package', 'executable', 'params'):
            if not entry.get(key):
                raise ProfileError(f'{path}: launch.nodes.{node} lacks {key}')
        module = modules[node]
        given = {k: per_node[node].pop(k) for k in ROS_PARAM_NAMES & per_node[node].keys()}
        ros_values = {k: v for k, v in resolve(ROS_PARAMS, given, node=node).items()
                      if k in given}
        values = resolve(module.PARAMS, per_node[node], getattr(module, 'validate', None),
                         node=node)
        remaps = tuple((str(a), str(b)) for a, b in (entry.get('remappings') or {}).items())
        delay = check_start_delay(entry.get('start_delay_s', 0.0),
                                  f'{path}: launch.nodes.{node}')
        nodes.append(NodeSpec(name=node, package=entry['package'],
                              executable=entry['executable'], params_module=entry['params'],
                              parameters=values, respawn=bool(entry.get('respawn', True)),
                              remappings=remaps, stop_last=bool(entry.get('stop_last', False)),
                              start_delay_s=delay, ros_parameters=ros_values))
    mismatches = frame_mismatches({n.name: n.parameters for n in nodes})
    if mismatches:
        raise ProfileError(f'{path}: ' + '; '.join(mismatches))
    settings = {k: v for k, v in launch.items() if k != 'nodes'}
    settings.update(namespace=check_namespace(namespace), log_level=check_log_level(log_level))
    if role is not None:
        settings.update(multi_host=True, role=role)
    # A profile with fewer nodes (a test's, a robot without a microphone) keeps the shared
    # group table: absent members are skipped, and only a composed launch insists on them.
    unknown = {n for names in group_table(settings, path).values() for n in names} - set(per_node)
    if unknown and settings.get('compose'):
        raise ProfileError(f"{path}: launch.compose_groups: no node {', '.join(sorted(unknown))}")
    return Profile(name=path.stem, path=path, nodes=tuple(nodes), settings=settings)


def group_table(settings: Mapping[str, Any], path: Path) -> dict[str, list[str]]:
    """`launch.compose_groups` (group -> node names; nodes that share one process), checked.

    Raises:
        ProfileError: not a mapping of group -> list of names, or a node in two groups.
    """
    spec = settings.get('compose_groups') or {}
    where = f'{path}: launch.compose_groups'
    if not isinstance(spec, Mapping) or not all(isinstance(v, list) for v in spec.values()):
        raise ProfileError(f'{where} must map group names to lists of node names')
    seen: dict[str, str] = {}
    for group, names in spec.items():
        for name in names:
            if name in seen:
                raise ProfileError(f"{where}: node '{name}' is in groups '{seen[name]}' and "
                                   f"'{group}'")
            seen[str(name)] = str(group)
    return {str(g): [str(n) for n in names] for g, names in spec.items()}


@dataclass(frozen=True)
class RoleSpec:
    """One host's part of a graph that spans hosts: its nodes and their own overrides."""
    nodes: tuple[str, ...]
    sets: tuple[str, ...] = ()


def role_table(settings: Mapping[str, Any], path: Path) -> dict[str, RoleSpec]:
    """`launch.roles`: role -> {nodes: [names], set: ['node.param=value', ...]}.

    Raises:
        ProfileError: not that shape.
    """
    spec = settings.get('roles') or {}
    where = f'{path}: launch.roles'
    if not isinstance(spec, Mapping):
        raise ProfileError(f'{where} must map role names to {{nodes: [...], set: [...]}}')
    table = {}
    for role, entry in spec.items():
        entry = entry if isinstance(entry, Mapping) else {}
        nodes, sets = entry.get('nodes'), entry.get('set') or []
        if not isinstance(nodes, list) or not isinstance(sets, list):
            raise ProfileError(f'{where}.{role} needs nodes: [names] (and set: [node.param='
                               f'value, ...])')
        table[str(role)] = RoleSpec(tuple(str(n) for n in nodes), tuple(str(e) for e in sets))
    return table


def load_launch_settings(name_or_path: str) -> Profile:
    """A profile's `launch:` settings only, with no node resolved (fast: no node modules are
    imported): what commands that only watch the graph need, such as its domain.

    Raises:
        ProfileError: unknown profile, malformed YAML, no launch section.
    """
    path = profile_path(name_or_path)
    launch = profile_data(path).get('launch')
    if not isinstance(launch, Mapping):
        raise ProfileError(f'{path}: missing launch section')
    return Profile(name=path.stem, path=path, nodes=(),
                   settings={k: v for k, v in launch.items() if k != 'nodes'})


class _Quoted(str):
    """A string value written quoted: rcl's parser reads some bare words PyYAML leaves bare
    (y, n) as booleans, and a list of them then fails to load."""


def _quoted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _quoted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_quoted(v) for v in value]
    return _Quoted(value) if isinstance(value, str) else value


class _ParamsDumper(yaml.SafeDumper):
    pass


_ParamsDumper.add_representer(
    _Quoted, lambda dumper, text: dumper.represent_scalar('tag:yaml.org,2002:str', str(text),
                                                          style="'"))


def dump_params(content: Mapping[str, Any]) -> str:
    """A params file's text (params_file_content of one node or several) for rcl's parser."""
    return yaml.dump(_quoted(dict(content)), Dumper=_ParamsDumper, sort_keys=False,
                     default_flow_style=False, width=100)


def graph_params_file(profile: Profile) -> str:
    """Every node's section of a profile in one ROS params file (`sage params PROFILE`)."""
    content: dict[str, Any] = {}
    for spec in profile.nodes:
        content.update(params_file_content(spec))
    head = (f'# ROS params file of the SAGE profile {profile.path.name}, written by '
            f'`sage params {profile.name}`:\n# not a source. Edit the profile (or pass --set), '
            'then write it again.\n')
    return head + dump_params(content)


def ros_args(profile: Profile) -> list[str]:
    """The graph's namespace and log level as --ros-args arguments (after --ros-args)."""
    args: list[str] = []
    if profile.settings.get('namespace'):
        args += ['-r', f"__ns:={profile.settings['namespace']}"]
    if profile.settings.get('log_level'):
        args += ['--log-level', str(profile.settings['log_level'])]
    return args


def params_file_content(spec: NodeSpec) -> dict[str, Any]:
    """What `--ros-args --params-file` gets for one node: its own section, nested, under
    /**/<name> (a bare name would miss the node once a namespace is set)."""
    tree: dict[str, Any] = {}
    for name, value in {**spec.parameters, **spec.ros_parameters}.items():
        *groups, leaf = name.split('.')
        branch = tree
        for group in groups:
            branch = branch.setdefault(group, {})
        branch[leaf] = value
    return {f'/**/{spec.name}': {'ros__parameters': tree}}


__all__ = ['NodeSpec', 'Profile', 'ProfileError', 'ParamError', 'ROS_PARAMS',
           'check_log_level', 'check_namespace', 'dump_params', 'graph_params_file',
           'load_launch_settings', 'load_profile',
           'parse_set', 'params_file_content', 'params_file_values', 'profile_path', 'ros_args']
