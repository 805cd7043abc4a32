from setuptools import find_packages, setup

package_name = 'sage_bringup'

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
    description='SAGE bring-up: profiles, composition, supervisor, launch description, service.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={'console_scripts': [
        'compose = sage_bringup.compose:main',
        'frames_node = sage_bringup.frames_node:main',
    ]},
)
