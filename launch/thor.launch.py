"""SAGE thor graph: `ros2 launch sage thor.launch.py [set:="..."] [domain_id:=N] [compose:=true]
[params_file:=FILE] [namespace:=/r1] [use_sim_time:=true] [log_level:=info]`.

The node list and parameters come from config/thor.yaml through the same loader as
`sage launch thor`, so both start the same graph. compose:=true runs each of the profile's
launch.compose_groups in one process (`python -m sage_bringup.compose`, the Python counterpart of a
ComposableNodeContainer), respawned as a whole (see sage_bringup.launch_description).
"""
from sage_bringup.launch_description import generate


def generate_launch_description():
    return generate('thor')
