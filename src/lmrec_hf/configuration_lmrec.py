"""LMRec configuration.

Ships to the Hub as custom code beside each checkpoint, so it imports only transformers.
"""

import hashlib
import math

from transformers import PretrainedConfig

# Table 9 of Shin et al. (model shape and the paper's λ). Training hyper-parameters of the same table
# (batch, lr, weight decay) live with the training arguments, not here.
LMREC_PRESETS = {
    "1.7m": {"n_layer": 4, "n_embd": 32, "n_head": 4, "n_inner": 128, "rec_loss_weight": 1e-2},
    "7m": {"n_layer": 4, "n_embd": 128, "n_head": 4, "n_inner": 512, "rec_loss_weight": 1e-2},
    "20m": {"n_layer": 8, "n_embd": 256, "n_head": 8, "n_inner": 1024, "rec_loss_weight": 8e-3},
    "64m": {"n_layer": 12, "n_embd": 512, "n_head": 8, "n_inner": 2048, "rec_loss_weight": 8e-3},
    "125m": {"n_layer": 12, "n_embd": 768, "n_head": 12, "n_inner": 2048, "rec_loss_weight": 3e-3},
    "210m": {"n_layer": 24, "n_embd": 768, "n_head": 16, "n_inner": 2048, "rec_loss_weight": 3e-3},
}
# How the rec head scores a user against an item (`LMRecConfig.rec_similarity`).
REC_SIMILARITIES = ("dot", "cosine")


class LMRecConfig(PretrainedConfig):
    r"""
    Configuration of an LMRec model: a GPT-2 style decoder with an LM head and two d×d projection heads
    (W_u for users, W_i for items).

    Field names follow [`GPT2Config`], so GPT-2 blocks read this config directly.

    Args:
        vocab_size (`int`, *optional*, defaults to 50258):
            Size of the tokenizer vocabulary (GPT-2's 50,257 plus a padding token, as in the paper).
        n_positions (`int`, *optional*, defaults to 2048):
            Longest sequence, in tokens. Histories are left-truncated to it.
        n_embd (`int`, *optional*, defaults to 768):
            Width d of the hidden states (and of the user and item features).
        n_layer (`int`, *optional*, defaults to 12):
            Number of decoder blocks.
        n_head (`int`, *optional*, defaults to 12):
            Attention heads per block; must divide `n_embd`.
        n_inner (`int`, *optional*, defaults to `None`):
            Width of the feed-forward layer; `None` means `4 * n_embd`.
        activation_function (`str`, *optional*, defaults to `"gelu_pytorch_tanh"`):
            Feed-forward activation. The default is GPT-2's tanh GELU (`"gelu_new"`, which older checkpoints name)
            as one fused torch kernel: the same function to float rounding, about twice as fast on a CPU.
        resid_pdrop, embd_pdrop, attn_pdrop (`float`, *optional*, defaults to 0.1):
            Dropout on residual branches, embeddings and attention weights.
        layer_norm_epsilon (`float`, *optional*, defaults to 1e-5):
            LayerNorm epsilon.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal weight initialisation.
        scale_attn_weights, scale_attn_by_inverse_layer_idx, reorder_and_upcast_attn (`bool`, *optional*):
            As in [`GPT2Config`].
        rec_loss_weight (`float`, *optional*, defaults to 0.01):
            λ in L = L1 + λ·L2. The trainer may pass a scheduled value per step instead.
        projection_dim (`int`, *optional*, defaults to `None`):
            Output width of `user_projection` and `item_projection`; `None` means `n_embd` (the paper's d×d).
        item_max_length (`int`, *optional*, defaults to `None`):
            Tokens an item text is encoded with, cut from the right (the title stays) with the EOS kept. Training
            and evaluation read it from here; `None` means 128 at evaluation and the history length in training.
        bos_token_id, eos_token_id, pad_token_id (`int`, *optional*):
            Special token ids. `eos_token_id` marks where user and item features are read.
        item_id_embeddings (`int`, *optional*, defaults to 0):
            Option, not the paper's model (UniSRec's "transductive" setting): rows of a learned item-id embedding
            added to W_i z_i of the training catalogue's items, one per item. 0 (the default) is the text-only model.
        item_id_catalog (`str`, *optional*):
            Fingerprint of the catalogue those rows belong to (`catalog_fingerprint` of its item texts). Evaluation
            and the catalog add the id embedding only on that catalogue; anything else is scored by text alone.
        rec_similarity (`str`, *optional*, defaults to `"dot"`):
            How a user meets an item. `"dot"` is the paper's <W_u z_u, W_i z_i>. `"cosine"` (an option, as UniSRec
            and Recformer score) scales both projected vectors to length 1 / sqrt(`rec_temperature`), so their dot
            product is cos(W_u z_u, W_i z_i) / `rec_temperature`; every projected vector the model returns (the
            pipeline's `projection="user"` / `"item"` included) is scaled so.
        rec_temperature (`float`, *optional*, defaults to 0.05):
            The temperature of `"cosine"` scores; unused by `"dot"`.

    Example:
    ```python
    >>> from lmrec_hf import LMRecConfig, LMRecForJointModeling
    >>> config = LMRecConfig.from_preset("1.7m", vocab_size=8192, n_positions=512)
    >>> model = LMRecForJointModeling(config)
    ```
    """

    model_type = "lmrec"
    attribute_map = {
        "hidden_size": "n_embd",
        "max_position_embeddings": "n_positions",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
    }

    def __init__(
        self,
        vocab_size=50258,
        n_positions=2048,
        n_embd=768,
        n_layer=12,
        n_head=12,
        n_inner=None,
        activation_function="gelu_pytorch_tanh",
        resid_pdrop=0.1,
        embd_pdrop=0.1,
        attn_pdrop=0.1,
        layer_norm_epsilon=1e-5,
        initializer_range=0.02,
        scale_attn_weights=True,
        scale_attn_by_inverse_layer_idx=False,
        reorder_and_upcast_attn=False,
        rec_loss_weight=0.01,
        projection_dim=None,
        item_max_length=None,
        item_id_embeddings=0,
        item_id_catalog=None,
        rec_similarity="dot",
        rec_temperature=0.05,
        use_cache=True,
        bos_token_id=None,
        eos_token_id=0,
        pad_token_id=1,
        tie_word_embeddings=True,
        **kwargs,
    ):
        sizes = {"vocab_size": vocab_size, "n_positions": n_positions, "n_embd": n_embd, "n_layer": n_layer,
                 "n_head": n_head, "n_inner": n_inner, "projection_dim": projection_dim}
        for name, value in sizes.items():
            if value is None and name in ("n_inner", "projection_dim"):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"LMRecConfig: `{name}` must be a positive integer, got {value!r}.")
        if n_embd % n_head != 0:
            raise ValueError(
                f"LMRecConfig: `n_embd` must be divisible by `n_head` (n_embd % n_head == 0), got n_embd={n_embd} "
                f"and n_head={n_head}. Pick a head count that divides the width, "
                f"e.g. n_head={_divisor(n_embd, n_head)}."
            )
        if not _finite_number(rec_loss_weight) or rec_loss_weight < 0:
            raise ValueError(
                f"LMRecConfig: `rec_loss_weight` (λ) must be a finite number >= 0, got {rec_loss_weight!r}. "
                "Use 0 to train the LM loss alone."
            )
        for name, value in (("resid_pdrop", resid_pdrop), ("embd_pdrop", embd_pdrop), ("attn_pdrop", attn_pdrop)):
            if not _finite_number(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"LMRecConfig: `{name}` must be a probability in [0, 1], got {value!r}.")
        if item_max_length is not None and (not isinstance(item_max_length, int) or item_max_length < 2):
            raise ValueError(
                f"LMRecConfig: `item_max_length` must be None or an integer >= 2 (a token and the EOS), got "
                f"{item_max_length!r}."
            )
        if not isinstance(item_id_embeddings, int) or isinstance(item_id_embeddings, bool) or item_id_embeddings < 0:
            raise ValueError(f"LMRecConfig: `item_id_embeddings` must be 0 (text only) or the number of catalogue "
                             f"items, got {item_id_embeddings!r}.")
        if item_id_embeddings and not item_id_catalog:
            raise ValueError("LMRecConfig: `item_id_embeddings` needs `item_id_catalog`, the fingerprint of the "
                             "catalogue its rows belong to (lmrec_hf.catalog_fingerprint(item_texts)).")
        if rec_similarity not in REC_SIMILARITIES:
            raise ValueError(f"LMRecConfig: `rec_similarity` must be one of {REC_SIMILARITIES}, got "
                             f"{rec_similarity!r}: 'dot' scores <W_u z_u, W_i z_i> (the paper), 'cosine' their "
                             "cosine / rec_temperature.")
        check_rec_temperature(rec_temperature, owner="LMRecConfig: ")
        self.rec_similarity = rec_similarity
        self.rec_temperature = float(rec_temperature)
        self.item_max_length = item_max_length
        self.item_id_embeddings = item_id_embeddings
        self.item_id_catalog = item_id_catalog
        self.vocab_size = vocab_size
        self.n_positions = n_positions
        self.n_embd = n_embd
        self.n_layer = n_layer
        self.n_head = n_head
        self.n_inner = n_inner
        self.activation_function = activation_function
        self.resid_pdrop = resid_pdrop
        self.embd_pdrop = embd_pdrop
        self.attn_pdrop = attn_pdrop
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        self.scale_attn_weights = scale_attn_weights
        self.scale_attn_by_inverse_layer_idx = scale_attn_by_inverse_layer_idx
        self.reorder_and_upcast_attn = reorder_and_upcast_attn
        self.rec_loss_weight = float(rec_loss_weight)
        self.projection_dim = projection_dim if projection_dim is not None else n_embd
        self.use_cache = use_cache
        # GPT-2 blocks read this; LMRec has no cross-attention.
        self.add_cross_attention = False
        super().__init__(
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "LMRecConfig":
        """
        Builds the config of one of the paper's Table 9 sizes, with any field overridden.

        Example:
        ```python
        >>> LMRecConfig.from_preset("125m").n_inner
        2048
        >>> LMRecConfig.from_preset("7m", vocab_size=8192).vocab_size
        8192
        ```
        """
        key = str(name).lower()
        if key not in LMREC_PRESETS:
            raise ValueError(
                f"LMRecConfig.from_preset: unknown preset {name!r}; known presets are "
                f"{', '.join(repr(k) for k in LMREC_PRESETS)}."
            )
        return cls(**{**LMREC_PRESETS[key], **overrides})


def catalog_fingerprint(item_texts: list[str]) -> str:
    """A short fingerprint of a catalogue (its item texts, in row order): which catalogue item-id rows belong to."""
    digest = hashlib.sha256()
    for text in item_texts:
        digest.update(text.encode("utf-8") + b"\x00")
    return f"{len(item_texts)}-{digest.hexdigest()[:16]}"


def check_rec_temperature(temperature, owner: str = "") -> None:
    """Refuses a `rec_temperature` that is not a finite number > 0."""
    if not _finite_number(temperature) or temperature <= 0:
        raise ValueError(f"{owner}`rec_temperature` must be a finite number > 0 (cosine scores are divided by it; "
                         f"0.05 is Recformer's, 0.07 UniSRec's), got {temperature!r}.")


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _divisor(n_embd: int, n_head: int) -> int:
    """The divisor of n_embd closest to the requested head count, for the error message."""
    divisors = [d for d in range(1, n_embd + 1) if n_embd % d == 0]
    return min(divisors, key=lambda d: (abs(d - n_head), d))


__all__ = ["LMRecConfig", "LMREC_PRESETS", "REC_SIMILARITIES", "catalog_fingerprint", "check_rec_temperature"]
