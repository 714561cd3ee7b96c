"""The student edition: nbgrader's ClearSolutions removes every solution and worked answer."""

from __future__ import annotations

import json

import nbformat
import pytest

from course_kit import editions

LABS = sorted(editions.LABS_DIR.glob("[0-9][0-9]_*.ipynb"))


def _toy_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('def bt(a, b):\n    """doc"""\n    ### BEGIN SOLUTION\n    return a - b\n    ### END SOLUTION\ncheck("bt_loss", bt)'),
        nbformat.v4.new_markdown_cell("**Worked answer**\n### BEGIN SOLUTION\nThe share is 0.93.\n### END SOLUTION"),
        nbformat.v4.new_code_cell("print(1)", outputs=[nbformat.v4.new_output("stream", text="1\n")]),
    ]
    return nb


def test_solutions_become_stubs_and_outputs_go():
    nb = editions.student_notebook(_toy_notebook())
    code, answer, plain = nb.cells
    assert "raise NotImplementedError()" in code.source and "return a - b" not in code.source
    assert 'check("bt_loss", bt)' in code.source and '"""doc"""' in code.source
    assert "0.93" not in answer.source and "YOUR ANSWER HERE" in answer.source
    assert plain.outputs == []


def test_unbalanced_markers_are_an_error():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1")]
    with pytest.raises(Exception):
        editions.student_notebook(nb)


def test_refuses_to_overwrite_the_complete_edition():
    with pytest.raises(ValueError, match="must not overwrite"):
        editions.write_student_edition(editions.LABS_DIR)


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_every_lab_has_exercises_and_its_student_edition_has_no_solution(path, tmp_path):
    source = json.loads(path.read_text())
    assert editions.solution_regions(source) >= 3, f"{path.name}: exercises, answers and worked answers go between solution markers"
    (out,) = editions.write_student_edition(tmp_path, [path])
    student = json.loads(out.read_text())
    text = "".join("".join(c["source"]) for c in student["cells"])
    assert "BEGIN SOLUTION" not in text and "raise NotImplementedError()" in text
    assert all(not c.get("outputs") for c in student["cells"] if c["cell_type"] == "code")


STUDENT_DIR = editions.LABS_DIR.parent / "student"


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_committed_student_edition_is_up_to_date(path):
    stored = STUDENT_DIR / path.name
    assert stored.exists(), f"student/{path.name} is missing: run `make student-edition`"
    fresh = editions.student_notebook(nbformat.read(path, as_version=4))
    mine = nbformat.read(stored, as_version=4)
    assert [(c.cell_type, c.source) for c in mine.cells] == [(c.cell_type, c.source) for c in fresh.cells], \
        f"student/{path.name} is out of date: run `make student-edition`"


def test_existing_notebooks_are_kept_unless_forced(tmp_path):
    lab = LABS[0]
    mine = tmp_path / lab.name
    mine.write_text("my own work")
    with pytest.raises(FileExistsError, match="--force"):
        editions.write_student_edition(tmp_path, [lab])
    assert mine.read_text() == "my own work"
    assert editions.main([str(tmp_path)]) == 2
    assert mine.read_text() == "my own work"
    editions.write_student_edition(tmp_path, [lab], force=True)
    assert "YOUR" in mine.read_text() or "NotImplementedError" in mine.read_text()


def test_a_symlinked_target_is_never_written_through(tmp_path):
    lab = LABS[0]
    victim = tmp_path / "complete.ipynb"
    victim.write_text(lab.read_text())
    out = tmp_path / "student"
    out.mkdir()
    (out / lab.name).symlink_to(victim)
    before = victim.read_text()
    with pytest.raises(OSError, match="symbolic link"):
        editions.write_student_edition(out, [lab], force=True)
    assert victim.read_text() == before
    assert editions.main([str(out), "--force"]) == 2
    assert victim.read_text() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
