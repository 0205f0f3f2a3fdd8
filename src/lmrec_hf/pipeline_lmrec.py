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
        if isinstance(inputs, str):
            text = escape_text(inputs)
            if not text.strip():
                raise ValueError(f"The input text is empty ({inputs!r}); pass a formatted history or an item text, or "
                                 "a history as a list of item texts.")
        elif isinstance(inputs, (list, tuple)):
            text = format_history(inputs)
        else:
            raise ValueError(
                "Each input must be a formatted text (str) or a history as a list of item texts, got "
                f"{type(inputs).__name__}: {inputs!r}."
            )
        limit = self.model.config.n_positions
        if projection == "item":
            limit = item_token_limit(self.model.config)
            encoded = tokenize_items(self.tokenizer, [text], min(max_length or limit, limit))
        else:
            max_length = min(max_length or limit, limit)
            encoded = self.tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
        if encoded["input_ids"].shape[-1] == 0 or encoded["input_ids"][0, -1] != self.model.config.eos_token_id:
            raise ValueError(
                "The tokenizer did not end the text with the model's EOS token "
                f"(id {self.model.config.eos_token_id}); load the tokenizer saved with this LMRec checkpoint."
            )
        return encoded

    def _forward(self, model_inputs, projection=None):
        output = self.model.base_model(
            input_ids=model_inputs["input_ids"], attention_mask=model_inputs.get("attention_mask")
        )
        features = output.pooler_output  # (B, d)
        if projection is not None:
            head = getattr(self.model, f"{projection}_projection", None)
            if head is None:
                raise ValueError(
                    f"projection={projection!r} needs the {projection} projection head, but this "
                    f"{type(self.model).__name__} has none. Load the joint model (AutoModelForCausalLM), which the "
                    "checkpoint's pipeline entry does by default, or call without `projection`."
                )
            features = head(features)
        return {"features": features}

    def postprocess(self, model_outputs, return_tensors=False):
        features = model_outputs["features"][0]  # (d,)
        if return_tensors:
            return features
        return features.to(torch.float32).tolist()
