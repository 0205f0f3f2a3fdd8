import pytest

from lmrec_hf import LMREC_PRESETS, LMRecConfig


def test_125m_preset_matches_table_9():
    config = LMRecConfig.from_preset("125m")
    assert (config.n_layer, config.n_embd, config.n_head, config.n_inner) == (12, 768, 12, 2048)
    assert config.rec_loss_weight == pytest.approx(3e-3)
    assert config.projection_dim == 768


@pytest.mark.parametrize("name", list(LMREC_PRESETS))
def test_every_preset_builds_with_overrides(name):
    config = LMRecConfig.from_preset(name, vocab_size=1000, n_positions=128, rec_loss_weight=0.5)
    assert config.vocab_size == 1000 and config.n_positions == 128 and config.rec_loss_weight == 0.5
    assert config.n_embd % config.n_head == 0


def test_preset_name_is_case_insensitive():
    assert LMRecConfig.from_preset("7M").n_embd == 128


def test_gpt2_attribute_names():
    config = LMRecConfig(n_embd=64, n_head=4, n_layer=2, n_positions=32)
    assert config.hidden_size == 64
    assert config.num_attention_heads == 4
    assert config.num_hidden_layers == 2
    assert config.max_position_embeddings == 32


def test_defaults():
    config = LMRecConfig()
    assert config.rec_loss_weight == 0.01
    assert config.projection_dim == config.n_embd
    assert config.model_type == "lmrec"


def test_round_trip(tmp_path):
    config = LMRecConfig.from_preset("7m", vocab_size=500, projection_dim=64)
    config.save_pretrained(tmp_path)
    loaded = LMRecConfig.from_pretrained(tmp_path)
    assert loaded.projection_dim == 64 and loaded.n_inner == 512 and loaded.vocab_size == 500


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown preset '3b'.*'1\.7m', '7m', '20m', '64m', '125m', '210m'"):
        LMRecConfig.from_preset("3b")


def test_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match=r"n_embd % n_head == 0.*n_embd=100 and n_head=3"):
        LMRecConfig(n_embd=100, n_head=3)


@pytest.mark.parametrize("field", ["vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner",
                                   "projection_dim"])
@pytest.mark.parametrize("value", [0, -4])
def test_non_positive_sizes(field, value):
    with pytest.raises(ValueError, match=rf"`{field}` must be a positive integer, got {value}"):
        LMRecConfig(**{field: value})


def test_negative_lambda():
    with pytest.raises(ValueError, match=r"`rec_loss_weight` \(λ\) must be a finite number >= 0, got -0\.1"):
        LMRecConfig(rec_loss_weight=-0.1)


@pytest.mark.parametrize("value", [1, 0, 2.5])
def test_bad_item_max_length(value):
    with pytest.raises(ValueError, match=rf"`item_max_length` must be None or an integer >= 2 .*got {value}"):
        LMRecConfig(item_max_length=value)
