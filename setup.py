"""Defect-Aux-Net: multi-task surface defect classification, segmentation and detection."""

import setuptools

setuptools.setup(
    name="defect-aux-net",
    version="0.1.0",
    description=(
        "Keras 3 / TensorFlow implementation of Defect-Aux-Net: one network that "
        "classifies, segments and detects surface defects."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # tfds_builders/ is not installed: an editable install maps its `tfds new`
    # layout (no top-level __init__.py) to a namespace package whose resources TFDS
    # cannot read ("MultiplexedPath only supports directories"). The launch scripts
    # run from the repository root, where it is importable as it is.
    packages=setuptools.find_packages(include=["defect_aux_net*", "launch*"]),
    # TensorFlow itself is not a base requirement: TPU VMs ship `tensorflow-tpu`,
    # and listing `tensorflow` here would make pip replace it.
    install_requires=[
        # 3.13: TerminateOnNaN(raise_error=True), which StopOnNaN extends.
        "keras>=3.13",
        "tensorflow-datasets>=4.9",
        # TFDS imports these but does not declare them on Python >= 3.9: builders need
        # importlib_resources, and the `tfds` command imports apache_beam and mlcroissant
        # at start-up (tensorflow/datasets#5463).
        "importlib_resources",
        "apache-beam",
        "mlcroissant",
        "absl-py",
        "numpy",
        "pycocotools",
        "scipy",
        "scikit-learn",
        "pillow",
        "pyyaml",
        "matplotlib",
        # TensorBoard logs (keras.callbacks.TensorBoard, tf.summary.image) need it;
        # tensorflow-cpu does not install it.
        "tensorboard",
    ],
    entry_points={
        "console_scripts": [
            f"defect-aux-net-{name.replace('_', '-')}=launch.{name}:run"
            for name in (
                "train", "lr_find", "evaluate", "export", "predict", "benchmark", "reproduce"
            )
        ]
    },
    extras_require={
        "cpu": ["tensorflow-cpu>=2.16"],
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        # Uses the tensorflow-tpu that the TPU VM image already has installed.
        "tpu": [],
        # tfds.testing imports dill; pytest-xdist runs the suite on both cores (pytest.ini);
        # nbclient runs notebooks/ in a kernel of the test's interpreter (ipykernel).
        "test": ["pytest", "pytest-xdist", "dill", "nbclient", "nbformat", "ipykernel"],
        # ONNX / LiteRT / OpenVINO export and their runtimes (defect_aux_net.export.edge_formats);
        # nncf quantises OpenVINO models to INT8. Tested with TF 2.21, Keras 3.15, numpy 2.4.
        "export": [
            "tf2onnx>=1.17",
            "onnx",
            "onnxruntime>=1.20",
            "ai-edge-litert>=2.3",
            "openvino>=2026.0",
            "nncf>=3.0",
        ],
    },
)
