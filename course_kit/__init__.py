"""course_kit: the tested PyTorch code behind the labs on bias, fairness and alignment.

Each module teaches one concept and names the lab that uses it:

- ``runtime``: device choice, seeding, progress bars (every lab).
- ``plotting``: the course's small plotting style (every lab).
- ``cli``: ``course-kit run <lab> [--quick] [--json]`` headless headline figures.

Lab modules are listed in ``course_kit.cli.LABS``.
"""

from course_kit.runtime import get_device, progress, seed_everything, set_progress

__all__ = ["get_device", "progress", "seed_everything", "set_progress"]
__version__ = "0.1.0"
