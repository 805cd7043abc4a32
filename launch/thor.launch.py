"""SAGE thor graph: `ros2 launch sage thor.launch.py [set:="node.param=value ..."] [domain_id:=N]`.

The node list and parameters come from config/thor.yaml through the same loader as
`sage launch thor`, so both start the same graph.
"""
from sage.launch_description import generate


def generate_launch_description():
    return generate('thor')
