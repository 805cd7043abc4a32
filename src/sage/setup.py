from glob import glob
import os

from setuptools import find_packages, setup

package_name = 'sage'
# launch/ and config/ live at the workspace root (shared with `sage launch`); colcon installs
# them into share/sage so `ros2 launch sage nano.launch.py` finds them.
top = os.path.join('..', '..')

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob(os.path.join(top, 'launch', '*.py'))),
        ('share/' + package_name + '/config',
         glob(os.path.join(top, 'config', '*.yaml')) + glob(os.path.join(top, 'config', '*.xml'))
         + glob(os.path.join(top, 'config', '*.rviz'))
         + glob(os.path.join(top, 'config', '*.perspective'))),
        ('share/' + package_name + '/config/foxglove',
         glob(os.path.join(top, 'config', 'foxglove', '*.json'))),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='SAGE developers',
    maintainer_email='dev@sage-robotics.org',
    description='SAGE bringup and tools.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={'console_scripts': [
        'sage = sage.cli:main',
        'viz_node = sage.viz_node:main',
        'foxglove_node = sage.foxglove_node:main',
    ]},
)
