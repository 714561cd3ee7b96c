"""Progress in a notebook leaves nothing behind: one text line per cell, emptied, never a widget (the browser issue)."""

from __future__ import annotations

import os

import nbformat
import pytest


@pytest.mark.slow
def test_a_long_cell_shows_one_line_and_leaves_no_widget(tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import time\nfrom course_kit import runtime\nruntime.PROGRESS_DELAY_S = 0.2\n"
            "for seed in runtime.progress(range(3), desc='seeds'):\n"
            "    for step in runtime.progress(range(5), desc='epochs'):\n"
            "        time.sleep(0.06)\n"
            "print('done')"),
        nbformat.v4.new_code_cell("from course_kit import runtime\nfor i in runtime.progress(range(3)):\n    pass\nprint('short')"),
    ]
    env = dict(os.environ, COURSE_KIT_PROGRESS="1")
    env.pop("MPLBACKEND", None)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.km = client.create_kernel_manager()
    client.start_new_kernel(env=env)
    try:
        client.start_new_kernel_client()
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    finally:
        client._cleanup_kernel()
    long_cell, short_cell = nb.cells
    mimes = [m for o in long_cell.outputs for m in o.get("data", {})]
    assert "application/vnd.jupyter.widget-view+json" not in mimes
    displays = [o for o in long_cell.outputs if o.output_type in ("display_data", "update_display_data")]
    assert len(displays) <= 1, f"one progress area per cell, got {len(displays)}"
    assert all(o["data"]["text/plain"] == "" for o in displays), "the progress line is emptied when the work ends"
    assert [o.get("text") for o in long_cell.outputs if o.output_type == "stream"] == ["done\n"]
    assert [o.output_type for o in short_cell.outputs] == ["stream"], "a short loop shows no progress"
