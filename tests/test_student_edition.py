"""The student edition gives nothing away, asks for reasoning, and frames every lab (the student-edition
and core-exercise issues; CONTRIBUTING "The frame of a lab").

- No value that a ``predict`` or ``ask`` is about is visible in the student edition before that cell:
  the value is read from the complete edition's own output (``reveal``'s "measured X", ``ask``'s
  "correct (this run: X)"), and no markdown cell before the question may show it, outside a
  collapsed ``<details>`` block or an HTML comment.
- Every written answer (a cleared markdown solution: ``YOUR ANSWER HERE``) follows an explicit prompt
  (``**Your answer**`` in the cell before it).
- Every lab has learning objectives, prerequisites, minutes, a "How this notebook works" box, the
  exercise overview, take-aways, a "Going further" part with further exercises; every core exercise
  is five or more lines, is checked, and is used through ``pick``.
- Every exercise has at least three named misconceptions (each rejected and named by ``check``),
  two or more hints, and a card (difficulty, importance, minutes) shown in the lab.
- The student edition holds no outputs and no saved widget state.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from course_kit.exercises import registry
from course_kit.lab_budget import core_end, lab_budget, within_limits

ROOT = Path(__file__).resolve().parent.parent
LABS = sorted((ROOT / "labs").glob("[0-9][0-9]_*.ipynb"))
LAB_IDS = [p.stem for p in LABS]


def _src(cell) -> str:
    s = cell["source"]
    return s if isinstance(s, str) else "".join(s)


def _outputs_text(cell) -> str:
    out = []
    for o in cell.get("outputs", []):
        if "text" in o:
            out.append(o["text"] if isinstance(o["text"], str) else "".join(o["text"]))
        elif "data" in o and "text/plain" in o["data"]:
            t = o["data"]["text/plain"]
            out.append(t if isinstance(t, str) else "".join(t))
    return "".join(out)


def _visible(markdown: str) -> str:
    """Markdown a student sees without opening anything: no <details> blocks, no HTML comments."""
    text = re.sub(r"<!--.*?-->", " ", markdown, flags=re.DOTALL)
    return re.sub(r"<details>.*?</details>", " ", text, flags=re.DOTALL | re.IGNORECASE)


def _spellings(value: float):
    """How a value of ``value`` would be written in the text, leaving out round numbers (0.5, 1, 70)."""
    forms = {f"{value:.3g}", f"{value:.4g}", f"{value:.2f}", f"{value:.3f}"}
    keep = set()
    for f in forms:
        digits = f.lstrip("-").replace(".", "").lstrip("0")
        if "e" in f or len(digits.rstrip("0")) < 2 or float(f) == 0:
            continue  # one significant digit ("0.7", "0.50", "2"): too common to be a give-away
        keep.add(f)
    return keep


ANSWER_PATTERNS = [
    (re.compile(r'reveal\(\s*"(lab\d\d\.p\d+)"'), re.compile(r"measured (-?[0-9.]+(?:e-?\d+)?)")),
    (re.compile(r'ask\(\s*"(lab\d\d\.q\d+)"'), re.compile(r"correct \(this run: (-?[0-9.]+(?:e-?\d+)?)\)")),
]


def _answers(nb):
    """(question id, value) pairs read from the complete edition's outputs."""
    found = {}
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        for call, value in ANSWER_PATTERNS:
            ids, values = call.findall(_src(cell)), value.findall(_outputs_text(cell))
            for qid, v in zip(ids, values):
                found[qid] = float(v)
    return found


@pytest.mark.parametrize("path", LABS, ids=LAB_IDS)
def test_no_answer_is_visible_before_its_question(path):
    complete = json.loads(path.read_text())
    student = json.loads((ROOT / "student" / path.name).read_text())
    answers = _answers(complete)
    first_asked = {}
    for i, cell in enumerate(student["cells"]):
        for qid in re.findall(r'(?:predict|ask)\(\s*"(lab\d\d\.[pq]\d+)"', _src(cell)):
            first_asked.setdefault(qid, i)
    leaks = []
    for qid, value in answers.items():
        if qid not in first_asked:
            continue
        for j in range(first_asked[qid]):
            cell = student["cells"][j]
            if cell["cell_type"] != "markdown":
                continue
            text = _visible(_src(cell))
            for form in _spellings(value):
                if re.search(rf"(?<![\d.]){re.escape(form)}(?!\d)", text):
                    leaks.append(f"{qid}'s value {form} is visible in markdown cell {j}, before the question (cell {first_asked[qid]})")
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize("path", LABS, ids=LAB_IDS)
def test_every_written_answer_follows_a_prompt(path):
    student = json.loads((ROOT / "student" / path.name).read_text())
    cells = student["cells"]
    missing = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "YOUR ANSWER HERE" in _src(c)
               and "**Your answer**" not in (_src(cells[i - 1]) + _src(c).split("YOUR ANSWER HERE")[0])]
    assert not missing, f"written-answer cells with no '**Your answer**' prompt before them: {missing}"


FRAME = {
    "learning objectives": re.compile(r"^#+ .*you will be able to", re.IGNORECASE | re.MULTILINE),
    "prerequisites": re.compile(r"\*\*Prerequisites", re.IGNORECASE),
    "expected minutes": re.compile(r"\*\*Time\.?\*\*.*\d+ minutes", re.IGNORECASE),
    "a how-it-works box": re.compile(r"How this notebook works", re.IGNORECASE),
    "take-aways": re.compile(r"^#+ Take-aways", re.IGNORECASE | re.MULTILINE),
    "a Going further part": re.compile(r"^#+ Going further", re.IGNORECASE | re.MULTILINE),
    "further exercises": re.compile(r"^#+ Further exercises", re.IGNORECASE | re.MULTILINE),
}


@pytest.mark.parametrize("path", LABS, ids=LAB_IDS)
def test_every_lab_has_its_frame(path):
    nb = json.loads((ROOT / "student" / path.name).read_text())
    markdown = "\n".join(_src(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    missing = [name for name, pattern in FRAME.items() if not pattern.search(markdown)]
    assert not missing, f"{path.name} lacks: {', '.join(missing)}"
    lab = path.name[:2]
    code = "\n".join(_src(c) for c in nb["cells"] if c["cell_type"] == "code")
    assert f'overview("{lab}")' in code, "the lab lists its exercises at the top with overview(lab)"
    take = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown" and FRAME["take-aways"].search(_src(c)))
    assert take < core_end(nb), "the take-aways close the core path, before Going further"
    objectives = next(_src(c) for c in nb["cells"] if c["cell_type"] == "markdown" and FRAME["learning objectives"].search(_src(c)))
    bullets = re.findall(r"^\s*(?:[-*]|\d+\.)\s", objectives.split("you will be able to", 1)[-1], re.MULTILINE | re.IGNORECASE)
    assert 3 <= len(bullets) <= 7, f"three to five learning objectives, found {len(bullets)}"


@pytest.mark.parametrize("path", LABS, ids=LAB_IDS)
def test_core_exercises_are_methods_and_the_lab_runs_on_them(path):
    lab = path.name[:2]
    nb = json.loads(path.read_text())
    cores = [i for i in registry.ids(lab) if registry.get(i).kind == "core"]
    assert cores, f"lab {lab} has no core exercise"
    code_cells = [_src(c) for c in nb["cells"] if c["cell_type"] == "code"]
    for ex_id in cores:
        cell = next((s for s in code_cells if f'check("{ex_id}"' in s), None)
        assert cell is not None, f"no check(\"{ex_id}\", ...) in {path.name}"
        body = cell.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
        lines = [ln for ln in body.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        assert len(lines) >= 5, f"core exercise {ex_id} is {len(lines)} lines in the solution: a method is five or more"
        assert any(f'pick("{ex_id}"' in s for s in code_cells), f"the lab never runs on the student's {ex_id} (pick)"
    for ex_id in registry.ids(lab):
        if not any(f'check("{ex_id}"' in s for s in code_cells):
            pytest.fail(f"exercise {ex_id} is registered for lab {lab} but never checked in {path.name}")
        minutes = registry.get(ex_id).minutes
        shown = "\n".join(_src(c) for c in nb["cells"] if c["cell_type"] == "markdown")
        assert re.search(rf"`{ex_id}`[^\n]*{minutes} min", shown), \
            f"the markdown introducing {ex_id} shows its card (`{ex_id}` ... {minutes} min)"


def _all_exercises():
    return [registry.get(i) for i in registry.ids()]


@pytest.mark.parametrize("exercise", _all_exercises(), ids=lambda e: e.id)
def test_every_misconception_is_rejected_and_named(exercise, capsys):
    assert len(exercise.misconceptions) >= 3, f"{exercise.id}: at least three misconceptions"
    assert len(exercise.hints) >= 2, f"{exercise.id}: two or three hints"
    for m in exercise.misconceptions:
        capsys.readouterr()
        assert not registry.check(exercise.id, m.implementation), f"{exercise.id}: misconception {m.name!r} passes check"
        out = capsys.readouterr().out
        assert m.name in out and m.nudge in out, f"{exercise.id}: misconception {m.name!r} is not named:\n{out}"
    assert registry.check(exercise.id, exercise.reference, verbose=False)


@pytest.mark.parametrize("path", LABS, ids=LAB_IDS)
def test_student_notebooks_hold_no_outputs_or_widget_state(path):
    nb = json.loads((ROOT / "student" / path.name).read_text())
    assert "widgets" not in nb.get("metadata", {}), "saved widget state in the student edition"
    for cell in nb["cells"]:
        assert not cell.get("outputs"), "stored outputs in the student edition"
        assert not cell.get("metadata", {}).get("execution"), "execution timings in the student edition"


@pytest.mark.parametrize("path", LABS, ids=LAB_IDS)
def test_each_lab_fits_a_session(path):
    budget = lab_budget(path)
    assert not within_limits(budget), f"{path.name}: " + "; ".join(within_limits(budget))
