"""check_choice: one wording for a value outside its choices."""

import pytest

from lmrec_hf.checks import check_choice


def test_a_choice_passes_and_anything_else_is_named_with_the_choices():
    check_choice("mode", "joint", ("joint", "rec_only"))
    with pytest.raises(ValueError, match=r"^`mode` must be one of \('joint', 'rec_only'\), got 'both'\.$"):
        check_choice("mode", "both", ("joint", "rec_only"))
    with pytest.raises(ValueError, match=r"^RecObjective: `x` must be one of \[1, 2\], got 3 \(a note\)\.$"):
        check_choice("x", 3, [1, 2], owner="RecObjective", note="a note")
