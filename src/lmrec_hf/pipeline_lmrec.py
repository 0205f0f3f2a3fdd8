"""Feature-extraction pipeline for LMRec: one vector per user history or item.

Ships to the Hub as custom code; a checkpoint's `custom_pipelines` routes the "feature-extraction" task here.
"""

import torch
from transformers import Pipeline

from .formatting_lmrec import escape_text, format_history, item_token_limit, tokenize_items


class LMRecFeatureExtractionPipeline(Pipeline):
    """
    Returns one vector per input: the last-layer feature at the input's EOS token, or its user projection
    (`projection="user"`, W_u z) or item projection (`projection="item"`, W_i z).

    Each input is a formatted text or a list of item texts (one history, oldest first). As everywhere in
    transformers, a list is a batch: one history alone is `extractor([history])`. Histories longer than the
    model's `n_positions` are truncated from the left, keeping the most recent items and the EOS. With
    `projection="item"` an input is cut from the right instead, to the checkpoint's `item_max_length` (else 128)
    tokens, as training, evaluation and the catalog encode items: the title stays.

    Example:
    ```python
    >>> from transformers import pipeline
    >>> extractor = pipeline("feature-extraction", model="outputs/demo/model", trust_remote_code=True)
    >>> users = extractor([["red mug.", "blue mug."]], projection="user")
    >>> items = extractor(["green mug."], projection="item")
    >>> score = sum(u * i for u, i in zip(users[0], items[0]))
    ```
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, (list, tuple)) and len(inputs) == 0:
            self._sanitize_parameters(**kwargs)  # an empty batch still gets its options checked
            return []
        return super().__call__(inputs, *args, **kwargs)

    def _sanitize_parameters(self, projection=None, max_length=None, return_tensors=None, **kwargs):
        preprocess_params, forward_params, postprocess_params = {}, {}, {}
        if max_length is not None:
            if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
                raise ValueError(f"max_length must be an integer of at least 2 (a token and the EOS), got "
                                 f"{max_length!r}. Leave it out to use the model's n_positions.")
            preprocess_params["max_length"] = max_length
        if projection is not None:
            if projection not in ("user", "item"):
                raise ValueError(f"projection must be 'user', 'item' or None, got {projection!r}.")
            forward_params["projection"] = projection
            preprocess_params["projection"] = projection
        if return_tensors is not None:
            postprocess_params["return_tensors"] = return_tensors
        return preprocess_params, forward_params, postprocess_params

    def preprocess(self, inputs, max_length=None, projection=None):
        return encode_texts(self.tokenizer, self.model.config, [input_text(inputs)], projection, max_length)

    def _forward(self, model_inputs, projection=None):
        return {"features": features_of(self.model, model_inputs, projection)}

    def postprocess(self, model_outputs, return_tensors=False):
        features = model_outputs["features"][0]  # (d,)
        if return_tensors:
            return features
        return features.to(torch.float32).tolist()


# The one code path from text to features, shared by the pipeline (one input per call) and `lmrec-hf extract`
# (batches sorted by length).


def input_text(inputs) -> str:
    """A pipeline input as the text LMRec encodes: a formatted text (escaped) or a history (list of item texts)."""
    if isinstance(inputs, str):
        text = escape_text(inputs)
        if not text.strip():
            raise ValueError(f"The input text is empty ({inputs!r}); pass a formatted history or an item text, or "
                             "a history as a list of item texts.")
        return text
    if isinstance(inputs, (list, tuple)):
        return format_history(inputs)
    raise ValueError(
        "Each input must be a formatted text (str) or a history as a list of item texts, got "
        f"{type(inputs).__name__}: {inputs!r}."
    )


def encode_texts(tokenizer, config, texts: list[str], projection=None, max_length=None) -> dict:
    """
    Tokenizes texts for feature extraction, padded to the longest: cut from the left to `n_positions` (a history:
    the most recent items stay), or with `projection="item"` from the right to the checkpoint's item limit (the
    title stays); the EOS is kept either way.
    """
    limit = config.n_positions
    if projection == "item":
        limit = item_token_limit(config)
        encoded = tokenize_items(tokenizer, texts, min(max_length or limit, limit))
    else:
        encoded = tokenizer(list(texts), truncation=True, max_length=min(max_length or limit, limit), padding=True,
                            return_tensors="pt")
    ids = encoded["input_ids"]
    last = encoded["attention_mask"].sum(-1) - 1 if "attention_mask" in encoded else torch.full((len(ids),), -1)
    if ids.shape[-1] == 0 or bool((ids[torch.arange(len(ids)), last] != config.eos_token_id).any()):
        raise ValueError(
            "The tokenizer did not end the text with the model's EOS token "
            f"(id {config.eos_token_id}); load the tokenizer saved with this LMRec checkpoint."
        )
    return encoded


def projection_head(model, projection: str):
    head = getattr(model, f"{projection}_projection", None)
    if head is None:
        raise ValueError(
            f"projection={projection!r} needs the {projection} projection head, but this "
            f"{type(model).__name__} has none. Load the joint model (AutoModelForCausalLM), which the "
            "checkpoint's pipeline entry does by default, or call without `projection`."
        )
    return head


def features_of(model, encoded: dict, projection=None) -> torch.Tensor:
    """z (the last-layer feature at each row's EOS), or W_u z / W_i z with `projection="user"` / `"item"`."""
    output = model.base_model(input_ids=encoded["input_ids"], attention_mask=encoded.get("attention_mask"))
    features = output.pooler_output  # (B, d)
    return projection_head(model, projection)(features) if projection is not None else features
