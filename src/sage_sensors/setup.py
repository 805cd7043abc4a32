from setuptools import find_packages, setup

package_name = 'sage_sensors'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='SAGE developers',
    maintainer_email='dev@sage-robotics.org',
    description='SAGE camera, microphone and IMU nodes.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'camera_node = sage_sensors.camera_node:main',
            'microphone_node = sage_sensors.microphone_node:main',
            'imu_node = sage_sensors.imu_node:main',
            'make_samples = sage_sensors.make_samples:main',
            'timeline = sage_sensors.timeline:main',
        ],
    },
)
