"""Every decimal number a lab's text states appears in that lab's own outputs (or is cited).

A number in a markdown cell passes when some number in the lab's stored outputs rounds to it at the
same number of decimals. Figures from a cited source and version numbers are listed in an HTML
comment in the same cell: ``<!-- cited: 0.74 0.81 -->`` (CONTRIBUTING "Numbers in the text").
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

LABS = sorted((Path(__file__).resolve().parents[1] / "labs").glob("[0-9][0-9]_*.ipynb"))
NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d+(?![\w.]*\d)")
CITED = re.compile(r"<!--\s*cited:([^>]*)-->")


def _output_text(nb: dict) -> str:
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append("".join(out["text"]))
            for mime in ("text/plain", "text/html", "text/markdown"):
                if mime in out.get("data", {}):
                    parts.append("".join(out["data"][mime]))
    return "\n".join(parts)


def _matches(number: str, outputs: list) -> bool:
    decimals = len(number.split(".")[1])
    target = float(number)
    for value in outputs:
        if abs(round(value, decimals) - target) < 10 ** (-decimals) / 2 or abs(abs(round(value, decimals)) - abs(target)) < 1e-12:
            return True
    return False


def unsupported_numbers(path: Path) -> list:
    nb = json.loads(path.read_text())
    outputs = [float(x) for x in NUMBER.findall(_output_text(nb))]
    bad = []
    for k, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        cited = set()
        for block in CITED.findall(text):
            cited.update(block.replace(",", " ").split())
        for number in NUMBER.findall(CITED.sub("", text)):
            if number in cited or number.lstrip("-") in cited:
                continue
            if not _matches(number, outputs):
                bad.append(f"cell {k}: {number}")
    return bad


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_every_number_in_the_text_is_in_the_outputs(path):
    bad = unsupported_numbers(path)
    assert not bad, f"{path.name}: numbers in the text found in no output (measure them, or mark them cited): {bad}"


def test_the_rule_catches_a_made_up_number(tmp_path):
    nb = {"cells": [
        {"cell_type": "markdown", "source": ["both prompts give about 0.37; the paper reports 0.74 <!-- cited: 0.74 -->"]},
        {"cell_type": "code", "source": [], "outputs": [{"output_type": "stream", "text": ["share 0.271\n"]}]},
        {"cell_type": "markdown", "source": ["the share is 0.27"]},
    ]}
    path = tmp_path / "01_x.ipynb"
    path.write_text(json.dumps(nb))
    assert unsupported_numbers(path) == ["cell 0: 0.37"]
