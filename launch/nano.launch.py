"""SAGE nano graph: `ros2 launch sage nano.launch.py [set:="node.param=value ..."] [domain_id:=N]`.

The node list and parameters come from config/nano.yaml through the same loader as
`sage launch nano`, so both start the same graph.
"""
from sage.launch_description import generate


def generate_launch_description():
    return generate('nano')
