"""Implement-it exercises with checks against the course's own implementations (every lab).

``check(exercise_id, fn)`` runs your function on seeded cases and edge cases and compares it with
the reference in ``course_kit``; ``hint(id)`` gives the next hint, ``solution(id)`` a worked solution,
``overview(lab)`` the lab's exercises with difficulty, importance and minutes, and ``pick(id, fn)``
lets the rest of a lab run on your function once it passed. One module per lab (``lab01.py`` ...
``lab08.py``) registers that lab's exercises; ``registry.py`` holds the machinery.
"""

from course_kit.exercises.registry import (Case, Exercise, Misconception, allow_solutions, card, check, get, hint,
                                           ids, overview, passed, pick, register, solution)

__all__ = ["Case", "Exercise", "Misconception", "allow_solutions", "card", "check", "get", "hint", "ids",
           "overview", "passed", "pick", "register", "solution"]
