"""LMRec: a GPT-2 style decoder with an LM head and user / item projection heads on one trunk.

Ships to the Hub as custom code beside each checkpoint, so it imports only torch, transformers and its siblings.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.models.gpt2.modeling_gpt2 import GPT2MLP, GPT2Attention, GPT2Block
from transformers.pytorch_utils import Conv1D
from transformers.utils import ModelOutput

from .configuration_lmrec import LMRecConfig

# Imported so that `save_pretrained` copies the pipeline (and the text format it needs) beside the weights:
# transformers copies a custom model file together with its relative imports, and the checkpoint's
# `custom_pipelines` points "feature-extraction" at this class.
from .pipeline_lmrec import LMRecFeatureExtractionPipeline  # noqa: F401

PIPELINE_IMPL = "pipeline_lmrec.LMRecFeatureExtractionPipeline"


@dataclass
class LMRecModelOutput(ModelOutput):
    """
    Output of [`LMRecModel`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, sequence_length, n_embd)`):
            Last-layer hidden states.
        pooler_output (`torch.FloatTensor` of shape `(batch_size, n_embd)`):
            The last-layer vector at each row's final EOS token: z_u for a history, z_i for an item.
        cache (`Cache`, *optional*):
            Key / value cache, when `use_cache=True`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    cache: Cache | None = None


@dataclass
class LMRecJointOutput(ModelOutput):
    """
    Output of [`LMRecForJointModeling`]. Each loss is present only when its inputs and labels were given.

    Args:
        loss (`torch.FloatTensor`, *optional*):
            `lm_loss + λ * rec_loss` when both are computed, otherwise whichever one was.
        lm_loss (`torch.FloatTensor`, *optional*):
            L1, next-token cross-entropy over `labels` (positions set to -100 are ignored).
        rec_loss (`torch.FloatTensor`, *optional*):
            L2, binary cross-entropy of sigmoid(<W_u z_u, W_i z_i>) against `rec_labels`.
        logits (`torch.FloatTensor` of shape `(batch_size, sequence_length, vocab_size)`, *optional*):
            LM logits for `input_ids`.
        rec_logits (`torch.FloatTensor`, *optional*):
            Scores <W_u z_u, W_i z_i> in the shape `rec_labels` ask for (see `score_pairs`): `(B,)` for pairs,
            `(B, N)` for N items per user, `(B, M)` for every user against every item (also when no `rec_labels`
            are given), `(B, P, M)` for prefix features.
        user_embeds (`torch.FloatTensor` of shape `(B, projection_dim)` or `(B, P, projection_dim)`, *optional*):
            W_u z_u, at the final EOS or at each of `user_positions`.
        item_embeds (`torch.FloatTensor` of shape `(M, projection_dim)`, *optional*): W_i z_i.
        user_hidden_states (`torch.FloatTensor` of shape `(B, T, n_embd)`, *optional*):
            Last-layer states of the user rows, returned with them (no extra cost): a training objective can put
            L1 on the histories it read the user features from (`lmrec_hf.losses`).
    """

    loss: torch.FloatTensor | None = None
    lm_loss: torch.FloatTensor | None = None
    rec_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    rec_logits: torch.FloatTensor | None = None
    user_embeds: torch.FloatTensor | None = None
    item_embeds: torch.FloatTensor | None = None
    user_hidden_states: torch.FloatTensor | None = None


def pool_eos(
    last_hidden_state: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    eos_token_id: int,
    name: str = "input_ids",
) -> torch.Tensor:
    """The hidden vector at each row's final (unmasked) EOS token, whatever the padding side."""
    is_eos = input_ids == eos_token_id
    if attention_mask is not None:
        is_eos = is_eos & attention_mask.bool()
    has_eos = is_eos.any(dim=-1)
    if not bool(has_eos.all()):
        rows = torch.nonzero(~has_eos).flatten().tolist()
        raise ValueError(
            f"Every row of `{name}` must contain the EOS token (id {eos_token_id}) where LMRec reads its feature, "
            f"but rows {rows[:10]} have none. Encode texts with the LMRec tokenizer, whose post-processor "
            "appends EOS (and keeps it when truncating from the left)."
        )
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device)
    last = torch.where(is_eos, positions, -1).amax(dim=-1)  # (B,)
    return last_hidden_state[torch.arange(input_ids.shape[0], device=input_ids.device), last]  # (B, d)


class LMRecPreTrainedModel(PreTrainedModel):
    config_class = LMRecConfig
    config: LMRecConfig
    base_model_prefix = "transformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GPT2Block"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    _keys_to_ignore_on_load_unexpected = ["attn.bias"]
    # The auto class this model is loaded with by the feature-extraction pipeline.
    _pipeline_auto_class = "AutoModel"

    def __init__(self, config: LMRecConfig, *inputs, **kwargs):
        super().__init__(config, *inputs, **kwargs)
        # A process that never imported lmrec_hf finds the trunk, the joint model and the pipeline through these.
        config.auto_map = {
            **(getattr(config, "auto_map", None) or {}),
            "AutoConfig": "configuration_lmrec.LMRecConfig",
            "AutoModel": "modeling_lmrec.LMRecModel",
        }
        pipelines = dict(getattr(config, "custom_pipelines", None) or {})
        current = pipelines.get("feature-extraction", {}).get("pt", [])
        if "AutoModelForCausalLM" not in current:
            pipelines["feature-extraction"] = {"impl": PIPELINE_IMPL, "pt": [self._pipeline_auto_class]}
        config.custom_pipelines = pipelines

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, Conv1D):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        if getattr(module, "lmrec_zero_init", False):  # the item-id table starts at 0: the text-only model
            init.zeros_(module.weight)
        # GPT-2's scaled init of the residual projections, 1/sqrt(2 * n_layer).
        if isinstance(module, (GPT2Attention, GPT2MLP)):
            std = self.config.initializer_range / math.sqrt(2 * self.config.n_layer)
            init.normal_(module.c_proj.weight, mean=0.0, std=std)


class LMRecModel(LMRecPreTrainedModel):
    """
    The LMRec decoder trunk: GPT-2 blocks over token and position embeddings. `pooler_output` is the feature
    z at each row's final EOS.

    Example:
    ```python
    >>> model = LMRecModel(LMRecConfig.from_preset("1.7m", vocab_size=512, n_positions=64))
    >>> out = model(input_ids=torch.tensor([[5, 6, 0]]))  # 0 is the default eos_token_id
    >>> out.pooler_output.shape
    torch.Size([1, 32])
    ```
    """

    # The heads of a joint checkpoint: `AutoModel` loads the trunk out of one without a load report for them.
    _keys_to_ignore_on_load_unexpected = [
        "attn.bias", r"^(user_projection|item_projection|item_id_embedding|lm_head)\."]

    def __init__(self, config: LMRecConfig):
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList([GPT2Block(config, layer_idx=i) for i in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.wte

    def set_input_embeddings(self, new_embeddings):
        self.wte = new_embeddings

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        return_pooler: bool = True,
        **kwargs,
    ) -> LMRecModelOutput:
        r"""
        return_pooler (`bool`, *optional*, defaults to `True`):
            Compute `pooler_output` (needs `input_ids` with an EOS in every row). LM-only callers switch it off.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("LMRecModel: give exactly one of `input_ids` or `inputs_embeds`.")
        if input_ids is not None:
            check_token_ids(input_ids, self.config.vocab_size, attention_mask)
        if inputs_embeds is None:
            inputs_embeds = self.wte(input_ids)  # (B, T, d)
        batch_size, seq_len = inputs_embeds.shape[:2]
        if seq_len > self.config.n_positions:
            raise ValueError(
                f"LMRecModel: sequence length {seq_len} is longer than n_positions={self.config.n_positions}. "
                "Truncate from the left with the LMRec tokenizer (truncation=True, max_length=n_positions)."
            )
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        past_seen = cache.get_seq_length() if cache is not None else 0
        if position_ids is None:
            if attention_mask is not None and past_seen == 0:
                # Count positions over real tokens only, so left and right padding give the same features.
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
            else:
                position_ids = torch.arange(seq_len, device=inputs_embeds.device).unsqueeze(0) + past_seen
        hidden_states = self.drop(inputs_embeds + self.wpe(position_ids))  # (B, T, d)

        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )
        for block in self.h:
            hidden_states = block(
                hidden_states,
                cache if not (self.gradient_checkpointing and self.training) else None,
                causal_mask,
                None,  # no encoder states, passed positionally for gradient checkpointing
                use_cache=use_cache,
                position_ids=position_ids,
                **kwargs,
            )
        hidden_states = self.ln_f(hidden_states)  # (B, T, d)

        pooler_output = None
        if return_pooler and input_ids is not None and past_seen == 0:
            pooler_output = pool_eos(hidden_states, input_ids, attention_mask, self.config.eos_token_id)
        return LMRecModelOutput(
            last_hidden_state=hidden_states,
            pooler_output=pooler_output,
            cache=cache if use_cache else None,
        )


class LMRecForJointModeling(LMRecPreTrainedModel):
    """
    LMRec with its three heads on one trunk: the LM head (tied to the token embeddings) for L1, and the user and
    item projections W_u, W_i for L2 = BCE(sigmoid(<W_u z_u, W_i z_i>), label).

    Example:
    ```python
    >>> model = LMRecForJointModeling(LMRecConfig.from_preset("1.7m", vocab_size=512, n_positions=64))
    >>> ids = torch.tensor([[5, 6, 0]])
    >>> out = model(input_ids=ids, labels=ids, user_input_ids=ids, item_input_ids=ids,
    ...             rec_labels=torch.tensor([1.0]))
    >>> torch.allclose(out.loss, out.lm_loss + model.config.rec_loss_weight * out.rec_loss)
    True
    ```
    """

    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}
    _pipeline_auto_class = "AutoModelForCausalLM"

    def __init__(self, config: LMRecConfig):
        super().__init__(config)
        config.auto_map["AutoModelForCausalLM"] = "modeling_lmrec.LMRecForJointModeling"
        self.transformer = LMRecModel(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.user_projection = nn.Linear(config.n_embd, config.projection_dim, bias=False)  # W_u
        self.item_projection = nn.Linear(config.n_embd, config.projection_dim, bias=False)  # W_i
        if config.item_id_embeddings:  # the hybrid option: W_i z_i + E[item id] for the training catalogue's items
            self.item_id_embedding = nn.Embedding(config.item_id_embeddings, config.projection_dim)
            self.item_id_embedding.lmrec_zero_init = True
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def project_items(self, z_i: torch.Tensor, item_ids: torch.LongTensor | None = None) -> torch.Tensor:
        """
        W_i z_i, plus the learned item-id embedding E[id] when the model has one (`config.item_id_embeddings`) and
        `item_ids` are given: row k of `z_i` is catalogue item `item_ids[k]`, -1 for an item outside the catalogue
        (text alone). With `config.rec_similarity="cosine"` the sum is scaled as `_for_similarity` says.
        """
        projected = self.item_projection(z_i)
        table = getattr(self, "item_id_embedding", None)
        if table is None or item_ids is None:
            return self._for_similarity(projected)
        item_ids = item_ids.to(projected.device).long()
        if item_ids.shape != projected.shape[:1]:
            raise ValueError(f"`item_ids` must have one catalogue row per item row, shape ({projected.shape[0]},), "
                             f"got {tuple(item_ids.shape)}.")
        if item_ids.numel() and (int(item_ids.min()) < -1 or int(item_ids.max()) >= table.num_embeddings):
            raise ValueError(f"`item_ids` must be catalogue rows in [0, {table.num_embeddings}) or -1 for an item "
                             f"outside the catalogue, got {int(item_ids.min())} to {int(item_ids.max())}.")
        known = (item_ids >= 0).unsqueeze(-1)
        return self._for_similarity(projected + table(item_ids.clamp(min=0)) * known)

    def project_users(self, z_u: torch.Tensor) -> torch.Tensor:
        """W_u z_u, scaled for `config.rec_similarity` as `project_items` scales W_i z_i."""
        return self._for_similarity(self.user_projection(z_u))

    def _for_similarity(self, projected: torch.Tensor) -> torch.Tensor:
        """
        A projected vector as the scores use it: unchanged for the paper's dot product; for `"cosine"` scaled to
        length 1 / sqrt(rec_temperature), so that the dot product of two is their cosine / rec_temperature.
        """
        if getattr(self.config, "rec_similarity", "dot") != "cosine":
            return projected
        return F.normalize(projected, dim=-1) / math.sqrt(self.config.rec_temperature)

    def embed(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None, projection: str | None = None,
        item_ids: torch.LongTensor | None = None,
    ) -> torch.Tensor:
        """
        One vector per row: the EOS feature z, or W_u z (`projection="user"`) or W_i z (`projection="item"`; with
        `item_ids`, plus the item-id embedding of a model that has one, see `project_items`); both scaled to length
        1 / sqrt(rec_temperature) when `config.rec_similarity` is "cosine".

        Example:
        ```python
        >>> model.embed(torch.tensor([[5, 6, 0]]), projection="user").shape
        torch.Size([1, 32])
        ```
        """
        z = self.transformer(input_ids=input_ids, attention_mask=attention_mask).pooler_output  # (B, d)
        if projection is None:
            return z
        if projection == "item":
            return self.project_items(z, item_ids)
        if projection != "user":
            raise ValueError(f"projection must be 'user', 'item' or None, got {projection!r}.")
        return self.project_users(z)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        user_input_ids: torch.LongTensor | None = None,
        user_attention_mask: torch.Tensor | None = None,
        item_input_ids: torch.LongTensor | None = None,
        item_attention_mask: torch.Tensor | None = None,
        rec_labels: torch.Tensor | None = None,
        user_positions: torch.LongTensor | None = None,
        **kwargs,
    ) -> LMRecJointOutput:
        r"""
        input_ids, attention_mask, labels (`torch.LongTensor` of shape `(B, T)`, *optional*):
            The LM stream; L1 is next-token cross-entropy over `labels` (-100 ignored).
        user_input_ids, user_attention_mask (`torch.LongTensor` of shape `(B, T)`, *optional*):
            User histories, each ending in EOS.
        item_input_ids, item_attention_mask (`torch.LongTensor` of shape `(M, T)`, *optional*):
            Item texts, each ending in EOS.
        rec_labels (`torch.Tensor`, *optional*):
            1 for a positive pair, 0 for a negative, -1 for a pair to ignore: `(B,)` pairs, `(B, N)` with the M items
            either shared by all users (M = N) or grouped by user (M = B·N), or `(B, P, M)` with `user_positions`.
            L2 is the paper's binary cross-entropy over them.
        user_positions (`torch.LongTensor` of shape `(B, P)`, *optional*):
            Read user features at these token positions (-1 pads) instead of the final EOS: each one ends a prefix
            of the history (an option for training, not the paper's recipe).
        item_ids (`torch.LongTensor` of shape `(M,)`, *optional*, a keyword outside the API contract's signature):
            Catalogue rows of the item rows (-1 outside the catalogue), for a model with item-id embeddings
            (`config.item_id_embeddings`, an option); ignored by the text-only model.

        With both losses, `loss = lm_loss + config.rec_loss_weight * rec_loss`. The CPU-budget objectives (softmax,
        logQ, the item bank) are not here: `lmrec_hf.losses` computes them from this output.
        """
        kwargs.pop("num_items_in_batch", None)  # passed by Trainer; our losses are per-batch means
        item_ids = kwargs.pop("item_ids", None)
        masks = {"input_ids": attention_mask, "user_input_ids": user_attention_mask,
                 "item_input_ids": item_attention_mask}
        _check_joint_inputs(input_ids, labels, user_input_ids, item_input_ids, rec_labels, user_positions,
                            self.config.vocab_size, masks)
        logits = lm_loss = None
        if input_ids is not None:
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask, return_pooler=False,
                                      **kwargs).last_hidden_state  # (B, T, d)
            logits = self.lm_head(hidden)  # (B, T, V)
            if labels is not None:
                lm_loss = causal_lm_loss([(logits, labels)])

        rec_logits = rec_loss = user_embeds = item_embeds = user_hidden = None
        if user_input_ids is not None:
            user_out = self.transformer(input_ids=user_input_ids, attention_mask=user_attention_mask,
                                        return_pooler=user_positions is None)
            user_hidden = user_out.last_hidden_state  # (B, T, d)
            if user_positions is None:
                z_u = user_out.pooler_output  # (B, d)
            else:
                rows = torch.arange(user_input_ids.shape[0], device=user_input_ids.device).unsqueeze(1)
                z_u = user_hidden[rows, user_positions.clamp(min=0)]  # (B, P, d)
            user_embeds = self.project_users(z_u)  # (B, p) or (B, P, p)
            item_embeds = self.embed(item_input_ids, item_attention_mask, projection="item", item_ids=item_ids)
            rec_logits = score_pairs(user_embeds, item_embeds, rec_labels)
            if rec_labels is not None:
                valid = None if user_positions is None else user_positions >= 0
                rec_loss = rec_bce_loss(rec_logits, rec_labels.to(rec_logits.device), valid)

        if lm_loss is not None and rec_loss is not None:
            loss = lm_loss + self.config.rec_loss_weight * rec_loss
        else:
            loss = lm_loss if lm_loss is not None else rec_loss
        return LMRecJointOutput(loss=loss, lm_loss=lm_loss, rec_loss=rec_loss, logits=logits, rec_logits=rec_logits,
                                user_embeds=user_embeds, item_embeds=item_embeds, user_hidden_states=user_hidden)


def check_token_ids(input_ids: torch.Tensor, vocab_size: int, attention_mask: torch.Tensor | None = None,
                    name: str = "input_ids") -> None:
    """Refuses an empty batch, ids outside the vocabulary and a mask of another shape, before torch's bare errors."""
    if input_ids.dim() != 2 or input_ids.numel() == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(input_ids.shape)}); pass a (batch, length) tensor with "
                         "at least one token per row, e.g. from the LMRec tokenizer.")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        mask_name = name.replace("input_ids", "attention_mask")
        raise ValueError(f"`{mask_name}` has shape {tuple(attention_mask.shape)}, but `{name}` has shape "
                         f"{tuple(input_ids.shape)}; they must match. Take both from the same tokenizer call.")
    outside = (input_ids < 0) | (input_ids >= vocab_size)
    if bool(outside.any()):
        raise ValueError(f"`{name}` must be token ids in [0, {vocab_size}) (the model's vocab_size), got "
                         f"{input_ids[outside][0].item()}. Encode with the tokenizer saved with this checkpoint.")


def _check_joint_inputs(input_ids, labels, user_input_ids, item_input_ids, rec_labels, user_positions,
                        vocab_size, masks) -> None:
    if (user_input_ids is None) != (item_input_ids is None):
        given, missing = ("user", "item") if item_input_ids is None else ("item", "user")
        raise ValueError(
            f"LMRecForJointModeling: got `{given}_input_ids` without `{missing}_input_ids`. The rec head scores "
            "users against items, so pass both (or neither, for the LM loss alone)."
        )
    if rec_labels is not None and user_input_ids is None:
        raise ValueError(
            "LMRecForJointModeling: got `rec_labels` without `user_input_ids` and `item_input_ids`; "
            "pass the users and items the labels refer to."
        )
    if labels is not None and input_ids is None:
        raise ValueError("LMRecForJointModeling: got `labels` without `input_ids`; pass the LM inputs too.")
    if user_positions is not None and user_input_ids is None:
        raise ValueError("LMRecForJointModeling: got `user_positions` without `user_input_ids`; pass the users too.")
    for name, ids in (("input_ids", input_ids), ("user_input_ids", user_input_ids),
                      ("item_input_ids", item_input_ids)):
        if ids is not None:
            check_token_ids(ids, vocab_size, masks[name], name)
    if labels is not None:
        bad = ((labels < 0) & (labels != -100)) | (labels >= vocab_size)
        if bool(bad.any()):
            raise ValueError(f"`labels` must be token ids in [0, {vocab_size}) or -100 (ignored), got "
                             f"{labels[bad][0].item()}. Copy them from `input_ids`, with -100 on padding.")
    if user_positions is not None:
        length = user_input_ids.shape[1]
        bad = (user_positions < -1) | (user_positions >= length)
        if bool(bad.any()):
            raise ValueError(f"`user_positions` must be in [-1, {length}) (token positions of `user_input_ids`, -1 "
                             f"for padding), got {user_positions[bad][0].item()}.")


def causal_lm_loss(terms: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Next-token cross-entropy averaged over every labelled token of every (logits, labels) stream."""
    logits = torch.cat([lg[:, :-1].reshape(-1, lg.shape[-1]) for lg, _ in terms])
    labels = torch.cat([lb[:, 1:].reshape(-1).to(logits.device) for _, lb in terms])
    return F.cross_entropy(logits.float(), labels, ignore_index=-100)


def rec_bce_loss(rec_logits: torch.Tensor, rec_labels: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """
    The paper's L2: binary cross-entropy of sigmoid(score) against the labels, averaged over the labelled pairs. A
    negative label marks a pair to ignore; `valid` (B, P) keeps the real prefix positions of `(B, P, M)` scores.
    """
    if valid is not None:
        rec_logits, rec_labels = rec_logits[valid], rec_labels[valid]  # (N, M)
    rec_logits, ignored = rec_logits.float(), rec_labels < 0
    if bool((rec_labels > 1).any()):
        raise ValueError(f"rec_labels must be in [0, 1] (1 a positive pair, 0 a negative, or negative to ignore the "
                         f"pair), got {rec_labels.max().item()!r}. Pass binary labels (or soft ones in [0, 1]).")
    losses = F.binary_cross_entropy_with_logits(rec_logits, rec_labels.float().clamp(min=0), reduction="none")
    return losses.masked_fill(ignored, 0.0).sum() / (~ignored).sum().clamp(min=1)


def score_pairs(user_embeds: torch.Tensor, item_embeds: torch.Tensor,
                rec_labels: torch.Tensor | None = None) -> torch.Tensor:
    """
    <W_u z_u, W_i z_i> in the shape `rec_labels` ask for: prefix features `(B, P, p)` give `(B, P, M)`; without
    labels every user meets every item `(B, M)`; labels `(B,)` score pairs; labels `(B, N)` score N items shared by
    all users (M = N) or N items per user, grouped by user (M = B·N).
    """
    n_users, n_items = user_embeds.shape[0], item_embeds.shape[0]
    if user_embeds.dim() == 3:  # prefix features (B, P, p): every prefix against every item
        if rec_labels is not None and rec_labels.shape != (*user_embeds.shape[:2], n_items):
            raise ValueError(
                f"LMRecForJointModeling: with `user_positions` of shape {tuple(user_embeds.shape[:2])} and "
                f"{n_items} item rows, `rec_labels` must have shape {(*user_embeds.shape[:2], n_items)}, got "
                f"{tuple(rec_labels.shape)}."
            )
        return torch.einsum("bpd,md->bpm", user_embeds, item_embeds)  # (B, P, M)
    if rec_labels is None:
        return user_embeds @ item_embeds.T  # (B, M)
    if rec_labels.dim() == 1:
        if not (n_users == n_items == rec_labels.shape[0]):
            raise ValueError(
                f"LMRecForJointModeling: pairwise `rec_labels` of shape {tuple(rec_labels.shape)} need as many "
                f"user rows and item rows as labels, got {n_users} user rows and {n_items} item rows."
            )
        return (user_embeds * item_embeds).sum(-1)  # (B,)
    if rec_labels.dim() == 2:
        batch, per_user = rec_labels.shape
        if n_users == batch and n_items == per_user:
            return user_embeds @ item_embeds.T  # (B, M): every user against the same M items
        if n_users != batch or n_items != batch * per_user:
            raise ValueError(
                f"LMRecForJointModeling: `rec_labels` of shape {tuple(rec_labels.shape)} need {batch} user rows "
                f"and either {per_user} item rows (shared by all users) or {batch * per_user} ({per_user} per "
                f"user, grouped by user), got {n_users} user rows and {n_items} item rows."
            )
        items = item_embeds.view(batch, per_user, -1)  # (B, N, p)
        return torch.einsum("bp,bnp->bn", user_embeds, items)  # (B, N)
    raise ValueError(
        f"LMRecForJointModeling: `rec_labels` must have shape (B,), (B, N) or (B, P, M), got "
        f"{tuple(rec_labels.shape)}."
    )


__all__ = ["LMRecPreTrainedModel", "LMRecModel", "LMRecForJointModeling", "LMRecModelOutput", "LMRecJointOutput",
           "causal_lm_loss", "pool_eos", "rec_bce_loss", "score_pairs"]
