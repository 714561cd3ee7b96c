"""Parity of our Bradley-Terry loss with TRL 1.16's RewardTrainer, a smoke test of the scene reward model, its
offline/no-warning run, and the shipped model's blind spot off its training distribution (Lab 03 relies on it)."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from course_kit.preference.bradley_terry import bradley_terry_loss  # noqa: E402


def _tiny_tokenizer():
    """A 12-word WordLevel tokenizer, independent of the course's scene world."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<eos>", "<unk>", "a", "b", "c", "d", "e", "f", "g", "h", "i"]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>", model_max_length=16)


def test_bt_loss_matches_trl_reward_trainer(tmp_path):
    """TRL computes -logsigmoid(rewards_chosen - rewards_rejected).mean() in RewardTrainer.compute_loss
    (trl/trainer/reward_trainer.py, line 792 in trl 1.16); we call that code on a tiny model and batch."""
    from datasets import Dataset
    from transformers import GPT2Config, GPT2ForSequenceClassification
    from transformers.trainer_callback import PrinterCallback
    from trl import RewardConfig, RewardTrainer

    tok = _tiny_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_positions=16, n_embd=16, n_layer=1, n_head=2, num_labels=1, pad_token_id=0)
    model = GPT2ForSequenceClassification(config)
    chosen = [[3, 4, 5, 1], [6, 7, 1], [8, 9, 10, 11, 1]]
    rejected = [[3, 4, 1], [6, 8, 9, 10, 1], [11, 1]]
    data = Dataset.from_dict({"chosen_ids": chosen, "rejected_ids": rejected})
    args = RewardConfig(output_dir=str(tmp_path), max_steps=1, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True)
    trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    trainer.remove_callback(PrinterCallback)
    batch = trainer.data_collator([data[i] for i in range(3)])
    model.eval()
    trl_loss = trainer.compute_loss(model, dict(batch))

    def rewards(rows):  # score each sequence on its own, no padding at all
        return torch.stack([model(input_ids=torch.tensor([r])).logits[0, 0] for r in rows])

    with torch.no_grad():
        ours = bradley_terry_loss(rewards(chosen), rewards(rejected))
    assert torch.allclose(trl_loss.detach(), ours, atol=1e-6), (float(trl_loss), float(ours))
    assert float(ours) > 0.1  # a random model: the loss is far from 0, so the comparison is not trivial


@pytest.fixture(scope="module")
def scene_reward(tmp_path_factory):
    from course_kit.preference.reward_trl import SceneRewardConfig, build_checkpoint, load_scene_reward_model
    from course_kit.runtime import set_progress

    set_progress(False)
    cfg = SceneRewardConfig(n_train_pairs=256, n_eval_pairs=128, n_steps=15)
    out = tmp_path_factory.mktemp("data")
    path = build_checkpoint(out, cfg)
    set_progress(None)
    return path, load_scene_reward_model(path, device="cpu")


def test_trl_reward_model_learns_and_round_trips(scene_reward):
    import json

    from course_kit.preference.reward_trl import dataset_pair_accuracy, score
    from course_kit.worlds.scene_lm import preference_dataset

    path, (model, tok) = scene_reward
    info = json.loads((path / "training.json").read_text())
    assert info["held_out_accuracy"] > info["held_out_accuracy_before"] + 0.2
    assert info["last_logged_loss"] < info["first_logged_loss"]
    held_out = preference_dataset(128, seed=1000)
    # the saved-and-loaded model reproduces the accuracy measured before saving
    assert dataset_pair_accuracy(model, tok, held_out) == pytest.approx(info["held_out_accuracy"], abs=1e-3)
    r = score(model, tok, held_out["prompt"][:4], held_out["chosen"][:4])
    assert r.shape == (4,) and torch.isfinite(r).all()


def test_score_bad_input(scene_reward):
    from course_kit.preference.reward_trl import load_scene_reward_model, score

    _, (model, tok) = scene_reward
    with pytest.raises(ValueError, match="pair up"):
        score(model, tok, ["a"], ["b", "c"])
    with pytest.raises(FileNotFoundError, match="build-data"):
        load_scene_reward_model("/nonexistent/path")


def test_shipped_checkpoint_matches_the_scene_tokenizer():
    """data/scene_reward_model must read the same token ids as the scene LM that Lab 03's PPO trains."""
    from course_kit.preference.reward_trl import DEFAULT_PATH, load_scene_reward_model
    from course_kit.worlds.scene_lm import build_tokenizer

    assert (DEFAULT_PATH / "config.json").exists(), "data/scene_reward_model is missing: course-kit build-data scene_reward_model"
    model, tok = load_scene_reward_model(device="cpu")
    assert tok.get_vocab() == build_tokenizer().get_vocab()
    assert model.config.num_labels == 1 and model.config.pad_token_id == tok.pad_token_id


@pytest.mark.parametrize("field, value", [("n_steps", 0), ("batch_size", 0), ("n_layer", 0), ("lr", -1.0), ("seed", -1), ("n_head", 3)])
def test_scene_reward_config_validates_in_post_init(field, value):
    from course_kit.preference.reward_trl import SceneRewardConfig

    with pytest.raises(ValueError, match=f"SceneRewardConfig.{field if field != 'n_head' else 'n_embd'}"):
        SceneRewardConfig(**{field: value})


OFFLINE_PROBE = """
import json, os, socket, sys, time, warnings
for name in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "TRANSFORMERS_OFFLINE", "CI"):
    os.environ.pop(name, None)  # as on Colab or a student's laptop
attempts = []
def connect(self, address):
    attempts.append(f"connect {address}")
    raise OSError("network blocked by the test")
def getaddrinfo(host, *args, **kwargs):
    attempts.append(f"resolve {host}")
    raise OSError("network blocked by the test")
socket.socket.connect = connect
socket.getaddrinfo = getaddrinfo
import datasets  # huggingface_hub imported BEFORE course_kit: its telemetry flag is already read
from course_kit.runtime import set_progress
set_progress(False)
from course_kit.preference import reward_trl
from course_kit.worlds.scene_lm import build_tokenizer, preference_dataset
tok = build_tokenizer()
cfg = reward_trl.SceneRewardConfig(n_train_pairs=32, n_eval_pairs=8, n_steps=2, batch_size=8)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    reward_trl.train_with_trl(reward_trl.make_reward_model(tok, cfg), tok, preference_dataset(32, seed=0), cfg)
time.sleep(1.0)  # TRL sends telemetry from a background thread
print(json.dumps({"attempts": attempts, "future": [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]}))
"""


def test_trl_training_opens_no_socket_and_shows_no_future_warning():
    """TRL's trainers send usage telemetry unless HF_HUB_DISABLE_TELEMETRY / HF_HUB_OFFLINE are set; RewardConfig's
    default `gradient_checkpointing` raised a transformers FutureWarning on every run."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", OFFLINE_PROBE], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["attempts"] == [], f"the reward trainer tried to reach the network: {result['attempts']}"
    assert result["future"] == [], result["future"]


def test_shipped_model_is_blind_off_its_training_distribution():
    """Lab 02 shows, and Lab 03's policy exploits: right on contrasts like its pairs, at chance on others."""
    from course_kit.experiments.reward import off_distribution_accuracy
    from course_kit.preference.reward_trl import load_scene_reward_model

    model, tok = load_scene_reward_model(device="cpu")
    probe = off_distribution_accuracy(model, tok, n=60)
    assert probe["other object"] > 0.9 and probe["other room's object"] > 0.9  # an extra object: like its pairs
    assert abs(probe["wrong room"] - 0.5) < 0.2 and abs(probe["word salad"] - 0.5) < 0.2  # never shown: chance


def test_untrained_accuracy_is_symmetric_under_a_flipped_head():
    from course_kit.experiments.reward import untrained_accuracy

    out = untrained_accuracy([0, 1], n_eval_pairs=64)
    assert out["all"].shape == (2,)
    assert np_allclose(out["all"] + out["all_negated_head"], 1.0)  # a -> 1 - a: the mean over inits is 1/2


def np_allclose(x, value):
    return bool(abs(x - value).max() < 1e-6)
