"""Lab 04's figures and explorer (course_kit.viz.dpo): one fit, artists updated in place, state from the sliders."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("ipywidgets")

from course_kit.preference import dpo_exact  # noqa: E402
from course_kit.viz import dpo as viz  # noqa: E402
from course_kit.viz.explorer import Explorer  # noqa: E402


@pytest.fixture(scope="module")
def explorer():
    return viz.DPOExplorer(n_pairs=2000)


def test_it_is_an_explorer(explorer):
    assert isinstance(explorer, Explorer)
    assert explorer.widget is not None and set(explorer.controls) == {"beta", "margin"}
    assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_sliders_drive_the_update(explorer):
    first = dict(explorer.update(beta=1.0, margin=5.0))
    explorer.controls["beta"].value = 3.0
    assert explorer.state["beta"] == pytest.approx(3.0, rel=1e-3)
    assert explorer.state["kl_to_ref"] < first["kl_to_ref"]  # larger beta: closer to pi_ref
    explorer.controls["margin"].value = 20.0
    assert explorer.state["weight"] == pytest.approx(float(torch.sigmoid(torch.tensor(-3.0 * 20.0))), rel=1e-4)


def test_a_move_neither_refits_nor_builds_a_new_figure(explorer, monkeypatch):
    """What makes a move fast: no L-BFGS fit, the same figure and artists, only their data change."""
    def no_refit(*args, **kwargs):
        raise AssertionError("a slider move must not refit DPO")

    monkeypatch.setattr(dpo_exact, "fit_dpo_softmax", no_refit)
    figure, curve = explorer.figure, explorer._artists["curve"]
    before = explorer.image.value
    explorer.update(beta=0.1, margin=0.0)
    assert explorer.figure is figure and explorer._artists["curve"] is curve
    assert explorer.image.value != before
    assert explorer.state["weight"] == pytest.approx(0.5)


def test_the_policy_for_any_beta_is_the_dpo_fit_at_that_beta(explorer):
    """The reparametrisation the explorer relies on: one fit's implicit reward gives DPO at every beta."""
    gen = torch.Generator().manual_seed(0)
    chosen, rejected = explorer.world.sample_pairs(2000, gen)
    for beta in (0.3, 3.0):
        direct = dpo_exact.fit_dpo_softmax(explorer.ref, chosen, rejected, beta)
        via_reward = dpo_exact.policy_for_beta(explorer.ref, explorer.reward, beta)
        assert torch.allclose(direct, via_reward, atol=2e-4)


def test_bad_values_are_refused(explorer):
    with pytest.raises(ValueError, match="beta"):
        explorer.compute(0.0, 1.0)
    with pytest.raises(ValueError, match="margin"):
        explorer.compute(1.0, float("nan"))


def test_static_figures_draw():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3)
    viz.plot_gradient_weight(axes[0])
    viz.plot_lm_metrics(axes[1], {"SFT": {k: 0.5 for k in viz.LABELS}, "DPO": {k: 0.2 for k in viz.LABELS}})
    viz.plot_dpo_training(axes[2], {"loss": [0.69, 0.5], "weight": [0.5, 0.4]})
    plt.close(fig)
