"""The LMRec text format (formatting_lmrec.py): histories and items as the exact training text."""

import pytest

from lmrec_hf import format_history, format_item


def test_history_joins_oldest_first():
    assert format_history(["a mug.", "a plate."]) == "a mug. → a plate."


def test_item_text_is_cleaned():
    assert format_history(["  two\n\nwords\t here ", "x → y"]) == "two words here → x -> y"


def test_item_is_one_item_history():
    assert format_item(" Digital   caliper ") == format_history(["Digital caliper"]) == "Digital caliper"


def test_empty_history():
    with pytest.raises(ValueError, match="history is empty"):
        format_history([])


def test_empty_item_after_cleaning():
    with pytest.raises(ValueError, match=r"item 1 is empty after cleaning \(got ' \\n '\)"):
        format_history(["ok", " \n "])


def test_single_string_is_not_a_history():
    with pytest.raises(ValueError, match=r"expects a list of item texts.*format_item"):
        format_history("a mug.")


def test_non_string_item():
    with pytest.raises(ValueError, match="must be a string, got int"):
        format_item(3)


def test_separator_offsets_follow_the_separator():
    from lmrec_hf.formatting_lmrec import ITEM_SEPARATOR, item_token_limit

    text = format_history(["a", "bb", "ccc"])
    assert text.split(ITEM_SEPARATOR) == ["a", "bb", "ccc"] and text[1 + ITEM_SEPARATOR.index("→")] == "→"

    class Config:
        n_positions, item_max_length = 64, None
    assert item_token_limit(Config) == 64 and item_token_limit(Config, default=32) == 32
    Config.item_max_length = 16
    assert item_token_limit(Config) == 16


# ---------------------------------------------------------------------------------------------------------------
# Properties over arbitrary text (hypothesis): unicode, whitespace, lone surrogates, markup and arrow look-alikes

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lmrec_hf.formatting_lmrec import ITEM_SEPARATOR, clean_item_text  # noqa: E402

TRICKY = ["→", " → ", "->", "⟶", "➔", "\u3000", "\u00a0", "\n", "\t", "<|endoftext|>", "<|pad|>", "\ud800", "\udfff",
          "\ud83d\ude00", "é", "\u0301", "\u200b"]
ITEM_TEXTS = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(TRICKY)), min_size=1, max_size=6).map("".join)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(items=st.lists(ITEM_TEXTS, min_size=1, max_size=6), extra=st.integers(0, 6))
def test_a_truncated_history_keeps_its_newest_item_and_one_eos(tokenizer, items, extra):
    cleaned = [clean_item_text(t) for t in items]
    if not all(cleaned):
        with pytest.raises(ValueError, match="empty after cleaning"):
            format_history(items)
        return
    history = format_history(items)
    assert history.count("→") == len(items) - 1  # no item text can add a boundary
    newest = (ITEM_SEPARATOR if len(items) > 1 else "") + cleaned[-1]
    tail = tokenizer(newest).input_ids  # the newest item (after its arrow) and the EOS
    ids = tokenizer(history, truncation=True, max_length=len(tail) + extra).input_ids
    assert ids[-1] == tokenizer.eos_token_id and ids.count(tokenizer.eos_token_id) == 1
    assert tokenizer.pad_token_id not in ids
    assert ids[-len(tail):] == tail


@PROPERTY
@given(text=ITEM_TEXTS)
def test_an_item_is_its_one_item_history(text):
    try:
        expected = format_history([text])
    except ValueError:
        with pytest.raises(ValueError):
            format_item(text)
        return
    assert format_item(text) == expected == clean_item_text(text)
