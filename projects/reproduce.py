"""Reproduce every paper's headline claims: run each built project's quick preset and write runs/report.md.

    python -m projects.reproduce                 # all built projects, quick presets
    python -m projects.reproduce --only ltb_icl  # a subset (comma-separated)
    python -m projects.reproduce --preset smoke  # the code path only (seconds)
    python -m projects.reproduce --fresh         # ignore earlier checkpoints in runs/

This file is the registry: which papers exist and how to run them. Claims, numbers and whether they hold come
from each run's results.json (computed by the project's code); the runner is `harness/reproduce.py`.
"""

import sys

from harness.reproduce import Project, main

REGISTRY: tuple[Project, ...] = (
    Project("ltb_icl", "In-Context Learning of a Linear Transformer Block (Zhang, Wu, Bartlett; NeurIPS 2024)",
            built=True),
    Project("two_hop", "Two-hop reasoning with distractors: 3-layer transformer, phase transition", built=True),
    Project("npo", "Negative Preference Optimization (Zhang, Lin, Bai, Mei; 2024)", built=True),
    Project("simnpo", "Simplicity Prevails: Rethinking NPO for LLM Unlearning (Fan et al.; 2024)", built=True),
    Project("speculative_rejection", "Fast Best-of-N Decoding via Speculative Rejection (Sun et al.; NeurIPS 2024)",
            built=True),
    Project("trust", "Reliable Decisions in Data-Starved Bandits via Trust Region Enhancement (Zhang et al.; 2024)",
            built=True),
    Project("nonreactive_exploration", "Policy Finetuning via Design of Experiments using Offline Data (2023)",
            built=True),
    Project("autoprm", "AutoPRM: controllable question decomposition and expert iteration on sub-question solvers "
            "(Chen et al.; NAACL 2024)", built=True),
    Project("spreeze", "Spreeze: high-throughput asynchronous actor-critic RL on one machine", built=True),
    Project("nes", "Neural Explicit Surface vs a volumetric baseline (Zhang, Chen, Wang; ACM MM 2023)", built=True),
)

if __name__ == "__main__":
    sys.exit(main(REGISTRY))
