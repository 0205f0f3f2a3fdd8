"""Auto-class registration, and loading a saved checkpoint in a process that cannot import lmrec_hf."""

import json
import os
import subprocess
import sys
import textwrap

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from lmrec_hf import LMRecConfig, LMRecForJointModeling, LMRecModel, format_history

from .conftest import HISTORIES, ITEMS

CODE_FILES = {"configuration_lmrec.py", "modeling_lmrec.py", "pipeline_lmrec.py", "formatting_lmrec.py"}


def _run_without_lmrec_hf(script: str, tmp_path) -> dict:
    """Runs `script` in a fresh interpreter where `import lmrec_hf` fails; the script prints one JSON line."""
    prelude = 'import sys\nsys.modules["lmrec_hf"] = None  # importing lmrec_hf now raises ImportError\n'
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(script)],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_auto_classes_resolve_after_import(tmp_path):
    config = LMRecConfig.from_preset("1.7m", vocab_size=300, n_positions=32)
    assert isinstance(AutoModel.from_config(config), LMRecModel)
    assert isinstance(AutoModelForCausalLM.from_config(config), LMRecForJointModeling)
    config.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), LMRecConfig)


def test_save_writes_code_auto_map_and_safetensors_only(model, tokenizer, tmp_path):
    model.save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert CODE_FILES <= files
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_lmrec.LMRecConfig",
        "AutoModel": "modeling_lmrec.LMRecModel",
        "AutoModelForCausalLM": "modeling_lmrec.LMRecForJointModeling",
    }
    assert config["custom_pipelines"]["feature-extraction"] == {
        "impl": "pipeline_lmrec.LMRecFeatureExtractionPipeline", "pt": ["AutoModelForCausalLM"]}


def test_round_trip_in_process(model, tmp_path):
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, LMRecForJointModeling)
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    trunk = AutoModel.from_pretrained(tmp_path)
    assert isinstance(trunk, LMRecModel)
    assert torch.equal(trunk.wte.weight, model.transformer.wte.weight)


def test_fresh_process_reproduces_features(model, tokenizer, tmp_path):
    checkpoint = tmp_path / "ckpt"
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    texts = [format_history(h) for h in HISTORIES] + ITEMS
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model.embed(enc.input_ids, enc.attention_mask)
        expected_user = model.embed(enc.input_ids, enc.attention_mask, projection="user")

    got = _run_without_lmrec_hf(f"""
        import json, torch
        from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer, pipeline
        try:
            import lmrec_hf
            raise SystemExit("lmrec_hf should not be importable here")
        except ImportError:
            pass
        path = {str(checkpoint)!r}
        texts = {texts!r}
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
        trunk = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
        enc = tok(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            auto = trunk(**enc).pooler_output.tolist()
        joint = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)
        fe = pipeline("feature-extraction", model=path, trust_remote_code=True)
        print(json.dumps({{
            "trunk_class": type(trunk).__name__, "joint_class": type(joint).__name__,
            "pipeline_class": type(fe).__name__, "auto": auto,
            "pipe": fe(texts), "pipe_batched": fe(texts, batch_size=4),
            "pipe_user": fe(texts, projection="user"),
        }}))
    """, tmp_path)
    assert (got["trunk_class"], got["joint_class"], got["pipeline_class"]) == (
        "LMRecModel", "LMRecForJointModeling", "LMRecFeatureExtractionPipeline")
    for key in ("auto", "pipe", "pipe_batched"):
        assert torch.allclose(torch.tensor(got[key]), expected, atol=1e-5), key
    assert torch.allclose(torch.tensor(got["pipe_user"]), expected_user, atol=1e-5)


def test_checkpoint_saved_from_remote_code_stays_self_contained(model, tokenizer, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    model.save_pretrained(first)
    tokenizer.save_pretrained(first)
    got = _run_without_lmrec_hf(f"""
        import json, os
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained({str(first)!r}, trust_remote_code=True)
        model.save_pretrained({str(second)!r})
        print(json.dumps(sorted(os.listdir({str(second)!r}))))
    """, tmp_path)
    assert CODE_FILES <= set(got)


def test_automodel_loads_the_trunk_of_a_joint_checkpoint_without_a_load_report(tmp_path, model):
    model.save_pretrained(tmp_path / "joint")
    # transformers prints its load-report table exactly when it finds such keys (utils/loading_report.py)
    trunk, info = AutoModel.from_pretrained(tmp_path / "joint", output_loading_info=True)
    assert isinstance(trunk, LMRecModel)
    assert info["unexpected_keys"] == set() and info["missing_keys"] == set()
    # the three lines of docs/core.md: the joint model has the projections, and its trunk is what AutoModel loads
    joint = AutoModelForCausalLM.from_pretrained(tmp_path / "joint")
    ids = torch.tensor([[5, 6, model.config.eos_token_id]])
    assert torch.allclose(joint.embed(ids, projection="user"), model.embed(ids, projection="user"), atol=1e-6)
    assert torch.allclose(joint.base_model(input_ids=ids).pooler_output, trunk(input_ids=ids).pooler_output)
