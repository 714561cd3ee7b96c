"""Widgets of Lab 06: step DDPO one epoch at a time and watch the portraits and the female share change.

``DDPOExplorer`` holds the controls (prompt, reward, CFG weight, "DDPO epoch" and "reset" buttons)
and the update logic; the notebook only displays ``explorer.box``. Tests drive it without a
browser by setting ``.value`` and calling ``Button.click()`` (GUIDE section 3).
"""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Optional

import numpy as np
import torch

from course_kit.worlds import portrait_world as world
from course_kit.diffusion.ddpo import DDPOTrainer, make_gender_reward
from course_kit.experiments.ddpo import BALANCE_CONFIG, GUIDANCE, SHIFT_CONFIG, SHIFT_PROMPT, evaluate
from course_kit.diffusion.portrait_classifier import load_classifier
from course_kit.diffusion.portrait_diffusion import load_model


def grid_png(images: torch.Tensor, ncols: int = 8, scale: int = 3) -> bytes:
    """PNG bytes of images (N, 3, H, W) in [0, 1] tiled ``ncols`` wide, each pixel ``scale`` x ``scale``."""
    from PIL import Image

    n, _, h, w = images.shape
    nrows = -(-n // ncols)
    canvas = np.ones((nrows * (h + 1), ncols * (w + 1), 3), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = images[i].permute(1, 2, 0).numpy()
    img = Image.fromarray((canvas * 255).round().astype(np.uint8)).resize(
        (canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class DDPOExplorer:
    """Prompt / reward / guidance controls, a one-epoch DDPO button, the image grid and the share."""

    def __init__(self, eval_n: int = 128, seed: int = 0):
        import ipywidgets as W

        self.eval_n = eval_n
        self.seed = seed
        self.classifier = load_classifier()
        self.prompt = W.Dropdown(options=world.PROMPTS, value=SHIFT_PROMPT, description="prompt")
        self.reward = W.ToggleButtons(options=["shift", "balance"], value="shift", description="reward")
        self.guidance = W.FloatSlider(value=GUIDANCE, min=0.0, max=5.0, step=0.5, description="CFG w")
        self.step_button = W.Button(description="DDPO epoch", button_style="primary")
        self.reset_button = W.Button(description="reset")
        self.image = W.Image(format="png")
        self.status = W.HTML()
        self.box = W.VBox([W.HBox([self.prompt, self.reward]), W.HBox([self.guidance, self.step_button, self.reset_button]),
                           self.status, self.image])
        self.shares = []  # female share after each epoch (index 0 = before DDPO)
        self.reset()
        self.prompt.observe(lambda _: self.reset(), names="value")
        self.reward.observe(lambda _: self.reset(), names="value")
        self.guidance.observe(lambda _: self._on_guidance(), names="value")
        self.step_button.on_click(lambda _: self.step())
        self.reset_button.on_click(lambda _: self.reset())

    def _config(self):
        base = SHIFT_CONFIG if self.reward.value == "shift" else BALANCE_CONFIG
        return replace(base, guidance_scale=float(self.guidance.value), seed=self.seed)

    def reset(self) -> None:
        """Reload the pretrained model and start a new DDPO run with the current controls."""
        self.model = load_model()
        cfg = self._config()
        self.trainer = DDPOTrainer(self.model, make_gender_reward(self.classifier.classify, cfg.reward), cfg)
        self.shares = []
        self._refresh()

    def _on_guidance(self) -> None:
        self.trainer.config = replace(self.trainer.config, guidance_scale=float(self.guidance.value))
        self.shares = self.shares[:-1] if self.shares else []
        self._refresh()

    def step(self) -> None:
        """One DDPO epoch on the selected prompt, then re-evaluate."""
        self.trainer.train_epoch([self.prompt.value])
        self._refresh()

    def _refresh(self) -> None:
        ev = evaluate(self.model, self.classifier, self.prompt.value, float(self.guidance.value), n=self.eval_n,
                      seed=self.seed)
        self.shares.append(ev["share"])
        self.last_eval = ev
        self.image.value = grid_png(ev["images"])
        self.status.value = (f"epoch {self.trainer.epoch} | female share {ev['share']:.2f} | "
                             f"None rate {ev['none_rate']:.2f} | shares so far: "
                             + ", ".join(f"{s:.2f}" for s in self.shares))
