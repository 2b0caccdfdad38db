from setuptools import find_packages, setup

setup(
    name="stm",
    version="0.1.0",
    description="Space-Time Memory Networks for semi-supervised and interactive video object segmentation",
    packages=find_packages(include=["stm", "stm.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch",
        "torchvision",
        "numpy",
        "pillow",
        "scipy",
        "scikit-image",
        "opencv-python-headless",
        "tqdm",
        "omegaconf",
        "tensorboard",
        "av",
        "starlette",
        "uvicorn",
    ],
)
