"""The legibility audit itself (course_kit/viz/audit.py) catches what it promises, and passes a clean figure."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from course_kit.viz import style  # noqa: E402
from course_kit.viz.audit import audit_figure, contrast_ratio  # noqa: E402


def test_a_clean_figure_passes():
    fig, ax = style.new_figure()
    x = np.linspace(0, 1, 20)
    ax.plot(x, x, color=style.MAJORITY, label="a")
    ax.plot(x, x ** 2, color=style.MINORITY, label="b")
    ax.set(xlabel="x", ylabel="y", title="two curves")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2))
    assert audit_figure(fig) == []
    plt.close(fig)


def test_each_rule_is_caught():
    fig, ax = plt.subplots()
    x = np.linspace(0, 1, 50)
    for seed in range(3):
        ax.plot(x, 0.5 + 0.001 * seed * x, color="red", label=f"seed {seed}")  # one colour, off-palette
    ax.set_ylim(-50, 50)  # a blob in a huge frame
    ax.legend(loc="center")  # on the data
    problems = "\n".join(audit_figure(fig))
    for words in ("no x label", "no y label", "no title", "share 1 look(s)", "outside the colour-blind-safe palette",
                  "legend covers", "limits too wide"):
        assert words in problems, words
    plt.close(fig)


def test_a_second_factor_by_marker_and_reference_lines_count_as_data():
    """Concept by marker and style by colour is tellable; an axhline at a data value is part of the y span."""
    fig, ax = plt.subplots()
    x = np.linspace(0, 1, 20)
    for marker in ("o", "s"):
        for colour in ("#0072B2", "#D55E00"):
            ax.scatter(x, x + (marker == "s"), color=colour, marker=marker, label=f"{marker} {colour}")
    ax.axhline(-6.0, color="#7f7f7f", ls=":")  # a reference level far below: the limits must include it
    ax.set(xlabel="x", ylabel="y", title="two factors")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    assert audit_figure(fig) == []
    fig2, bx = plt.subplots()
    bx.plot(x, 0.01 * x, color="#0072B2", label="a")
    bx.plot(x, 0.01 * x, color="#0072B2", ls="--", label="b")  # same colour, another line style: tellable
    bx.axhline(5.0, color="#7f7f7f")
    bx.set(xlabel="x", ylabel="y", title="reference far above")
    assert not any("look" in p for p in audit_figure(fig2)) and not any("limits" in p for p in audit_figure(fig2))
    plt.close(fig)
    plt.close(fig2)


def test_dark_text_on_a_dark_cell_is_caught():
    fig, ax = plt.subplots()
    ax.imshow(np.array([[0.0, 1.0]]), cmap="Blues")
    ax.text(1, 0, "12", color="black")  # black on navy
    ax.set(title="confusion matrix")
    assert any("contrast" in p for p in audit_figure(fig))
    assert contrast_ratio("white", "black") > 20 and contrast_ratio("#777777", "#777777") == 1.0
    plt.close(fig)
