"""
Publishing against the Hub test double (tests/hub_double.py): `lmrec-hf push`, then loading by repo id in fresh
processes with an empty HF_HOME, as a user would. Nothing here reaches the network.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants

from lmrec_hf.catalog import build_catalog, write_catalog
from lmrec_hf.data import load_unisrec
from lmrec_hf.hub import HubPushError, prepare_push, push_to_hub
from lmrec_hf.model_card import LMRecModelCardData

from .conftest import HISTORIES, ITEMS
from .hub_double import HubDouble
from .test_model_card import _record
from .toy_data import write_unisrec

LOAD_SCRIPT = """
import json, sys
sys.modules["lmrec_hf"] = None  # the user's process has no lmrec_hf
from transformers import AutoModel, AutoTokenizer, pipeline
repo, revision, histories = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
tokenizer = AutoTokenizer.from_pretrained(repo, revision=revision, trust_remote_code=True)
model = AutoModel.from_pretrained(repo, revision=revision, trust_remote_code=True)
extractor = pipeline("feature-extraction", model=repo, revision=revision, trust_remote_code=True)
print(json.dumps({"trunk": type(model).__name__, "eos": tokenizer.eos_token,
                  "features": [extractor([h], projection="user")[0] for h in histories]}))
"""


@pytest.fixture(scope="module")
def hub():
    with HubDouble() as double:
        yield double


@pytest.fixture
def checkpoint(model, tokenizer, tmp_path):
    """A saved checkpoint folder with its catalog, as `lmrec-hf train` leaves it."""
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    data = load_unisrec(write_unisrec(tmp_path / "toy", texts={i: ITEMS[i] for i in range(8)}))
    write_catalog(folder, build_catalog(model, tokenizer, data))
    card_data = LMRecModelCardData(model_name="lmrec-test")
    card_data.add_evaluation(_record())
    card_data.save(folder, config=model.config)
    return folder


def _env(hub, tmp_path, **extra) -> dict:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "HF_HOME": str(tmp_path / "hf_home"),
           "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    return {**env, **extra}


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=300)


def _push(folder, repo_id, env, *extra) -> subprocess.CompletedProcess:
    return _run(["-m", "lmrec_hf.cli", "push", str(folder), "--repo-id", repo_id, *extra], env)


def _load(repo_id, env, revision="main") -> dict:
    result = _run(["-c", textwrap.dedent(LOAD_SCRIPT), repo_id, revision, json.dumps(HISTORIES)], env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _local_features(folder) -> torch.Tensor:
    from transformers import pipeline

    extractor = pipeline("feature-extraction", model=str(folder), trust_remote_code=True)
    return torch.tensor([extractor([h], projection="user")[0] for h in HISTORIES])


def _tree_digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_push_then_load_by_repo_id_in_a_fresh_process(hub, checkpoint, tmp_path):
    before = _tree_digest(checkpoint)
    env = _env(hub, tmp_path)
    pushed = _push(checkpoint, "org/lmrec-test", env)
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    assert "Pushed" in pushed.stdout and "org/lmrec-test" in pushed.stdout
    assert _tree_digest(checkpoint) == before  # pushing never writes to the folder

    files = set(hub.repos["org/lmrec-test"]["commits"][hub.repos["org/lmrec-test"]["branches"]["main"]]["files"])
    assert {"model.safetensors", "config.json", "tokenizer.json", "modeling_lmrec.py", "configuration_lmrec.py",
            "pipeline_lmrec.py", "formatting_lmrec.py", "README.md", "catalog/items.json",
            "catalog/item_embeddings.safetensors", "catalog/examples.json"} <= files
    assert "training_args.bin" not in files

    loaded = _load("org/lmrec-test", env)
    assert loaded["trunk"] == "LMRecModel" and loaded["eos"] == "<|endoftext|>"
    torch.testing.assert_close(torch.tensor(loaded["features"]), _local_features(checkpoint), atol=1e-5, rtol=0)


def test_pinned_revision_loads_the_old_weights_after_a_second_push(hub, checkpoint, tmp_path, model, tokenizer):
    env = _env(hub, tmp_path)
    assert _push(checkpoint, "org/lmrec-pinned", env).returncode == 0
    first_commit = hub.repos["org/lmrec-pinned"]["branches"]["main"]
    first = _local_features(checkpoint)

    with torch.no_grad():
        model.user_projection.weight.mul_(-2.0)  # a visibly different second version
    second_folder = tmp_path / "second"
    model.save_pretrained(second_folder)
    tokenizer.save_pretrained(second_folder)
    pushed = _push(second_folder, "org/lmrec-pinned", env, "--no-catalog")
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    assert hub.repos["org/lmrec-pinned"]["branches"]["main"] != first_commit

    pinned = torch.tensor(_load("org/lmrec-pinned", env, revision=first_commit)["features"])
    latest = torch.tensor(_load("org/lmrec-pinned", env)["features"])
    torch.testing.assert_close(pinned, first, atol=1e-5, rtol=0)
    torch.testing.assert_close(latest, first * -2.0, atol=1e-4, rtol=1e-4)


def test_offline_mode_loads_from_the_cache(hub, checkpoint, tmp_path):
    env = _env(hub, tmp_path)
    assert _push(checkpoint, "org/lmrec-offline", env).returncode == 0
    online = _load("org/lmrec-offline", env)
    # Offline, and with HF_ENDPOINT pointing at a port nothing listens on: only the cache can answer.
    offline = _load("org/lmrec-offline", {**env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert offline == online


def test_missing_repo_gives_a_clear_error(hub, tmp_path):
    result = _run(["-c", "from transformers import AutoModel\n"
                         "AutoModel.from_pretrained('org/no-such-model', trust_remote_code=True)"],
                  _env(hub, tmp_path))
    assert result.returncode != 0
    assert "org/no-such-model is not a local folder and is not a valid model identifier" in result.stderr
    assert "GET /api/models/org/no-such-model" in hub.requests or \
        any(r.startswith("HEAD /org/no-such-model/resolve/") for r in hub.requests)


def test_branch_revision_push(hub, checkpoint, tmp_path):
    env = _env(hub, tmp_path)
    assert _push(checkpoint, "org/lmrec-branch", env).returncode == 0
    pushed = _push(checkpoint, "org/lmrec-branch", env, "--revision", "v2")
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    assert "revision='v2'" in pushed.stdout
    assert set(hub.repos["org/lmrec-branch"]["branches"]) == {"main", "v2"}
    assert _load("org/lmrec-branch", env, revision="v2")["trunk"] == "LMRecModel"


@pytest.mark.parametrize("case, message", [
    ("no token", "No Hugging Face token was found.*HF_TOKEN.*hf auth login"),
    ("wrong token", "refused the token \\(401\\).*write access"),
    ("no network", "Could not reach the Hub at http://127.0.0.1:9 .*HF_ENDPOINT.*unchanged"),
    ("offline", "HF_HUB_OFFLINE is set.*Unset HF_HUB_OFFLINE"),
])
def test_push_errors_name_the_fix_and_leave_the_folder(hub, checkpoint, tmp_path, case, message):
    env = _env(hub, tmp_path)
    if case == "no token":
        env.pop("HF_TOKEN")
    elif case == "wrong token":
        env["HF_TOKEN"] = "hf_wrong"
    elif case == "no network":
        env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    else:
        env["HF_HUB_OFFLINE"] = "1"
    before = _tree_digest(checkpoint)
    result = _push(checkpoint, "org/lmrec-errors", env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr.replace("\n", " ")), result.stderr
    assert _tree_digest(checkpoint) == before


def test_incomplete_folder_and_missing_catalog_are_refused(checkpoint, tmp_path):
    (checkpoint / "catalog" / "items.json").unlink()
    with pytest.raises(HubPushError, match="has no catalog/.*--data.*--no-catalog"):
        prepare_push(checkpoint, "org/x")
    assert "catalog/items.json" not in prepare_push(checkpoint, "org/x", with_catalog=False)
    (checkpoint / "tokenizer.json").unlink()
    with pytest.raises(HubPushError, match=r"lacks \['tokenizer.json'\]"):
        prepare_push(checkpoint, "org/x", with_catalog=False)
    with pytest.raises(HubPushError, match="must look like ORG/NAME"):
        prepare_push(checkpoint, "just-a-name", with_catalog=False)
    with pytest.raises(HubPushError, match="does not exist"):
        push_to_hub(tmp_path / "nowhere", "org/x", token="t")


def test_pushed_card_passes_the_hub_validation(hub, checkpoint, monkeypatch):
    from huggingface_hub import ModelCard

    uploads = prepare_push(checkpoint, "org/lmrec-card")
    card = ModelCard(uploads["README.md"].decode())
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    assert "config: full-ranking" in str(card)
    card.validate()  # huggingface_hub's own validation call, answered by the double
    broken = ModelCard(str(card).replace("value: ", "value: not-a-number-", 1))
    with pytest.raises(ValueError, match="numeric value"):
        broken.validate()


def test_publish_script_pushes_what_exists_and_says_how_to_train_the_rest(space_checkpoint, tmp_path, capsys):
    import importlib.util

    import yaml

    spec = importlib.util.spec_from_file_location("publish", Path(__file__).parents[1] / "hub" / "publish.py")
    publish = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publish)
    listing = tmp_path / "checkpoints.yaml"
    listing.write_text(yaml.safe_dump({"organization": "org", "checkpoints": [
        {"name": "trained", "recipe": "r.yaml", "model_dir": str(space_checkpoint)},
        {"name": "lmrec-125m", "recipe": "training/configs/scientific-125m-gpu.yaml", "model_dir": "nowhere",
         "gpu": True}]}))
    assert publish.main(["--list", str(listing), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would push org/trained:" in out and "catalog/item_embeddings.safetensors" in out
    assert "skip org/lmrec-125m: nowhere does not exist; train it on a GPU machine with `lmrec-hf train " \
           "training/configs/scientific-125m-gpu.yaml`" in out


def test_the_publish_list_names_lmrec_125m_with_a_gpu_recipe():
    import yaml

    listing = yaml.safe_load((Path(__file__).parents[1] / "hub" / "checkpoints.yaml").read_text())
    entry = {e["name"]: e for e in listing["checkpoints"]}["lmrec-125m"]
    recipe = yaml.safe_load((Path(__file__).parents[1] / entry["recipe"]).read_text())
    assert entry["gpu"] and recipe["preset"] == "125m" and recipe["bf16"] is True


def test_a_pretrained_encoder_pushes_validates_and_loads_by_repo_id(hub, tmp_path, monkeypatch):
    """LMRec^TL end to end on toy corpora: multi-task pretraining with a held-out target, then the pushed encoder's
    card validates (corpora, held-out domain, zero-shot entries in model-index) and a fresh process with no lmrec_hf
    gets the same features by repo id."""
    from huggingface_hub import ModelCard

    from lmrec_hf.arguments import load_train_config
    from lmrec_hf.runner import train_from_args

    a = write_unisrec(tmp_path / "a", name="Alpha", texts={i: ITEMS[i] for i in range(8)})
    b = write_unisrec(tmp_path / "b", name="Beta", texts={i: f"beta thing {i}" for i in range(8)})
    target = write_unisrec(tmp_path / "d", name="Delta", texts={i: f"delta widget {i}" for i in range(8)})
    overrides = {"rec_tasks": [str(a)], "agnostic": [str(b)], "lm_probabilities": [0.7, 0.3],
                 "holdout": [str(target)], "preset": "1.7m", "vocab_size": 300, "max_steps": 2, "lm_batch_size": 2,
                 "rec_batch_size": 2, "max_length": 64, "output_dir": str(tmp_path / "run"), "use_cpu": True,
                 "eval_strategy": "no", "save_strategy": "no", "disable_tqdm": True, "eval_split": "",
                 "report_to": "none", "tokenizer_texts": 50}
    train_from_args(*load_train_config(None, overrides))
    folder = tmp_path / "run" / "model"

    card = ModelCard(prepare_push(folder, "org/lmrec-tl-test")["README.md"].decode())
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    card.validate()
    text = str(card)
    assert "| Beta | LM only |" in text and "Held out of training and of the tokenizer: d" in text
    assert "config: full-ranking, item-to-item" in text and "name: Delta" in text
    assert 'pipeline("feature-extraction", model="org/lmrec-tl-test"' in text  # the lines a user runs

    env = _env(hub, tmp_path)
    pushed = _push(folder, "org/lmrec-tl-test", env)
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    loaded = _load("org/lmrec-tl-test", env)
    torch.testing.assert_close(torch.tensor(loaded["features"]), _local_features(folder), atol=1e-5, rtol=0)


ADAPTER_LOAD_SCRIPT = """
import json, sys
sys.modules["lmrec_hf"] = None  # the user's process has no lmrec_hf, only transformers and peft
import torch
from peft import AutoPeftModel
from transformers import AutoTokenizer
repo, histories = sys.argv[1], json.loads(sys.argv[2])
model = AutoPeftModel.from_pretrained(repo, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(repo)
texts = [" \u2192 ".join(h) for h in histories]
enc = tokenizer(texts, padding=True, return_tensors="pt")
with torch.no_grad():
    features = model.embed(enc["input_ids"], enc["attention_mask"], projection="user")
print(json.dumps({"base": model.peft_config["default"].base_model_name_or_path, "features": features.tolist()}))
"""


def test_an_adapter_pushes_to_its_own_repo_and_loads_on_its_base_by_repo_id(hub, checkpoint, tmp_path):
    """LoRA (issue 23): the adapter alone goes to its own repo, its config naming the base's repo id; a fresh process
    with peft and no lmrec_hf rebuilds base + adapter from the adapter's repo id. A local base is refused."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmrec_hf import format_history
    from lmrec_hf.adapters import add_lora, base_fingerprint, merged_model, save_adapter

    env = _env(hub, tmp_path)
    assert _push(checkpoint, "org/lmrec-base", env).returncode == 0
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    fingerprint = base_fingerprint(model)
    adapted = add_lora(model, r=2)
    torch.manual_seed(0)
    with torch.no_grad():  # stands in for training: LoRA's B starts at zero
        for name, parameter in adapted.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.1)
    folder = save_adapter(adapted, tmp_path / "adapter", str(checkpoint), fingerprint)
    AutoTokenizer.from_pretrained(checkpoint).save_pretrained(folder)

    refused = _push(folder, "org/lmrec-lora", env)
    assert refused.returncode == 1 and "a local path (or not ORG/NAME)" in refused.stderr
    assert "--base-repo-id" in refused.stderr
    pushed = _push(folder, "org/lmrec-lora", env, "--base-repo-id", "org/lmrec-base")
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    files = set(hub.repos["org/lmrec-lora"]["commits"][hub.repos["org/lmrec-lora"]["branches"]["main"]]["files"])
    assert {"adapter_config.json", "adapter_model.safetensors", "lmrec_adapter.json", "tokenizer.json"} <= files
    assert "model.safetensors" not in files
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == str(checkpoint)

    result = _run(["-c", textwrap.dedent(ADAPTER_LOAD_SCRIPT), "org/lmrec-lora", json.dumps(HISTORIES)], env)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["base"] == "org/lmrec-base"
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    enc = tokenizer([format_history(h) for h in HISTORIES], padding=True, return_tensors="pt")
    with torch.no_grad():
        local = merged_model(adapted).eval().embed(enc["input_ids"], enc["attention_mask"], projection="user")
    torch.testing.assert_close(torch.tensor(loaded["features"]), local, atol=1e-5, rtol=1e-4)
