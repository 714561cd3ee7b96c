"""Lab 06 stored models: the classifier (0.7 threshold, confusion matrix) and the portrait diffusion model."""

import pytest
import torch

from course_kit.worlds import portrait_world as w
from course_kit.diffusion.portrait_classifier import ClassifierConfig, PortraitClassifier, accuracies, confusion_matrix, load_classifier
from course_kit.diffusion.portrait_diffusion import PortraitDiffusion, PortraitDiffusionConfig, generate, load_model, pretrain
from course_kit.diffusion.ddim_logprob import DiffusionPolicy
from course_kit.runtime import set_progress

set_progress(False)


def test_confusion_matrix_and_accuracies_by_hand():
    m = confusion_matrix(["female", "male", None, "female"], ["female", None, None, "male"])
    assert m.tolist() == [[1, 1, 0], [0, 0, 1], [0, 0, 1]]
    acc, acc_no_none = accuracies(m)
    assert acc == 0.5 and acc_no_none == 0.5


def test_threshold_gives_none():
    clf = PortraitClassifier(ClassifierConfig())
    with torch.no_grad():
        for p in clf.parameters():
            p.zero_()
    p, labels = clf.classify(torch.rand(2, 3, 32, 32))  # logit 0 -> p = 0.5 -> None
    assert torch.allclose(p, torch.full((2,), 0.5)) and labels == [None, None]


def test_stored_classifier_reads_close_ups():
    clf = load_classifier()
    g = torch.Generator().manual_seed(5)
    z, _ = w.sample_latents([w.prompt_for("teacher", "face")] * 300, g)
    _, labels = clf.classify(w.render(z))
    acc, acc_no_none = accuracies(confusion_matrix(w.oracle_labels(z), labels))
    assert acc > 0.9 and acc_no_none > 0.95


def test_stored_diffusion_model_reproduces_the_skew_and_cfg_amplifies_it():
    model = load_model()
    assert isinstance(model, DiffusionPolicy)
    prompt = w.prompt_for("electrical engineer", "face")
    shares = []
    for gs in (1.0, 3.0):
        z, images = generate(model, [prompt] * 400, w=gs, seed=3)
        labels = w.oracle_labels(z)
        shares.append(labels.count("female") / max(1, labels.count("female") + labels.count("male")))
    assert images.shape == (400, 3, 32, 32)
    assert abs(shares[0] - w.FEMALE_SHARE["electrical engineer"]) < 0.05
    assert shares[1] < shares[0] / 2


def test_encode_prompts_validates():
    model = PortraitDiffusion(PortraitDiffusionConfig(hidden=16, depth=1, emb_dim=8))
    assert model.encode_prompts([w.PROMPTS[3]]).tolist() == [3]
    with pytest.raises(ValueError, match="allowed"):
        model.encode_prompts(["photo of a cat"])


def test_pretraining_resumes_after_an_interruption(tmp_path, monkeypatch):
    import course_kit.diffusion.portrait_diffusion as pd

    cfg = PortraitDiffusionConfig(hidden=16, depth=1, emb_dim=8, n_steps=600, batch_size=8)
    full = pretrain(cfg)
    state = tmp_path / "state.pt"

    def interrupted(iterable, **kw):
        for i, x in enumerate(iterable):
            if i == 550:
                raise KeyboardInterrupt
            yield x

    monkeypatch.setattr(pd, "progress", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, state_path=state)
    assert state.exists()  # written at step 500
    monkeypatch.undo()
    resumed = pretrain(cfg, state_path=state)
    assert not state.exists()  # removed when done
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)


class _Planted:
    """A pickle that runs code when loaded: creates a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_planted_pretraining_state_is_never_unpickled(tmp_path):
    marker, state = tmp_path / "pwned", tmp_path / "state.pt"
    torch.save({"model": _Planted(str(marker))}, state)
    with pytest.raises(Exception, match="[Ww]eights only"):
        pretrain(PortraitDiffusionConfig(hidden=16, depth=1, emb_dim=8, n_steps=10, batch_size=8), state_path=state)
    assert not marker.exists()


def test_configs_validate_and_old_checkpoints_still_load():
    with pytest.raises(ValueError, match="n_steps"):
        PortraitDiffusionConfig(n_steps=0)
    with pytest.raises(ValueError, match="confidence"):
        ClassifierConfig(confidence=0.4)
    assert load_model().config.n_steps == 3000 and load_classifier().config.n_steps == 600
