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
