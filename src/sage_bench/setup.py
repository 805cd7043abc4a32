from setuptools import find_packages, setup

package_name = 'sage_bench'

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
    description='SAGE benchmarks (sage bench) and their rigs.',
    license='Apache-2.0',
    tests_require=['pytest'],
)
