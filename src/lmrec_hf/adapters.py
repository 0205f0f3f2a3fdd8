"""
LoRA adapters on a pretrained LMRec encoder, through peft: adapters on the trunk's attention (and optionally its MLP)
plus new W_u, W_i heads trained in full; the adapter saved alone (a few MB) with the base it needs named and
fingerprinted; loading it on that base (a folder or a Hub repo id) and refusing any other; and the merged export that
needs no peft.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .checks import check_choice

# Which GPT-2 block layers get LoRA matrices (Conv1D layers, hence `fan_in_fan_out`).
LORA_TARGETS = {
    "attention": r".*\.h\.\d+\.attn\.(c_attn|c_proj)",
    "attention+mlp": r".*\.h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)",
}
HEADS = ["user_projection", "item_projection"]
ADAPTER_FACTS = "lmrec_adapter.json"


def base_fingerprint(model) -> str:
    """A sha256 over the trunk's weights (names, shapes and values): two bases share it only if their trunks are the
    same. LoRA matrices and the heads are left out, so a merged or adapted model is not its own base."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        name = name.removeprefix("base_model.model.")
        if "lora_" in name or "modules_to_save" in name or not name.removeprefix("transformer.").startswith(
                ("wte.", "wpe.", "h.", "ln_f.")):
            continue
        name = name.replace(".base_layer.", ".")
        digest.update(f"{name.removeprefix('transformer.')}{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to(torch.float32).cpu().numpy().tobytes())
    return digest.hexdigest()


def add_lora(model, r: int = 8, alpha: float = 16.0, dropout: float = 0.0, targets: str = "attention"):
    """
    The peft model to finetune: LoRA matrices of rank `r` on the `targets` layers of a frozen trunk, and new user and
    item heads (freshly initialised, trained in full and saved with the adapter). The LM head stays frozen (tied to
    the frozen token embeddings).

    Example:
    ```python
    >>> peft_model = add_lora(LMRecForJointModeling.from_pretrained("outputs/pretrain-cpu/model"))
    >>> peft_model.print_trainable_parameters()
    ```
    """
    from peft import LoraConfig, get_peft_model

    check_choice("lora_targets", targets, list(LORA_TARGETS), note="the trunk's attention layers, or attention and "
                 "MLP")
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"LoRA rank `lora_r` must be a positive integer, got {r!r}; 8 is a common choice.")
    for head in HEADS:  # the target's heads start afresh, as the probe's do
        module = getattr(model, head)
        torch.nn.init.normal_(module.weight, mean=0.0, std=model.config.initializer_range)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=LORA_TARGETS[targets],
                        fan_in_fan_out=True, modules_to_save=list(HEADS), bias="none")
    return get_peft_model(model, config)


def save_adapter(peft_model, output_dir: str | Path, base_model: str, base_hash: str) -> Path:
    """
    Saves the adapter alone (LoRA matrices + the new heads) with `base_model` named in adapter_config.json and its
    trunk fingerprint in lmrec_adapter.json. The config's auto mapping points at transformers' AutoModelForCausalLM,
    so `peft.AutoPeftModel.from_pretrained(adapter, trust_remote_code=True)` rebuilds base + adapter by itself.
    """
    output_dir = Path(output_dir)
    peft_model.save_pretrained(str(output_dir))
    config_path = output_dir / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(base_model)
    config["auto_mapping"] = {"base_model_class": "AutoModelForCausalLM", "parent_library": "transformers"}
    config_path.write_text(json.dumps(config, indent=2))
    (output_dir / ADAPTER_FACTS).write_text(json.dumps({"base_model": str(base_model), "base_fingerprint": base_hash},
                                                       indent=2))
    return output_dir


def _adapter_file(adapter: str | Path, name: str, revision: str | None = None) -> Path:
    if Path(adapter).is_dir():
        path = Path(adapter) / name
        if not path.exists():
            raise ValueError(f"{adapter} is not an LMRec adapter folder: it has no {name}. Pass the folder "
                             "`lmrec-hf finetune --lora` saved as OUTPUT_DIR/adapter, or its Hub repo id.")
        return path
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(str(adapter), name, revision=revision))


def load_adapter(adapter: str | Path, base=None, revision: str | None = None, trust_remote_code: bool = True):
    """
    An adapter (folder or Hub repo id) on its base: the base named in its config unless `base` (a folder, repo id or
    loaded model) is given. A base whose trunk differs from the one the adapter was trained on is refused with a
    ValueError naming both, before the adapter is applied.

    Example:
    ```python
    >>> model = load_adapter("org/lmrec-7m-scientific-lora")  # the base comes from the adapter's config
    >>> model.embed(input_ids, projection="user")
    ```
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    facts = json.loads(_adapter_file(adapter, ADAPTER_FACTS, revision).read_text())
    if base is None:
        base = facts["base_model"]
    base_name = base if isinstance(base, (str, Path)) else getattr(base.config, "_name_or_path", type(base).__name__)
    if isinstance(base, (str, Path)):
        if Path(base).is_dir():
            from .transfer import check_encoder_checkpoint

            check_encoder_checkpoint(base)
        base = AutoModelForCausalLM.from_pretrained(str(base), trust_remote_code=trust_remote_code)
    found = base_fingerprint(base)
    if found != facts["base_fingerprint"]:
        raise ValueError(f"The adapter {adapter} was trained on the base {facts['base_model']!r} (trunk fingerprint "
                         f"{facts['base_fingerprint'][:12]}), but {base_name!s} has the fingerprint {found[:12]}: a "
                         "different encoder. Load the adapter on the base it names, or train an adapter for this one.")
    return PeftModel.from_pretrained(base, str(adapter), revision=revision)


def merged_model(peft_model):
    """The base with the LoRA matrices folded into its weights and the new heads in place: a plain
    `LMRecForJointModeling` that saves and loads without peft."""
    return peft_model.merge_and_unload()
