"""course_kit: the tested PyTorch code behind the labs on bias, fairness and alignment.

Each module teaches one concept and names the lab that uses it:

- ``runtime``: device choice, seeding, progress bars (every lab).
- ``cli``: ``course-kit run <lab> [--quick] [--json]`` headless headline figures;
  ``course-kit student-edition DIR`` writes the student notebooks.
- ``quiz`` and ``exercises``: checked questions, predictions and implement-it exercises.
- Subpackages by concept: ``worlds`` (data-generating processes), ``preference`` (Bradley-Terry,
  DPO, EM over users), ``rl`` (PPO and reward hacking), ``diffusion`` (CFG, DDPO, Stable
  Diffusion), ``fairness`` (latent-space bias), ``viz`` (every figure and widget), ``experiments``
  (one headline per lab, listed in ``course_kit.cli.LABS``).
"""

import os

# Offline by default: no usage telemetry from huggingface_hub / TRL. Must be set before either is
# imported (huggingface_hub reads it at import); the toy scale never opens a socket (tests/test_offline.py).
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from course_kit.runtime import get_device, progress, seed_everything, set_progress

__all__ = ["get_device", "progress", "seed_everything", "set_progress"]
__version__ = "0.1.0"
