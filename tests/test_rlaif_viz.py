"""Lab 08's figures and its constitution explorer (driven without a browser, by setting control values)."""

import time

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from course_kit.preference import rlaif  # noqa: E402
from course_kit.viz import rlaif as viz  # noqa: E402
from course_kit.viz.style import new_figure  # noqa: E402


@pytest.fixture(scope="module")
def explorer():
    teacher, tok, cfg = rlaif.load_teacher()
    return viz.ConstitutionExplorer(teacher, tok, rlaif.unlabeled_pairs(64, seed=0), seed=0, cfg=cfg)


def test_explorer_matches_the_label_pipeline(explorer):
    teacher, tok, cfg = rlaif.load_teacher()
    pairs = explorer.pairs
    labels = rlaif.label_pairs(teacher, tok, pairs, rlaif.CONSTITUTIONS["grounded"], seed=0, cfg=cfg)
    report = rlaif.label_report(pairs, labels)
    explorer.update(grounded=True, honest=True, helpful=False, combine="sample", swap_filter=False)
    assert explorer.state["agreement"] == pytest.approx(report["agreement"])
    assert explorer.state["position_bias"] == pytest.approx(report["position_bias"])
    explorer.update(swap_filter=True)
    assert explorer.state["kept"] == pytest.approx(report["kept"])
    assert explorer.state["agreement"] == pytest.approx(report["agreement_kept"])


def test_explorer_controls_answer_fast(explorer):
    explorer.update(grounded=True, honest=True, helpful=False, combine="sample", swap_filter=False)
    start = time.perf_counter()
    explorer.controls["helpful"].value = True
    explorer.controls["combine"].value = "sum"
    elapsed = (time.perf_counter() - start) / 2
    assert explorer.state["constitution"] == ["grounded", "honest", "helpful"] and explorer.state["combine"] == "sum"
    assert elapsed < 0.1, f"a move took {elapsed:.3f} s; it must not call the teacher"
    explorer.controls["grounded"].value = False
    explorer.controls["honest"].value = False
    explorer.controls["helpful"].value = False
    assert "error" in explorer.state
    explorer.controls["helpful"].value = True
    assert explorer.state["constitution"] == ["helpful"] and explorer.state["agreement"] < 0.5


def test_static_figures_draw():
    per_principle = {n: {"agreement": 0.8, "agreement_with_principle": 0.9, "position_bias": 0.5} for n in rlaif.PRINCIPLES}
    fig, ax = new_figure()
    viz.plot_teacher(ax, per_principle)
    assert len(ax.patches) == 9
    fig, ax = new_figure()
    viz.plot_swap(ax, {"position_bias": 0.57, "position_bias_kept": 0.51, "agreement": 0.85, "agreement_kept": 0.9, "kept": 0.87})
    assert len(ax.patches) == 4
    fig, axes = new_figure(3)
    metrics = {"chair": 0.1, "sycophancy": 0.2, "malformed": 0.3}
    viz.plot_runs(axes, metrics, {"human": metrics, "helpful": metrics})
    assert all(len(a.patches) == 2 for a in axes)
