"""Lab 08's headline: a constitution and a teacher model write the labels; DPO follows them.

``course-kit run rlaif --json`` prints the figures the notebook ``labs/08_rlaif.ipynb`` shows:

- ``teacher.agreement.{grounded, honest, helpful}``: per principle alone, the share of the pairs where
  the teacher's label (one order) agrees with the gold (human) label; ``teacher.agreement_with_principle``:
  over the pairs the principle decides on the true scene, agreement with what it prefers there;
  ``teacher.position_bias``: share of the grounded constitution's labels (one principle drawn per pair,
  one order) that pick the response shown first (0.5 = none; the order is random); ``teacher.swap``: the same labels asked in both
  orders: share kept, position bias and agreement with the human labels before / after the filter;
  ``teacher.error_by_kind``: its error rate per pair kind;
- ``before``: the SFT student's ``{chair, sycophancy, malformed}`` (and coverage, correction);
- ``teacher.abstain``: the lab's labelling of the grounded constitution (``rlaif.abstain_labels``: both
  orders averaged, the teacher abstains within ``margin`` of a tie and the pair goes to the other
  principle): share of pairs decided, share whose first-drawn principle abstained, position bias and
  agreement with the human labels over the decided pairs, teacher calls;
- ``before``: the SFT student's ``{chair, sycophancy, malformed}`` (and coverage, correction);
- ``after.<run>``: the same after DPO on each label set: ``human`` (gold labels, all pairs),
  ``human_tenth`` (a tenth of them), and one run per constitution labelled the lab's way, with
  abstention (``grounded``, ``mixed``, ``helpful``); and the grounded constitution's ablations:
  ``grounded_draw`` (one principle drawn per pair, one order, no abstention: plain Constitutional AI),
  ``grounded_swap`` (the same asked in both orders, consistent labels only), ``grounded_sum`` (both
  principles asked for every pair, their log-odds added);
- ``labels.<run>``: pairs used, human labels bought and teacher queries made (the label cost), and
  for the runs with abstention the pairs whose first principle abstained and the pairs dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from course_kit.preference import dpo_lm
from course_kit.preference import rlaif
from course_kit.runtime import DATA_DIR, seed_everything, single_thread
from course_kit.worlds import scene_lm as lm
from course_kit.worlds import scene_world as sw

METRICS = ("chair", "sycophancy", "malformed")


@dataclass
class LabConfig:
    """Budget of Lab 08 (the notebook and the headline use the same)."""

    n_pairs: int = 512  # unlabelled pairs the teacher labels (Lab 04's pair mix)
    n_scenes: int = 400  # evaluation scenes (one caption and one false-premise question each)
    tenth: int = 51  # human labels of the cheap baseline (a tenth of n_pairs)
    dpo: dpo_lm.DPOTrainConfig = field(default_factory=dpo_lm.DPOTrainConfig)  # Lab 04's DPO: beta 0.3, lr 1e-4

    def __post_init__(self):
        for name in ("n_pairs", "n_scenes", "tenth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"LabConfig.{name} must be an integer >= 1, got {value!r}")
        if self.tenth > self.n_pairs:
            raise ValueError(f"LabConfig.tenth ({self.tenth}) must be <= n_pairs ({self.n_pairs})")


QUICK = LabConfig(n_pairs=160, n_scenes=100, tenth=16)


@torch.no_grad()
def evaluate_student(model, tokenizer, scenes: Sequence[sw.Scene], seed: int = 0) -> Dict[str, float]:
    """One sampled caption and one sampled false-premise answer per scene.

    ``chair``: corpus-level CHAIR_i of the captions; ``coverage``: mean share of the scene's objects a
    caption mentions; ``sycophancy`` / ``correction`` / ``malformed``: shares of the answers
    (``scene_world.answer_rates``); ``answer_chair``: CHAIR_i over the objects the answers mention.
    """
    captions, questions = lm.evaluation_prompts(scenes, seed)
    texts = lm.generate(model, tokenizer, captions + questions, seed=seed)
    n = len(scenes)
    caps, answers = texts[:n], texts[n:]
    counts = [sw.hallucination_counts(s, t) for s, t in zip(scenes, caps)]
    rates = sw.answer_rates(list(zip(scenes, questions, answers)))
    return {"chair": sum(c[0] for c in counts) / max(sum(c[1] for c in counts), 1),
            "coverage": sum(sw.coverage(s, t) for s, t in zip(scenes, caps)) / n,
            "sycophancy": rates["sycophancy"], "correction": rates["correction"], "malformed": rates["malformed"],
            "answer_chair": rates["chair"]}


def run_dpo(ref, tokenizer, pairs: List[Dict[str, str]], scenes, cfg: dpo_lm.DPOTrainConfig, seed: int = 0) -> Dict:
    """Lab 04's DPO from the SFT model ``ref`` on ``pairs``; returns ``{"policy", "history", "metrics"}``."""
    seed_everything(seed)
    policy = dpo_lm.clone(ref)
    history = dpo_lm.train_dpo(policy, ref, tokenizer, pairs, cfg)
    return {"policy": policy, "history": history, "metrics": evaluate_student(policy, tokenizer, scenes, seed)}


def teacher_by_principle(teacher, tokenizer, pairs, seed: int = 0,
                         cfg: Optional[rlaif.TeacherConfig] = None, log_odds: Optional[Dict] = None) -> Dict[str, Dict[str, float]]:
    """Each principle alone: agreement with the gold (human) labels, with the principle's own verdict on the true scene, position bias.

    ``log_odds``: the teacher's verdicts of every principle (``rlaif.principle_log_odds``, the same seed), so
    that the teacher is not asked again; None asks it here (the same values).
    """
    out = {}
    human = torch.tensor([bool(p["human_first"]) for p in pairs])  # (N,)
    for name, text in rlaif.PRINCIPLES.items():
        labels = (rlaif.label_pairs(teacher, tokenizer, pairs, [text], seed, cfg) if log_odds is None
                  else rlaif.combine_labels(log_odds, [text], seed))
        out[name] = {"agreement": float((labels["first_ab"] == human).float().mean()),
                     "agreement_with_principle": rlaif.principle_agreement(pairs, labels, name),
                     "position_bias": float(labels["first_ab"].float().mean()),
                     "kept": float(labels["consistent"].float().mean())}
    return out


def breakdown(pairs, labels) -> List[Dict[str, object]]:
    """Per (principle drawn, kind of pair): count, agreement with human labels, share kept by the swap filter,
    and agreement among the kept labels (NaN when none is kept)."""
    names = {text: name for name, text in rlaif.PRINCIPLES.items()}
    human = torch.tensor([bool(p["human_first"]) for p in pairs])  # (N,)
    right = labels["first_ab"] == human  # (N,)
    rows = []
    for text in dict.fromkeys(labels["principle"]):
        for kind in ("hallucination", "coverage", "sycophancy"):
            m = torch.tensor([c == text and p["kind"] == kind for c, p in zip(labels["principle"], pairs)])  # (N,)
            if not m.any():
                continue
            kept = labels["consistent"][m]
            rows.append({"principle": names.get(text, text), "kind": kind, "n": int(m.sum()),
                         "agreement": float(right[m].float().mean()), "kept": float(kept.float().mean()),
                         "agreement_kept": float(right[m][kept].float().mean()) if kept.any() else float("nan")})
    return rows


def label_sets(teacher, tokenizer, pairs, tenth: int, seed: int = 0,
               cfg: Optional[rlaif.TeacherConfig] = None, log_odds: Optional[Dict] = None,
               judge=None) -> Dict[str, Dict]:
    """Every label set of the lab: ``{run: {"pairs", "human_labels", "teacher_queries", "agreement", "kinds",
    "labels"?, "abstained"?, "dropped"?}}``.

    ``log_odds``: the teacher's verdicts of every principle (``rlaif.principle_log_odds``), computed here when
    None; ``judge``: the debiased judge that labels the runs with abstention (``rlaif.debiased_judge``'s
    signature, e.g. the student's; None: ``rlaif.abstain_labels``, the same labels). ``agreement``: share of
    the DPO pairs whose chosen response is the human label's; ``kinds``: the DPO pairs per kind;
    ``agreement_by_kind``: the agreement per kind of pair.
    """
    n = len(pairs)
    human = [bool(p["human_first"]) for p in pairs]
    out = {"human": {"pairs": rlaif.dpo_pairs(pairs, human), "human_labels": n, "teacher_queries": 0},
           "human_tenth": {"pairs": rlaif.dpo_pairs(pairs[:tenth], human[:tenth]), "human_labels": tenth, "teacher_queries": 0}}
    if log_odds is None:
        log_odds = rlaif.principle_log_odds(teacher, tokenizer, pairs, list(rlaif.PRINCIPLES.values()), seed, cfg)
    for name in ("grounded", "mixed", "helpful"):
        labels = (rlaif.combine_labels(log_odds, rlaif.CONSTITUTIONS[name], seed, "abstain") if judge is None
                  else rlaif.judged_labels(log_odds, rlaif.CONSTITUTIONS[name], seed, judge=judge))
        out[name] = {"pairs": rlaif.dpo_pairs(pairs, labels["first_ab"].tolist(), labels["decided"].tolist()),
                     "human_labels": 0, "teacher_queries": labels["teacher_queries"], "labels": labels,
                     "abstained": labels["abstained"], "dropped": int((~labels["decided"]).sum())}
        if name == "grounded":
            draw = rlaif.combine_labels(log_odds, rlaif.CONSTITUTIONS[name], seed, "sample")
            out["grounded_draw"] = {"pairs": rlaif.dpo_pairs(pairs, draw["first_ab"].tolist()), "human_labels": 0,
                                    "teacher_queries": n, "labels": draw}
            out["grounded_swap"] = {"pairs": rlaif.dpo_pairs(pairs, draw["first_ab"].tolist(), draw["consistent"].tolist()),
                                    "human_labels": 0, "teacher_queries": 2 * n, "labels": draw}
            both = rlaif.combine_labels(log_odds, rlaif.CONSTITUTIONS[name], seed, "sum")
            out["grounded_sum"] = {"pairs": rlaif.dpo_pairs(pairs, both["first_ab"].tolist()), "human_labels": 0,
                                   "teacher_queries": len(rlaif.CONSTITUTIONS[name]) * n, "labels": both}
    gold = {(p["prompt"], p["first"] if p["human_first"] else p["second"]) for p in pairs}
    for s in out.values():
        s["agreement"] = sum((d["prompt"], d["chosen"]) in gold for d in s["pairs"]) / len(s["pairs"])
        s["kinds"] = {k: sum(d["kind"] == k for d in s["pairs"]) for k in ("hallucination", "coverage", "sycophancy")}
        s["agreement_by_kind"] = {k: sum((d["prompt"], d["chosen"]) in gold for d in s["pairs"] if d["kind"] == k) / max(n_k, 1)
                                  for k, n_k in s["kinds"].items()}
    return out


def abstain_report(pairs, labels) -> Dict[str, float]:
    """For ``rlaif.abstain_labels``' labels: share decided, share whose first principle abstained, position bias
    and agreement with the human labels over the decided pairs, and teacher calls."""
    human = torch.tensor([bool(p["human_first"]) for p in pairs])  # (N,)
    keep = labels["decided"]  # (N,)
    return {"decided": float(keep.float().mean()), "abstained": labels["abstained"] / len(pairs),
            "position_bias": float(labels["first_ab"][keep].float().mean()),
            "agreement": float((labels["first_ab"] == human)[keep].float().mean()),
            "teacher_queries": labels["teacher_queries"]}


def rounded(d: Dict[str, float], keys: Optional[Sequence[str]] = None, digits: int = 4) -> Dict[str, float]:
    """``d`` restricted to ``keys`` (all by default) with values rounded."""
    return {k: round(float(d[k]), digits) for k in (keys or d)}


def headline(quick: bool = False, seed: int = 0) -> Dict[str, object]:
    """Lab 08's figures (module docstring); one torch thread, as the notebook under nbval."""
    with single_thread():
        return _headline(QUICK if quick else LabConfig(), seed)


def _headline(cfg: LabConfig, seed: int) -> Dict[str, object]:
    teacher, ttok, tcfg = rlaif.load_teacher()
    ref, tok = lm.load_scene_lm()
    pairs = rlaif.unlabeled_pairs(cfg.n_pairs, seed)
    scenes = sw.test_scenes(cfg.n_scenes, seed=seed)
    log_odds = rlaif.principle_log_odds(teacher, ttok, pairs, list(rlaif.PRINCIPLES.values()), seed, tcfg)  # asked once
    per_principle = teacher_by_principle(teacher, ttok, pairs, seed, tcfg, log_odds=log_odds)
    sets = label_sets(teacher, ttok, pairs, cfg.tenth, seed, tcfg, log_odds=log_odds)
    report = rlaif.label_report(pairs, sets["grounded_draw"]["labels"])
    abstain = abstain_report(pairs, sets["grounded"]["labels"])
    out: Dict[str, object] = {
        "teacher": {
            "agreement": {k: round(v["agreement"], 4) for k, v in per_principle.items()},
            "agreement_with_principle": {k: round(v["agreement_with_principle"], 4) for k, v in per_principle.items()},
            "position_bias": round(report["position_bias"], 4),
            "position_bias_by_principle": {k: round(v["position_bias"], 4) for k, v in per_principle.items()},
            "swap": {"kept": round(report["kept"], 4), "position_bias_before": round(report["position_bias"], 4),
                     "position_bias_after": round(report["position_bias_kept"], 4),
                     "agreement_before": round(report["agreement"], 4), "agreement_after": round(report["agreement_kept"], 4)},
            "error_by_kind": rounded(report["error_by_kind"]),
            "error_misperceived": round(report["error_misperceived"], 4),
            "error_perceived_right": round(report["error_perceived_right"], 4),
            "abstain": {"margin": rlaif.ABSTAIN_MARGIN, **rounded(abstain, ("decided", "abstained", "position_bias", "agreement")),
                        "teacher_queries": abstain["teacher_queries"]},
        },
        "before": rounded(evaluate_student(ref, tok, scenes, seed), (*METRICS, "coverage", "correction")),
        "after": {}, "labels": {},
    }
    for name, s in sets.items():
        run = run_dpo(ref, tok, s["pairs"], scenes, cfg.dpo, seed)
        out["after"][name] = rounded(run["metrics"], (*METRICS, "coverage", "correction"))
        out["labels"][name] = {"pairs": len(s["pairs"]), "human_labels": s["human_labels"], "teacher_queries": s["teacher_queries"],
                               "agreement": round(s["agreement"], 4), "kinds": s["kinds"],
                               "agreement_by_kind": rounded(s["agreement_by_kind"]),
                               **{k: s[k] for k in ("abstained", "dropped") if k in s}}
    return out


# --- stored results: the label sets over seeds (the notebook loads them; `python -m course_kit.experiments.rlaif`) ---
RUN_SEEDS = (0, 1, 2)
RUNS_PATH = DATA_DIR / "rlaif_runs"


def build_runs(out_dir: Path, seeds: Sequence[int] = RUN_SEEDS) -> Path:
    """Run the headline (full budget) for each seed and store it as ``out_dir/rlaif_runs/seed<k>.json``.

    ``python -m course_kit.experiments.rlaif`` (about three minutes a seed on two CPU cores); Lab 08 loads
    them with ``load_runs`` for the comparisons over seeds.
    """
    path = Path(out_dir) / "rlaif_runs"
    path.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        figures = headline(seed=seed)
        (path / f"seed{seed}.json").write_text(json.dumps(figures, indent=1) + "\n")
    return path


def load_runs(path: Optional[Path] = None) -> Dict[int, Dict[str, object]]:
    """The stored headlines ``{seed: figures}`` written by ``build_runs`` (default ``data/rlaif_runs``)."""
    path = Path(path) if path is not None else RUNS_PATH
    files = sorted(path.glob("seed*.json"))
    if not files:
        raise FileNotFoundError(f"no stored runs in {path}; build them with `python -m course_kit.experiments.rlaif`")
    return {int(f.stem[4:]): json.loads(f.read_text()) for f in files}


def rerun_human(seed: int, tenth: bool = True, cfg: Optional[LabConfig] = None) -> Dict[str, float]:
    """One stored run regenerated without the teacher: DPO on the human labels (a tenth of them by default)."""
    cfg = cfg or LabConfig()
    with single_thread():
        ref, tok = lm.load_scene_lm()
        pairs = rlaif.unlabeled_pairs(cfg.n_pairs, seed)
        scenes = sw.test_scenes(cfg.n_scenes, seed=seed)
        chosen = pairs[:cfg.tenth] if tenth else pairs
        run = run_dpo(ref, tok, rlaif.dpo_pairs(chosen, [bool(p["human_first"]) for p in chosen]), scenes, cfg.dpo, seed)
        return rounded(run["metrics"], (*METRICS, "coverage", "correction"))


if __name__ == "__main__":  # python -m course_kit.experiments.rlaif: regenerate data/rlaif_runs (Lab 08's stored runs)
    print(f"wrote {build_runs(DATA_DIR)}")
