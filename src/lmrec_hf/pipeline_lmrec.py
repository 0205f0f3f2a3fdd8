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
    transformers, a list is a batch: one history alone is `extractor([history])`. An input may also be one user's
    histories on several services, a dict of service name to history: the paper's task-agnostic "Combine" feature.
    `combine="mean"` (the default) encodes each non-empty history apart and mean-pools the vectors, as in the
    paper's A/B test; `combine="concat"` joins the histories, in the dict's order, into one history (its Table 7).
    Histories longer than the model's `n_positions` are truncated from the left, keeping the most recent items and
    the EOS. With `projection="item"` an input is cut from the right instead, to the checkpoint's `item_max_length`
    (else 128) tokens, as training, evaluation and the catalog encode items: the title stays.

    Example:
    ```python
    >>> from transformers import pipeline
    >>> extractor = pipeline("feature-extraction", model="outputs/demo/model", trust_remote_code=True)
    >>> users = extractor([["red mug.", "blue mug."]], projection="user")
    >>> items = extractor(["green mug."], projection="item")
    >>> score = sum(u * i for u, i in zip(users[0], items[0]))
    >>> combined = extractor([{"shop": ["red mug."], "music": ["jazz piano."]}], combine="mean")
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
        batch_size = kwargs.get("batch_size", getattr(self, "_batch_size", None)) or 1
        if batch_size > 1 and isinstance(inputs, (list, tuple)) and any(isinstance(i, dict) for i in inputs):
            # a Combine input is several rows; the pipeline's batching would regroup them row by row
            raise ValueError(f"Inputs with several services (dicts) are encoded one user at a time, but batch_size is "
                             f"{batch_size}; leave batch_size out (or set it to 1) for them.")
        return super().__call__(inputs, *args, **kwargs)

    def _sanitize_parameters(self, projection=None, max_length=None, return_tensors=None, combine=None, **kwargs):
        preprocess_params, forward_params, postprocess_params = {}, {}, {}
        if combine is not None:
            if combine not in COMBINE_MODES:
                raise ValueError(f"combine must be one of {COMBINE_MODES} (mean-pool each service's vector, or join "
                                 f"the histories into one), got {combine!r}.")
            preprocess_params["combine"] = combine
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

    def preprocess(self, inputs, max_length=None, projection=None, combine="mean"):
        return encode_texts(self.tokenizer, self.model.config, input_texts(inputs, combine), projection, max_length)

    def _forward(self, model_inputs, projection=None):
        return {"features": features_of(self.model, model_inputs, projection)}

    def postprocess(self, model_outputs, return_tensors=False):
        features = model_outputs["features"].mean(0)  # (d,): one text's vector, or the services' mean
        if return_tensors:
            return features
        return features.to(torch.float32).tolist()


# The one code path from text to features, shared by the pipeline (one input per call) and `lmrec-hf extract`
# (batches sorted by length).


COMBINE_MODES = ("mean", "concat")


def input_texts(inputs, combine: str = "mean") -> list[str]:
    """
    The texts one pipeline input is encoded as: one, or for a dict of service name to history (one user on
    several services) each non-empty history apart (`combine="mean"`) or all of them joined oldest-first within each
    service, services in the dict's order (`"concat"`). A user with no history in any service is refused.
    """
    if not isinstance(inputs, dict):
        return [input_text(inputs)]
    histories = {service: history for service, history in inputs.items() if _has_items(history)}
    if not histories:
        raise ValueError(f"This user has no history in any service ({inputs!r}); give at least one service a "
                         "non-empty history (a list of item texts), or leave the user out.")
    if combine == "concat":
        items = []
        for service, history in histories.items():
            if not isinstance(history, (list, tuple)):
                raise ValueError(f"combine='concat' joins item lists; service {service!r} gave "
                                 f"{type(history).__name__} {history!r}. Pass each history as a list of item texts.")
            items.extend(history)
        return [format_history(items)]
    return [input_text(history) for history in histories.values()]


def _has_items(history) -> bool:
    """False for an empty or blank history; anything else goes on to `input_text`, which names what is wrong."""
    if isinstance(history, str):
        return bool(history.strip())
    return not isinstance(history, (list, tuple)) or len(history) > 0


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
