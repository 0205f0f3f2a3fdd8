"""The LMRec text format: a history is item texts joined by " → ", oldest first.

Pure Python, because it ships to the Hub beside the pipeline as custom code. The tokenizer's post-processor
appends the EOS token, so none of these functions add it.
"""

import re
from typing import Iterable

ITEM_SEPARATOR = " → "
_ARROW = "→"
_WHITESPACE = re.compile(r"\s+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SPECIAL_MARKUP = re.compile(r"<\|([^|<>]*)\|>")


def replace_lone_surrogates(text: str) -> str:
    """
    Joins valid surrogate pairs and turns lone surrogates ("\\ud800", which no UTF-8 text can hold and the tokenizer
    cannot take) into U+FFFD, the Unicode replacement character.
    """
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def escape_text(text: str) -> str:
    """
    A raw text made safe to tokenize: lone surrogates replaced, and special-token markup such as `<|endoftext|>`
    written as `<endoftext>`, so that a text cannot put an EOS (where LMRec reads features) or PAD in mid-history.
    """
    text = replace_lone_surrogates(text)
    return _SPECIAL_MARKUP.sub(r"<\1>", text) if "<|" in text else text


def clean_item_text(text: str) -> str:
    """Collapses whitespace runs and newlines, turns a literal "→" into "->" so it cannot split an item, and escapes
    the text (`escape_text`)."""
    if not isinstance(text, str):
        raise ValueError(f"An item text must be a string, got {type(text).__name__}: {text!r}.")
    return _WHITESPACE.sub(" ", escape_text(text).replace(_ARROW, "->")).strip()


def format_history(item_texts: Iterable[str]) -> str:
    """
    Formats a user's history, oldest item first, as the exact text LMRec trains on (without EOS).

    Example:
    ```python
    >>> format_history(["Soldering iron.", "Solder  wire\\n0.8mm."])
    'Soldering iron. → Solder wire 0.8mm.'
    ```
    """
    if isinstance(item_texts, str):
        raise ValueError(
            "format_history expects a list of item texts, oldest first, got one string "
            f"{item_texts[:60]!r}. Wrap a single item as [text], or use format_item(text)."
        )
    cleaned = []
    for position, text in enumerate(item_texts):
        item = clean_item_text(text)
        if not item:
            raise ValueError(
                f"format_history: item {position} is empty after cleaning (got {text!r}). "
                "Drop items without text before formatting."
            )
        cleaned.append(item)
    if not cleaned:
        raise ValueError("format_history: the history is empty; a user needs at least one item.")
    return ITEM_SEPARATOR.join(cleaned)


def format_item(text: str) -> str:
    """
    Formats one item. An item is a one-item history, so one encoder call serves both.

    Example:
    ```python
    >>> format_item("Digital  caliper")
    'Digital caliper'
    ```
    """
    return format_history([text])


def item_token_limit(config, default: int = 128) -> int:
    """Tokens per item text for a checkpoint: its `item_max_length`, else `default`, within its positions."""
    return min(getattr(config, "item_max_length", None) or default, config.n_positions)


def tokenize_items(tokenizer, texts: list[str], max_length: int, return_tensors: str = "pt") -> dict:
    """
    Tokenizes formatted item texts for the item encoder, each cut to `max_length` tokens from the right, so the
    title (which comes first) stays and the trailing categories and brand go; the EOS, where z_i is read, is kept.
    Histories are cut from the left instead (the most recent items stay). Rows are padded to the longest.

    Example:
    ```python
    >>> batch = tokenize_items(tokenizer, [format_item("Digital caliper")], max_length=32)
    >>> batch["input_ids"][0, -1] == tokenizer.eos_token_id
    ```
    """
    if max_length < 2:
        raise ValueError(f"tokenize_items: max_length must be at least 2 (a token and the EOS), got {max_length}.")
    ids = tokenizer(list(texts))["input_ids"]
    ids = [row if len(row) <= max_length else row[: max_length - 1] + row[-1:] for row in ids]
    return tokenizer.pad({"input_ids": ids}, padding=True, return_tensors=return_tensors)
