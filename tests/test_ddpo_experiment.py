"""Lab 06 headline helpers and a quick headline run."""

import pytest

from course_kit.experiments import ddpo as lab
from course_kit.runtime import set_progress

set_progress(False)


def test_epoch_counters_by_hand():
    assert lab.epochs_to_shift([0.1, 0.5, 0.92, 0.95]) == 2
    assert lab.epochs_to_shift([0.1, 0.5]) is None
    assert lab.epochs_to_balance([0.1, 0.52, 0.3, 0.47, 0.5]) == 3
    assert lab.epochs_to_balance([0.1, 0.5, 0.3]) is None


def test_quick_shift_headline_moves_the_share():
    out = lab.headline(quick=True, reward="shift")
    shares = out["minority_share_per_epoch"]
    assert len(shares) == 5 and shares[-1] > shares[0] + 0.3
    for key in ("epochs_to_0.9", "final_share", "none_rate_before", "none_rate_after"):
        assert key in out


def test_headline_rejects_unknown_prompt():
    with pytest.raises(ValueError, match="allowed"):
        lab.headline(quick=True, prompt="photo of a cat")
