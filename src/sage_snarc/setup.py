from setuptools import find_packages, setup

package_name = 'sage_snarc'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml', 'README.md']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='SAGE developers',
    maintainer_email='dev@sage-robotics.org',
    description='SNARC salience scorer, offline replay and labelled scenarios.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'snarc_node = sage_snarc.snarc_node:main',
        ],
    },
)
