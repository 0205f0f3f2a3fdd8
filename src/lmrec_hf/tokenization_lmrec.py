"""Text side of LMRec: the history format (re-exported) and byte-level BPE tokenizer training."""

from typing import Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from .formatting_lmrec import ITEM_SEPARATOR, clean_item_text, format_history, format_item, replace_lone_surrogates

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 8192,
    model_max_length: int = 2048,
    min_frequency: int = 2,
    truncation_side: str = "left",
) -> PreTrainedTokenizerFast:
    """
    Trains a byte-level BPE tokenizer on formatted histories (and item texts) with the `tokenizers` library.

    The EOS token gets id 0 and PAD id 1, matching [`LMRecConfig`]'s defaults. The post-processor appends EOS to
    every encoded text, and truncation is from the left by default, so a long history keeps its most recent
    items and its EOS.

    Example:
    ```python
    >>> tok = train_tokenizer([format_history(["red mug.", "blue mug."])], vocab_size=300)
    >>> tok("red mug.").input_ids[-1] == tok.eos_token_id
    True
    ```
    """
    if not isinstance(vocab_size, int) or vocab_size < 259:
        raise ValueError(
            f"train_tokenizer: vocab_size must be an integer of at least 259 (256 bytes, EOS, PAD and one merge), "
            f"got {vocab_size!r}."
        )
    if isinstance(texts, (str, bytes)):
        raise ValueError(
            f"train_tokenizer expects an iterable of texts (formatted histories and item texts), got one string "
            f"{texts[:60]!r}; it would learn from its characters. Pass [text], or a list of texts."
        )
    if truncation_side not in ("left", "right"):
        raise ValueError(f"train_tokenizer: truncation_side must be 'left' or 'right', got {truncation_side!r}.")

    seen = 0

    def counted(stream: Iterable[str]) -> Iterator[str]:
        nonlocal seen
        for text in stream:
            if not isinstance(text, str):
                raise ValueError(f"train_tokenizer: text {seen} is a {type(text).__name__} ({text!r:.60}), expected a "
                                 "string.")
            seen += 1
            yield replace_lone_surrogates(text)

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(counted(texts), trainer=trainer)
    if seen == 0:
        raise ValueError("train_tokenizer: no texts were given; pass formatted histories to learn the vocabulary from.")
    eos_id = tokenizer.token_to_id(EOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS_TOKEN}", pair=f"$A {EOS_TOKEN} $B {EOS_TOKEN}", special_tokens=[(EOS_TOKEN, eos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=model_max_length,
        truncation_side=truncation_side,
        padding_side="right",
    )


__all__ = ["train_tokenizer", "format_history", "format_item", "clean_item_text", "ITEM_SEPARATOR", "EOS_TOKEN",
           "PAD_TOKEN"]
