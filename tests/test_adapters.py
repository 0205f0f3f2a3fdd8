"""LoRA adapters through peft (issue 23): the adapter saved alone with its base fingerprinted, loaded on that base
and refused on another, and the merged export."""

import pytest
import torch

from lmrec_hf.adapters import add_lora, base_fingerprint, load_adapter
from lmrec_hf.arguments import load_train_config
from lmrec_hf.runner import train_from_args

from .conftest import HISTORIES
from .test_transfer import _TINY
from .toy_data import write_unisrec


def test_add_lora_checks_its_rank_and_targets_and_the_fingerprint_ignores_adapters_and_heads(model):
    with pytest.raises(ValueError, match="LoRA rank `lora_r` must be a positive integer, got 0"):
        add_lora(model, r=0)
    with pytest.raises(ValueError, match=r"`lora_targets` must be one of \['attention', 'attention\+mlp'\], got 'all'"):
        add_lora(model, r=2, targets="all")
    before = base_fingerprint(model)
    adapted = add_lora(model, r=2, targets="attention+mlp")  # new heads: the fingerprint covers the trunk only
    assert base_fingerprint(adapted) == before
    names = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert any("mlp.c_fc.lora_A" in n for n in names) and any("attn.c_attn.lora_B" in n for n in names)
    assert not any("wte" in n or "ln_f" in n for n in names)  # the trunk (and the tied LM head) stay frozen
    with torch.no_grad():
        model.transformer.wte.weight.add_(1.0)
    assert base_fingerprint(model) != before


def test_lora_saves_the_adapter_alone_merges_and_refuses_another_base(tmp_path, model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = write_unisrec(tmp_path / "toy-data")
    train_from_args(*load_train_config(None, {**_TINY, "data": str(folder), "output_dir": str(tmp_path / "base")}))
    base_dir = tmp_path / "base" / "model"
    base_weights = (base_dir / "model.safetensors").read_bytes()
    result = train_from_args(*load_train_config(None, {**_TINY, "data": str(folder), "init_from": str(base_dir),
                                                       "lora_r": 2, "output_dir": str(tmp_path / "lora")}))
    assert result["method"] == "lora-r2-attention" and "recall@10" in result["lmrec"]
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    n_layer, d = base.config.n_layer, base.config.n_embd
    # Rank-2 A and B on each block's c_attn (d -> 3d) and attn.c_proj (d -> d), plus the two new d x p heads.
    lora = n_layer * 2 * ((d + 3 * d) + (d + d))
    assert result["trainable_parameters"] == lora + 2 * d * base.config.projection_dim
    adapter = tmp_path / "lora" / "adapter"
    assert (adapter / "adapter_model.safetensors").stat().st_size < 0.5 * len(base_weights)
    assert (base_dir / "model.safetensors").read_bytes() == base_weights  # the base is never written

    tokenizer = AutoTokenizer.from_pretrained(adapter)
    from lmrec_hf import format_history

    enc = tokenizer([format_history(h) for h in HISTORIES], padding=True, truncation=True, max_length=64,
                    return_tensors="pt")
    adapted = load_adapter(adapter).eval()  # the base comes from the adapter's config
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "lora" / "model").eval()
    with torch.no_grad():
        expected = merged.embed(enc.input_ids, enc.attention_mask, projection="user")
        torch.testing.assert_close(adapted.embed(enc.input_ids, enc.attention_mask, projection="user"), expected,
                                   atol=1e-5, rtol=1e-4)
        assert not torch.allclose(base.embed(enc.input_ids, enc.attention_mask, projection="user"), expected)
    assert base_fingerprint(adapted) == base_fingerprint(base) != base_fingerprint(merged)

    other = AutoModelForCausalLM.from_pretrained(base_dir)
    with torch.no_grad():
        other.transformer.h[0].attn.c_attn.weight.add_(0.01)
    with pytest.raises(ValueError, match=r"was trained on the base .* a different encoder"):
        load_adapter(adapter, base=other)
