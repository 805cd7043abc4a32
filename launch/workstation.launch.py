"""SAGE on the machine beside the robot: `ros2 launch sage workstation.launch.py role:=assist`
(the thor profile on the edge's domain, config/workstation.yaml), with the robot running
`ros2 launch sage nano.launch.py role:=edge`.
"""
from sage_bringup.launch_description import generate


def generate_launch_description():
    return generate('workstation')
