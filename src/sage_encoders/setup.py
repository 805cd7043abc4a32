from setuptools import find_packages, setup

package_name = 'sage_encoders'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    # Trained models ship inside the package (MiniLM ONNX is exported at install time).
    package_data={package_name: ['models/*.onnx', 'models/*.npy', 'models/*.json',
                                 'models/*.pt']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='SAGE developers',
    maintainer_email='dev@sage-robotics.org',
    description='SAGE vision/audio puzzle VQ-VAEs, MiniLM language encoder, IRP refinement.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'vision_encoder_node = sage_encoders.vision_encoder_node:main',
            'audio_encoder_node = sage_encoders.audio_encoder_node:main',
            'language_encoder_node = sage_encoders.language_encoder_node:main',
        ],
    },
)
