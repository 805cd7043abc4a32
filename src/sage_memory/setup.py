from setuptools import find_packages, setup

package_name = 'sage_memory'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['store/migrations/script.py.mako']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='SAGE developers',
    maintainer_email='dev@sage-robotics.org',
    description='SAGE memory: experience store, recall, state checkpoints, sleep, sync.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={'console_scripts': ['memory_node = sage_memory.memory_node:main']},
)
