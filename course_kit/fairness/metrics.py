"""Group fairness metrics: per-group rates with fairlearn's ``MetricFrame``, parity differences (Lab 07).

For a decision y_hat in {0, 1} (1 = slow lane), a true condition y and a group g (the brand):

- selection rate of group a: P(y_hat = 1 | g = a);
- demographic parity difference: max_a P(y_hat = 1 | g = a) - min_a P(y_hat = 1 | g = a);
- equalized odds difference: the larger of the gaps in true-positive rate and in false-positive
  rate between groups (max over y of max_a - min_a of P(y_hat = 1 | y, g = a)).

The lecture "Week 13: Bias, Fairness, and Safety in VLMs" lists "design fairness evaluation and
mitigation strategies" among its learning outcomes; we evaluate with the field's library,
fairlearn (``MetricFrame``, ``demographic_parity_difference``, ``equalized_odds_difference``), and
keep a few lines of torch (``demographic_parity_difference``, ``equalized_odds_difference``) as the
reference of the lab's exercise and as a cross-check of the library in the tests.
"""

from __future__ import annotations

import warnings
from typing import Dict, Sequence

import numpy as np
import torch
from torch import Tensor


def as_binary(name: str, values) -> Tensor:
    """A 1-D tensor of 0/1 integers from a list, array or tensor; ValueError naming ``name`` otherwise."""
    t = torch.as_tensor(np.asarray(values)).flatten()
    if t.numel() == 0:
        raise ValueError(f"{name} must not be empty")
    if not bool(((t == 0) | (t == 1)).all()):
        raise ValueError(f"{name} must hold only 0 and 1, got values {t.unique().tolist()[:6]}")
    return t.long()


def demographic_parity_difference(y_pred, groups) -> Tensor:
    """max minus min over groups of the selection rate P(y_pred = 1 | group): 0-d tensor in [0, 1]."""
    y_pred = as_binary("y_pred", y_pred).float()
    groups = torch.as_tensor(np.asarray(groups)).flatten()
    if groups.shape != y_pred.shape:
        raise ValueError(f"y_pred and groups must have the same length, got {y_pred.numel()} and {groups.numel()}")
    rates = torch.stack([y_pred[groups == g].mean() for g in groups.unique()])  # (G,) selection rate per group
    return rates.max() - rates.min()


def equalized_odds_difference(y_true, y_pred, groups) -> Tensor:
    """The larger of the between-group gaps in P(y_pred = 1 | y_true = 1) and P(y_pred = 1 | y_true = 0): 0-d."""
    y_true, y_pred = as_binary("y_true", y_true), as_binary("y_pred", y_pred).float()
    groups = torch.as_tensor(np.asarray(groups)).flatten()
    if not (y_true.shape == y_pred.shape == groups.shape):
        raise ValueError(f"y_true, y_pred and groups must have the same length, got {y_true.numel()}, {y_pred.numel()}, {groups.numel()}")
    gaps = []
    for y in (0, 1):  # false-positive rates, then true-positive rates
        rates = torch.stack([y_pred[(groups == g) & (y_true == y)].mean() for g in groups.unique()])  # (G,)
        gaps.append(rates.max() - rates.min())
    return torch.stack(gaps).max()


def group_report(y_true, y_pred, groups, names: Sequence[str] = ("A", "B")):
    """fairlearn's ``MetricFrame`` of selection rate, false-positive and false-negative rates and accuracy
    per group (``names[g]`` labels group g), plus fairlearn's parity differences.

    Returns (MetricFrame, {"demographic_parity_difference", "equalized_odds_difference"}).
    """
    from fairlearn.metrics import (MetricFrame, demographic_parity_difference as fl_dpd,
                                   equalized_odds_difference as fl_eod, false_negative_rate,
                                   false_positive_rate, selection_rate)
    from sklearn.metrics import accuracy_score

    y_true = as_binary("y_true", y_true).numpy()
    y_pred = as_binary("y_pred", y_pred).numpy()
    import pandas as pd

    group_names = pd.Series([names[int(g)] for g in np.asarray(groups).flatten()], name="group")
    if not (len(y_true) == len(y_pred) == len(group_names)):
        raise ValueError(f"y_true, y_pred and groups must have the same length, got {len(y_true)}, {len(y_pred)}, {len(group_names)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = MetricFrame(
            metrics={"selection_rate": selection_rate, "false_positive_rate": false_positive_rate,
                     "false_negative_rate": false_negative_rate, "accuracy": accuracy_score},
            y_true=y_true, y_pred=y_pred, sensitive_features=group_names)
        summary: Dict[str, float] = {
            "demographic_parity_difference": float(fl_dpd(y_true, y_pred, sensitive_features=group_names)),
            "equalized_odds_difference": float(fl_eod(y_true, y_pred, sensitive_features=group_names)),
        }
    return frame, summary


def mean_and_sd(runs: Sequence[Dict]) -> Dict:
    """Average nested dicts of numbers over runs: the same structure with {"mean", "sd"} leaves."""
    first = runs[0]
    if isinstance(first, dict):
        return {k: mean_and_sd([r[k] for r in runs]) for k in first}
    values = np.asarray(runs, dtype=float)
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def means(summary: Dict) -> Dict:
    """The ``mean`` leaves of a ``mean_and_sd`` summary, same structure."""
    return {k: (v["mean"] if "mean" in v else means(v)) for k, v in summary.items()}


def sds(summary: Dict) -> Dict:
    """The ``sd`` leaves of a ``mean_and_sd`` summary, same structure."""
    return {k: (v["sd"] if "sd" in v else sds(v)) for k, v in summary.items()}
