"""The course as a website, built from the labs' stored outputs (``make site``; ``course-kit site [OUT]``).

Sphinx + myst-nb + sphinx-book-theme render the complete edition's notebooks **without executing
them** (their outputs are the ones strict nbval checks), after these changes, made in a copy:

- code solution regions are left out (the student writes them in the notebook), and markdown
  solution regions (model answers) are dropped; collapsed ``<details>`` worked answers stay collapsed,
  so nothing is spoiled before the reader has tried;
- the Colab setup cell is dropped, and each page starts with links to the student notebook, its
  "Open in Colab" badge and the complete notebook's source (``course_kit.home``);
- a widget, which needs a live kernel, becomes a still of its figure (taken from the widget state the
  execution stored) and an invitation to move it in JupyterLab or Colab;
- a landing page lists the eight labs with their objectives and minutes (read from each lab's
  frame), and a "Getting started" page carries the student-facing sections of the README.

MathJax 3 comes from the ``django-static-mathjax`` package (MathJax's files, no Django), so the site
renders formulas offline.
The output folder (default ``site_build/``) is ignored by git. The build takes seconds.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional

from course_kit import home

ROOT = Path(__file__).resolve().parent.parent
LABS_DIR = ROOT / "labs"
SITE_CONF = ROOT / "site" / "conf.py"
DEFAULT_OUT = ROOT / "site_build"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
README_SECTIONS = ("Quickstart", "Which edition to open", "Installing on other machines", "Running on Colab",
                   "Toy scale and full scale")


def _src(cell) -> str:
    s = cell["source"]
    return s if isinstance(s, str) else "".join(s)


def _strip_code_solution(source: str) -> str:
    out, skipping = [], False
    for line in source.splitlines():
        if BEGIN in line:
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}...  # left out of the website: you write this part in the notebook")
            skipping = True
        elif END in line:
            skipping = False
        elif not skipping:
            out.append(line)
    return "\n".join(out)


def _strip_markdown_solution(source: str) -> str:
    return re.sub(rf"{re.escape(BEGIN)}.*?{re.escape(END)}", "", source, flags=re.DOTALL).strip()


def _widget_stills(state: Dict, model_id: str) -> List[str]:
    """Base64 PNGs a widget (and its children) showed when the notebook was executed."""
    pngs, seen, todo = [], set(), [model_id]
    while todo:
        mid = todo.pop(0)
        if mid in seen or mid not in state:
            continue
        seen.add(mid)
        model = state[mid]
        st = model.get("state", {})
        if model.get("model_name") == "OutputModel":
            for o in st.get("outputs", []):
                png = o.get("data", {}).get("image/png")
                if png:
                    pngs.append(png if isinstance(png, str) else "".join(png))
        if model.get("model_name") == "ImageModel":
            for buf in model.get("buffers", []):
                if buf.get("path") == ["value"] and buf.get("encoding") == "base64":
                    pngs.append(buf["data"])
        for value in st.values():
            refs = value if isinstance(value, list) else [value]
            todo += [r[len("IPY_MODEL_"):] for r in refs if isinstance(r, str) and r.startswith("IPY_MODEL_")]
    return pngs


def site_notebook(nb: Dict, name: str, url: Optional[str] = None) -> Dict:
    """The page version of lab notebook ``nb`` (JSON): see the module docstring."""
    nb = copy.deepcopy(nb)
    state = nb.get("metadata", {}).pop("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    cells = []
    for cell in nb["cells"]:
        source = _src(cell)
        if cell["cell_type"] == "code" and "google.colab" in source:
            continue  # the Colab setup cell
        if cell["cell_type"] == "markdown" and BEGIN in source:
            source = _strip_markdown_solution(source)
            if not source:
                continue
        if cell["cell_type"] == "code" and BEGIN in source:
            source = _strip_code_solution(source)
        cell["source"] = source
        if cell["cell_type"] == "code":
            outputs = []
            for o in cell.get("outputs", []):
                data = o.get("data", {})
                if WIDGET_MIME in data:
                    for png in _widget_stills(state, data[WIDGET_MIME]["model_id"])[:1]:
                        outputs.append({"output_type": "display_data", "metadata": {}, "data": {"image/png": png}})
                    outputs.append({"output_type": "display_data", "metadata": {}, "data": {"text/markdown": (
                        "*An interactive explorer: the still above is its first view. Open this lab in JupyterLab "
                        "or Colab (links at the top of the page) to move its controls.*")}})
                    continue
                if o.get("output_type") == "stream" and o.get("name") == "stderr":
                    continue
                outputs.append(o)
            cell["outputs"] = outputs
            cell.get("metadata", {}).pop("execution", None)
        cells.append(cell)
    links = (f"{_site_badge('student/' + name, url or home.repository_url(), '../')} · "
             f"[the student notebook]({(url or home.repository_url())}/blob/main/student/{name}) · "
             f"[the complete notebook]({(url or home.repository_url())}/blob/main/labs/{name})")
    title_at = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown")
    cells.insert(title_at + 1, {"cell_type": "markdown", "id": "site-links", "metadata": {}, "source": links})
    nb["cells"] = cells
    return nb


def lab_summary(nb: Dict) -> Dict[str, object]:
    """Title, objectives and minutes of a lab, read from its frame."""
    markdown = [_src(c) for c in nb["cells"] if c["cell_type"] == "markdown"]
    title = next((m.splitlines()[0].lstrip("# ").strip() for m in markdown if m.startswith("# ")), "")
    objectives: List[str] = []
    for m in markdown:
        if re.search(r"you will be able to", m, re.IGNORECASE):
            after = re.split(r"you will be able to:?", m, maxsplit=1, flags=re.IGNORECASE)[1]
            for line in after.splitlines():
                if re.match(r"^\s*(?:[-*]|\d+\.)\s", line):
                    objectives.append(re.sub(r"^\s*(?:[-*]|\d+\.)\s+", "", line).strip())
                elif objectives and not line.strip():
                    break
            break
    minutes = next((int(x) for m in markdown for x in re.findall(r"\*\*Time\.?\*\*[^\n]*?(\d+) minutes", m)), None)
    return {"title": title, "objectives": objectives, "minutes": minutes}


def _readme_sections(readme: str) -> str:
    parts = re.split(r"^## ", readme, flags=re.MULTILINE)
    keep = [p for p in parts[1:] if p.splitlines()[0].strip() in README_SECTIONS]
    return "\n".join("## " + p.rstrip() + "\n" for p in keep)


def _site_badge(notebook: str, url: str, prefix: str = "") -> str:
    """The Colab badge with its image served by the site itself (no request leaves the site)."""
    return f"[![Open in Colab]({prefix}_static/colab-badge.svg)]({home.colab_url(notebook, url)})"


def landing_page(summaries: Dict[str, Dict], url: str) -> str:
    rows = []
    for name, s in summaries.items():
        goals = "<br>".join(s["objectives"]) or ""
        minutes = f"{s['minutes']} min" if s["minutes"] else ""
        rows.append(f"| [{s['title']}](labs/{Path(name).stem}) | {goals} | {minutes} | {_site_badge('student/' + name, url)} |")
    table = "\n".join(rows)
    toc = "\n".join(f"labs/{Path(n).stem}" for n in summaries)
    return f"""# Bias, fairness and alignment of generative models

Eight hands-on labs that mirror a lecture on bias, fairness and alignment of generative models. In each
you implement the method itself (a guided sampler, a reward-model training loop, one PPO iteration, DPO on
padded sequences, an EM alternation, a DDPO update, an erasure, a debiased AI judge), predict before each
main result, move sliders and run real, small training on a laptop CPU.

**For whom.** Students of a deep-learning course who know PyTorch and basic probability; instructors who
want a lab per lecture topic, checked end to end; self-learners. Each lab fits a 90-minute session; the
rest of each notebook is an optional "Going further".

**These pages** show each lab with the outputs of a full run. The parts you write are left out, and the
worked answers stay folded: open the student notebook (locally or in Colab) to do the lab.

| lab | you will be able to | time | run it |
|---|---|---|---|
{table}

**Run it locally** (Linux or macOS, Python 3.10-3.12): `make lab` sets up and opens the labs in JupyterLab;
`make test` sets up and runs every test. See [Getting started](start).
**Run it in Colab:** the badges above open each student notebook; its first cell installs the course.

```{{toctree}}
:hidden:
:maxdepth: 1

start
{toc}
```
"""


def build_site(out: Path = DEFAULT_OUT, labs: Optional[List[Path]] = None, quiet: bool = True) -> Path:
    """Build the website into ``out`` (HTML in ``out/html``); return the HTML folder."""
    from sphinx.cmd.build import build_main

    out = Path(out)
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    (src / "labs").mkdir(parents=True)
    (src / "_static").mkdir()
    shutil.copy(SITE_CONF, src / "conf.py")
    for asset in (SITE_CONF.parent / "_static").iterdir():
        shutil.copy(asset, src / "_static" / asset.name)
    import mathjax as mathjax_package  # django-static-mathjax: MathJax 3's files

    es5 = Path(mathjax_package.__file__).parent / "static" / "mathjax" / "es5"
    shutil.copytree(es5, src / "_static" / "mathjax" / "es5")
    url = home.repository_url()
    paths = labs or sorted(LABS_DIR.glob("[0-9][0-9]_*.ipynb"))
    summaries = {}
    for path in paths:
        nb = json.loads(Path(path).read_text())
        summaries[path.name] = lab_summary(nb)
        (src / "labs" / path.name).write_text(json.dumps(site_notebook(nb, path.name, url), indent=1))
    (src / "index.md").write_text(landing_page(summaries, url))
    (src / "start.md").write_text("# Getting started\n\n" + _readme_sections((ROOT / "README.md").read_text()))
    html = out / "html"
    args = ["-b", "html", "-j", "2", "-E", str(src), str(html)] + (["-q"] if quiet else [])
    code = build_main(args)
    if code != 0:
        raise RuntimeError(f"sphinx-build failed with exit code {code}")
    return html


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        print("usage: course-kit site [OUT]   (default: site_build/)", file=sys.stderr)
        return 2
    html = build_site(Path(argv[0]) if argv else DEFAULT_OUT)
    print(f"site: {html / 'index.html'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
