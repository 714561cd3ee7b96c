"""Figures and the explorer of Lab 06: image grids, confusion matrix, reward curves, DDPO one epoch at a time.

The figures of the paper "Diminishing Stereotype Bias in Image Generation Model using
Reinforcement Learning Feedback" (Figs. 2-3 and 5-12) at toy scale. Every figure function draws on
matplotlib axes it creates with ``course_kit.viz.style.new_figure`` and returns the figure; the
notebook ends the cell with ``plt.show()``. ``DDPOExplorer`` (a ``course_kit.viz.explorer.Explorer``)
steps DDPO one epoch at a time and shows the portraits and the female share.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from course_kit.runtime import single_thread
from course_kit.viz.explorer import Explorer
from course_kit.viz.audit import contrast_ratio
from course_kit.viz.style import ACCENT, MAJORITY, MINORITY, NEUTRAL, PALETTE, legend_below, new_figure


def _grid(images: torch.Tensor, ncols: int) -> np.ndarray:
    n, _, h, w = images.shape
    nrows = -(-n // ncols)
    canvas = np.ones((nrows * (h + 1) - 1, ncols * (w + 1) - 1, 3), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = images[i].permute(1, 2, 0).cpu().numpy()
    return canvas


def image_grids(grids: Dict[str, torch.Tensor], ncols: int = 8):
    """One panel per entry: title -> images (N, 3, H, W) tiled ``ncols`` wide (the paper's Figs. 5, 7, 9, 11)."""
    fig, axes = new_figure(ncols=len(grids), width=4.8, height=2.7)  # portraits large enough to see the hair
    axes = np.atleast_1d(axes)
    for ax, (title, images) in zip(axes, grids.items()):
        ax.imshow(_grid(images, ncols), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return fig


def balance_reward_curve(n: int = 16):
    """The paper's Fig. 2: the batch's total R_balance as a function of the female ratio q (no None images)."""
    from course_kit.diffusion.gender_rewards import r_balance

    ks = np.arange(n + 1)
    totals = [float(r_balance(["female"] * k + ["male"] * (n - k)).sum()) for k in ks]
    fig, ax = new_figure()
    ax.plot(ks / n, totals, "o-", color=ACCENT)
    ax.set_xlabel("female ratio q in the batch")
    ax.set_ylabel(f"total R_balance ({n} images)")
    ax.set_title("R_balance peaks at q = 0.5")
    return fig


def confusion_panels(matrices: Dict[str, np.ndarray]):
    """The paper's Fig. 3: one confusion matrix per title (rows truth, columns prediction: female, male, None)."""
    from course_kit.diffusion.portrait_classifier import accuracies

    fig, axes = new_figure(ncols=len(matrices), width=3.2, height=3.0)
    axes = np.atleast_1d(axes)
    names = ["female", "male", "None"]
    for ax, (title, m) in zip(axes, matrices.items()):
        image = ax.imshow(m, cmap="Blues")
        for i in range(3):
            for j in range(3):
                cell = image.to_rgba(m[i, j])  # the colour drawn under the number: black or white, whichever reads better
                text = "black" if contrast_ratio("black", cell) >= contrast_ratio("white", cell) else "white"
                ax.text(j, i, str(m[i, j]), ha="center", va="center", color=text, fontsize=9)
        ax.set_xticks(range(3), names)
        ax.set_yticks(range(3), names)
        ax.set_xlabel("classifier")
        ax.set_ylabel("oracle (renderer's cue)")
        ax.grid(False)
        acc, acc2 = accuracies(m)
        ax.set_title(f"{title}\naccuracy {acc:.2f} ({acc2:.2f} without None)", fontsize=9)
    return fig


def share_vs_guidance(weights: Sequence[float], shares: Dict[str, Sequence[float]], data: Dict[str, float]):
    """Female share of samples against the CFG weight, one line per prompt, dashed = training data."""
    fig, ax = new_figure(width=5.0)
    colours = [MAJORITY, MINORITY, ACCENT, NEUTRAL]
    for (prompt, s), c in zip(shares.items(), colours):
        ax.plot(weights, s, "o-", color=c, label=prompt)
        ax.axhline(data[prompt], color=c, ls="--", lw=1)
    ax.set_xlabel("guidance weight w")
    ax.set_ylabel("female share (classifier)")
    ax.set_ylim(-0.02, 1.02)
    legend_below(fig, ax, ncol=2)
    ax.set_title("CFG amplifies the training skew (dashed: data)")
    return fig


def training_curves(runs: Dict[str, dict], target: Optional[float] = None, band: Optional[float] = None):
    """The paper's Figs. 6, 8, 10, 12: per run, the female share (evaluation), the mean reward and the loss per epoch.

    ``runs``: label -> {"share": [...] (epochs + 1), "reward": [...], "loss": [...]}.
    """
    fig, axes = new_figure(ncols=3, width=3.4, height=2.8)
    colours = [ACCENT, MINORITY, MAJORITY, NEUTRAL]
    for (label, r), c in zip(runs.items(), colours):
        axes[0].plot(range(len(r["share"])), r["share"], "o-", ms=3, color=c, label=label)
        axes[1].plot(range(1, len(r["reward"]) + 1), r["reward"], "o-", ms=3, color=c, label=label)
        axes[2].plot(range(1, len(r["loss"]) + 1), r["loss"], "o-", ms=3, color=c, label=label)
    if target is not None:
        axes[0].axhline(target, color=NEUTRAL, ls="--", lw=1)
    if band is not None:
        axes[0].axhspan(0.5 - band, 0.5 + band, color=NEUTRAL, alpha=0.2)
    axes[0].set(ylabel="female share (evaluation)", title="share")
    axes[1].set(ylabel="mean reward (training batch)", title="reward")
    axes[2].set(ylabel="PPO loss", title="loss")
    for ax in axes:
        ax.set_xlabel("epoch")
    axes[0].set_ylim(-0.02, 1.02)
    legend_below(fig, axes[0])
    return fig


def r_balance_coupling(n: int = 8):
    """R_balance of one fixed female-labelled image as the rest of a batch of ``n`` changes (eq. 3's coupling)."""
    from course_kit.diffusion.gender_rewards import r_balance

    ks = np.arange(n)  # female images among the other n - 1
    mine = [float(r_balance(["female"] + ["female"] * k + ["male"] * (n - 1 - k))[0]) for k in ks]
    fig, ax = new_figure()
    ax.plot((ks + 1) / n, mine, "o-", color=MINORITY)
    ax.axhline(0, color=NEUTRAL, lw=1)
    ax.set_xlabel("female ratio q of the batch (this image included)")
    ax.set_ylabel("R_balance of the same female image")
    ax.set_title("the same image, rewarded by the rest of the batch")
    return fig


SEED_COLOURS = (PALETTE[0], PALETTE[4], PALETTE[2], PALETTE[3], PALETTE[5])  # Okabe-Ito: colour-blind safe, one per seed


TRUST_REGION_STYLES = {"clip": "o-", "truly": "s--", "truly_exact": "^:"}  # one marker and line style per trust region
TRUST_REGION_NAMES = {"clip": "clip", "truly": "Truly PPO (k1)", "truly_exact": "Truly PPO (exact KL)"}


def per_seed_runs(rows: Sequence[dict], target: float = 0.9,
                  title: str = "R_shift per seed and trust region (dashed: 0.9)"):
    """The training batch's female share per epoch (64 images), one colour per seed, one line style per trust region.

    ``rows`` as returned by ``experiments.ddpo.trust_region_seeds``: {"trust_region", "seed", "share", ...}.
    """
    fig, ax = new_figure(width=5.6, height=3.4)
    for r in rows:
        ax.plot(range(len(r["share"])), r["share"], TRUST_REGION_STYLES.get(r["trust_region"], "o-."), ms=3,
                color=SEED_COLOURS[int(r["seed"]) % len(SEED_COLOURS)], alpha=0.9,
                label=f"{TRUST_REGION_NAMES.get(r['trust_region'], r['trust_region'])}, seed {r['seed']}")
    ax.axhline(target, color=NEUTRAL, ls="--", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("female share (training batch)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    legend_below(fig, ax, ncol=3, fontsize=7)
    return fig


def hack_seed_panels(rows: Sequence[dict]):
    """R_shift on a person-prompt, one colour per seed: classifier share, renderer's share, None rate, mean zoom per epoch.

    ``rows`` as stored by ``experiments.ddpo_stored.hack_seeds``.
    """
    fig, axes = new_figure(ncols=4, width=2.9, height=2.6)
    for r in rows:
        c = SEED_COLOURS[int(r["seed"]) % len(SEED_COLOURS)]
        for ax, key in zip(axes, ("share", "oracle_share", "none_rate", "zoom")):
            ax.plot(range(len(r[key])), r[key], "o-", ms=3, color=c, label=f"seed {r['seed']}")
    for ax, title, ylabel in zip(axes, ("classifier's share", "renderer's share", "None rate", "mean zoom (-1: full figure)"),
                                 ("female share", "female share", "share of images", "zoom latent")):
        ax.set_title(title, fontsize=9)
        ax.set(xlabel="epoch", ylabel=ylabel)
    legend_below(fig, axes[0])
    return fig


def share_curves(runs: Dict[str, Sequence[float]], band: Optional[float] = None, target: Optional[float] = None,
                 title: str = "female share per epoch"):
    """The evaluation's female share per epoch for each labelled run (index 0: before fine-tuning)."""
    fig, ax = new_figure(width=5.0)
    for (label, shares), c in zip(runs.items(), SEED_COLOURS):
        ax.plot(range(len(shares)), shares, "o-", ms=3, color=c, label=label)
    if band is not None:
        ax.axhspan(0.5 - band, 0.5 + band, color=NEUTRAL, alpha=0.2)
    if target is not None:
        ax.axhline(target, color=NEUTRAL, ls="--", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("female share (evaluation)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    legend_below(fig, ax, ncol=2)
    return fig


def advantage_vs_q(qs: Sequence[float], curves: Dict[str, Sequence[float]]):
    """What DDPO does with R_balance: a female-labelled image's reward and advantage against the batch's q.

    ``curves``: label -> one value per q (``experiments.ddpo.balance_advantages``).
    """
    fig, ax = new_figure(width=5.0)
    styles = ["-", "--", ":"]
    for (label, ys), c, ls in zip(curves.items(), SEED_COLOURS, styles):
        ax.plot(qs, ys, ls, color=c, lw=2, label=label)
    ax.axvline(0.5, color=NEUTRAL, lw=1)
    ax.axhline(0.0, color=NEUTRAL, lw=1)
    ax.set_xlabel("female share q of the batch")
    ax.set_ylabel("value for a female-labelled image")
    ax.set_title("R_balance's reward and DDPO's advantage")
    legend_below(fig, ax, ncol=3)
    return fig


# ----------------------------------------------------------------------------------------------
# The explorer
# ----------------------------------------------------------------------------------------------
class DDPOExplorer(Explorer):
    """Prompt / reward / CFG weight controls, a one-epoch DDPO button, the portraits and the share per epoch.

    ``update(prompt=..., reward=..., w=...)`` starts a new run for a new prompt or reward (a fresh copy
    of the pretrained model), re-evaluates for a new w, and ``update(action="epoch")`` / ``update(action="reset")``
    trains one epoch / starts the run again. ``state`` holds the epoch, the share per epoch and the None rate.

    The controls that do not train answer at once: before any training the share, the None rate and
    the portraits' latents of every prompt and w come from the stored table ``data/ddpo_runs/explorer.json``
    (``python -m course_kit.experiments.ddpo_stored explorer``, ``eval_n`` images each); after each
    trained epoch every w of the slider is evaluated once (part of the epoch button's seconds). A move
    then only looks them up, renders the portraits (the first ``n_images`` of the ``eval_n`` images
    behind the share) and redraws; nothing is sampled.
    """

    EPOCH_AXIS = 10  # epochs the share axis shows before it widens

    def __init__(self, eval_n: int = 128, seed: int = 0, n_images: int = 8):
        import ipywidgets as W

        from course_kit.diffusion.portrait_classifier import load_classifier
        from course_kit.diffusion.portrait_diffusion import load_model
        from course_kit.experiments import ddpo_stored
        from course_kit.experiments.ddpo import GUIDANCE, SHIFT_PROMPT
        from course_kit.worlds import portrait_world as world

        super().__init__()
        if isinstance(n_images, bool) or not isinstance(n_images, int) or not 1 <= n_images <= min(64, eval_n):
            raise ValueError(f"n_images must be an integer in [1, min(64, eval_n) = {min(64, eval_n)}], got {n_images!r}")
        self.eval_n, self.seed, self.n_images = eval_n, seed, n_images
        self.classifier = load_classifier()
        self.model = load_model()  # read (and checksum-verified) once
        # every run starts from these weights, copied back in place (a deepcopy of the module took half a reset)
        self._pretrained_weights = {k: v.clone() for k, v in self.model.state_dict().items()}
        stored = ddpo_stored.load("explorer")
        # the pretrained model's numbers per prompt and w, when they were measured as this explorer would
        measured_alike = (stored["eval_n"], stored["seed"]) == (eval_n, seed) and n_images <= ddpo_stored.EXPLORER_PORTRAITS
        self._pretrained = stored["table"] if measured_alike else {}
        self.ws = [float(w) for w in ddpo_stored.EXPLORER_WS]
        self.values = {"prompt": SHIFT_PROMPT, "reward": "shift", "w": GUIDANCE}
        self.observe("prompt", W.Dropdown(options=world.PROMPTS, value=SHIFT_PROMPT, description="prompt"))
        self.observe("reward", W.ToggleButtons(options=["shift", "balance"], value="shift", description="reward"))
        self.observe("w", W.FloatSlider(value=GUIDANCE, min=min(self.ws), max=max(self.ws), step=self.ws[1] - self.ws[0],
                                        continuous_update=False,
                                        description="CFG w"))
        self.controls["epoch"] = W.Button(description="DDPO epoch", button_style="primary")
        self.controls["reset"] = W.Button(description="reset")
        self.controls["epoch"].on_click(lambda _: self.update(action="epoch"))
        self.controls["reset"].on_click(lambda _: self.update(action="reset"))
        c = self.controls
        self.widget = W.VBox([W.HBox([c["prompt"], c["reward"]]), W.HBox([c["w"], c["epoch"], c["reset"]]),
                              self.label, self.output])
        self._image = self._line = None
        self.trainer = None  # this run's DDPOTrainer, built by its first epoch (None: the weights are the pretrained ones)
        self.update(action="reset")

    @property
    def epoch(self) -> int:
        """Epochs trained in this run (0 until the epoch button builds the trainer)."""
        return self.trainer.epoch if self.trainer is not None else 0

    def _new_run(self) -> None:
        """Start again from the pretrained model; the trainer is built by the run's first epoch.

        Only a trained model needs its weights put back, and only an epoch needs a trainer, so a new
        prompt or reward before any training costs only the stored lookup and the redraw (the dropdown
        answers within the page's 100 ms).
        """
        if self.trainer is not None:  # trained: put the pretrained weights back
            with single_thread():  # 21 small tensors: 1 ms on one thread, up to 80 ms on two threads of a busy CPU
                self.model.load_state_dict(self._pretrained_weights)  # the pretrained model again, without reading data/
        self.trainer = None
        self.shares: List[float] = []
        # (epoch, w) -> {"share", "none_rate", "latents" (n_images, 8)} of this run's model
        self._cache: Dict[tuple, Dict[str, Any]] = {}

    def _new_trainer(self):
        """A DDPO trainer for the current prompt's run: the reward and w on the controls, the lab's config."""
        from course_kit.diffusion.ddpo import DDPOTrainer
        from course_kit.diffusion.gender_rewards import make_gender_reward
        from course_kit.experiments.ddpo import CONFIGS

        config = replace(CONFIGS[self.values["reward"]], w=float(self.values["w"]), seed=self.seed)
        return DDPOTrainer(self.model, make_gender_reward(self.classifier.classify, self.values["reward"]), config)

    def _numbers(self, w: float) -> Dict[str, Any]:
        """Share, None rate and portrait latents of the current model at ``w``: stored, cached, or measured now."""
        from course_kit.experiments.ddpo import evaluate

        key = (self.epoch, float(w))
        if key not in self._cache:
            stored = self._pretrained.get(self.values["prompt"], {}).get(f"{w:g}") if self.epoch == 0 else None
            if stored is None:
                ev = evaluate(self.model, self.classifier, self.values["prompt"], float(w), n=self.eval_n, seed=self.seed)
                stored = {"share": ev["share"], "none_rate": ev["none_rate"], "latents": ev["latents"]}
            latents = torch.as_tensor(stored["latents"], dtype=torch.float32)[:self.n_images]  # (n_images, 8)
            self._cache[key] = {"share": stored["share"], "none_rate": stored["none_rate"], "latents": latents}
        return self._cache[key]

    def update(self, action: Optional[str] = None, **values: Any) -> Dict[str, Any]:
        """Apply control values and/or an action ("epoch", "reset"), re-evaluate, redraw; return ``state``."""
        unknown = set(values) - set(self.values)
        if unknown or action not in (None, "epoch", "reset"):
            raise ValueError(f"unknown control(s) {sorted(unknown)} or action {action!r}; controls: "
                             f"{sorted(self.values)}, actions: 'epoch', 'reset'")
        new_run = action == "reset" or any(k in values and values[k] != self.values[k] for k in ("prompt", "reward"))
        self.values.update(values)
        if new_run:
            self._new_run()
        elif "w" in values:
            if self.trainer is not None:
                self.trainer.config = replace(self.trainer.config, w=float(self.values["w"]))
            self.shares = self.shares[:-1]  # the last share is re-measured at the new w
        if action == "epoch":
            if self.trainer is None:
                self.trainer = self._new_trainer()
            self.trainer.train_epoch([self.values["prompt"]])
            for w in self.ws:  # every w of the slider once per epoch: later w moves only look up
                self._numbers(w)
        with single_thread():  # tiny tensors: a second thread only waits on the first (and on the browser)
            ev = self._numbers(float(self.values["w"]))
            images = self.model.decode(ev["latents"])  # (n_images, 3, H, W): the portraits on display
        self.shares.append(ev["share"])
        self.state = {"epoch": self.epoch, "shares": list(self.shares), "share": ev["share"],
                      "none_rate": ev["none_rate"], **self.values}
        self.label.value = (f"{self.values['prompt']} | R_{self.values['reward']} | "
                            f"epoch {self.epoch} | female share {ev['share']:.2f} | None rate "
                            f"{ev['none_rate']:.2f} | shares so far: " + ", ".join(f"{v:.2f}" for v in self.shares))
        self._draw(images)
        return self.state

    def _draw(self, images: torch.Tensor) -> None:
        """Reuse one figure: new pixels for the grid, new points for the share curve; encode it fast.

        A move redraws only the portraits and the share curve over the stored rest of the figure
        (``Explorer.blit``). The epoch axis is fixed (``EPOCH_AXIS`` epochs, doubled when a run goes past
        it, which redraws everything once).
        """
        if self.figure is None:
            self.figure, (ax_img, ax_share) = new_figure(ncols=2, width=3.6, height=2.4)
            self.figure.set_dpi(72)  # a smaller PNG to render and send on every move
            self._image = ax_img.imshow(_grid(images, 4), interpolation="nearest")
            ax_img.axis("off")
            ax_img.set_title(f"{self.n_images} of the {self.eval_n} samples at this w", fontsize=9)
            ax_share.set_title("female share per epoch", fontsize=9)
            (self._line,) = ax_share.plot([], [], "o-", color=ACCENT)
            ax_share.set_ylim(-0.02, 1.02)
            ax_share.set_xlim(-0.5, self.EPOCH_AXIS + 0.5)
            ax_share.set_xlabel("epoch")
            ax_share.set_ylabel("female share")
        ax_share = self._line.axes
        if len(self.shares) - 1 > ax_share.get_xlim()[1] - 0.5:  # a run past the axis: a wider one
            ax_share.set_xlim(-0.5, 2 * (len(self.shares) - 1) + 0.5)
        self._image.set_data(_grid(images, 4))
        self._line.set_data(range(len(self.shares)), self.shares)
        self.blit(self.figure, [self._image, self._line], key=ax_share.get_xlim())  # a wider axis: a new background
