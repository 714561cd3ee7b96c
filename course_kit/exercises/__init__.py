"""Implement-it exercises with checks against the course's own implementations (every lab).

``check(exercise_id, fn)`` runs your function on seeded cases and edge cases and compares it with
the reference in ``course_kit``; ``ids()`` lists the exercises. One module per lab
(``lab01.py`` ... ``lab08.py``) registers that lab's exercises; ``registry.py`` holds the machinery.
"""

from course_kit.exercises.registry import Case, Exercise, check, get, ids, register

__all__ = ["Case", "Exercise", "check", "get", "ids", "register"]
