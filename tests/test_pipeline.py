import pytest
import torch
from transformers import pipeline

from lmrec_hf import LMRecFeatureExtractionPipeline, LMRecModel, format_history

from .conftest import HISTORIES, ITEMS


@pytest.fixture
def saved(model, tokenizer, tmp_path):
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return tmp_path


@pytest.fixture
def extractor(model, tokenizer):
    return LMRecFeatureExtractionPipeline(model=model, tokenizer=tokenizer)


def _reference(model, tokenizer, texts, projection=None):
    return torch.cat([model.embed(tokenizer(t, return_tensors="pt").input_ids, projection=projection) for t in texts])


def test_task_name_routes_to_lmrec_pipeline(saved):
    fe = pipeline("feature-extraction", model=str(saved), trust_remote_code=True)
    assert type(fe).__name__ == "LMRecFeatureExtractionPipeline"
    assert type(fe.model).__name__ == "LMRecForJointModeling"


def test_one_vector_per_input(extractor, model, tokenizer):
    texts = [format_history(h) for h in HISTORIES]
    vectors = extractor(texts)
    assert len(vectors) == len(texts) and all(len(v) == model.config.n_embd for v in vectors)
    assert torch.allclose(torch.tensor(vectors), _reference(model, tokenizer, texts), atol=1e-5)


@pytest.mark.parametrize("projection", ["user", "item"])
def test_projections(extractor, model, tokenizer, projection):
    texts = ITEMS[:3]
    vectors = extractor(texts, projection=projection)
    assert torch.allclose(torch.tensor(vectors), _reference(model, tokenizer, texts, projection), atol=1e-5)


def test_list_of_item_texts_is_one_history(extractor):
    as_list = extractor([HISTORIES[0]])
    as_text = extractor([format_history(HISTORIES[0])])
    assert len(as_list) == 1 and as_list == as_text


def test_single_text_returns_one_vector(extractor, model):
    vector = extractor(ITEMS[0])
    assert len(vector) == model.config.n_embd and isinstance(vector[0], float)


def test_batched_equals_one_at_a_time(extractor):
    inputs = [format_history(h) for h in HISTORIES] + ITEMS
    one_by_one = torch.tensor(extractor(inputs, projection="user"))
    for batch_size in (2, 4, len(inputs)):
        batched = torch.tensor(extractor(inputs, projection="user", batch_size=batch_size))
        assert torch.allclose(batched, one_by_one, atol=1e-5)


def test_long_history_is_left_truncated(extractor, model, tokenizer):
    history = [f"item number {i}." for i in range(60)]
    vector = extractor([history], return_tensors=True)[0]
    ids = tokenizer(format_history(history), truncation=True, max_length=model.config.n_positions,
                    return_tensors="pt").input_ids
    assert ids.shape[-1] == model.config.n_positions and ids[0, -1] == tokenizer.eos_token_id
    assert torch.allclose(vector, model.embed(ids)[0], atol=1e-5)


def test_return_tensors(extractor, model):
    out = extractor([ITEMS[0]], return_tensors=True)
    assert isinstance(out[0], torch.Tensor) and out[0].shape == (model.config.n_embd,)


def test_bad_projection(extractor):
    with pytest.raises(ValueError, match="projection must be 'user', 'item' or None, got 'users'"):
        extractor([ITEMS[0]], projection="users")


def test_bad_input_type(extractor):
    with pytest.raises(ValueError, match=r"formatted text \(str\) or a history as a list of item texts, got int"):
        extractor([3])


def test_empty_history(extractor):
    with pytest.raises(ValueError, match="history is empty"):
        extractor([[]])


def test_projection_on_trunk_only(model, tokenizer):
    trunk = LMRecModel(model.config).eval()
    fe = LMRecFeatureExtractionPipeline(model=trunk, tokenizer=tokenizer)
    assert len(fe(ITEMS[0])) == model.config.n_embd
    with pytest.raises(ValueError, match=r"needs the user projection head.*LMRecModel has none"):
        fe(ITEMS[0], projection="user")


def test_combine_mean_pools_the_services_or_joins_their_histories(extractor):
    """One user on two services: mean of each history's vector (empty services skipped), or one joined history."""
    shop, music = HISTORIES[0], HISTORIES[1]
    for projection in (None, "user"):
        apart = torch.tensor(extractor([shop, music], projection=projection))
        mean = torch.tensor(extractor([{"shop": shop, "music": music}], projection=projection)[0])
        torch.testing.assert_close(mean, apart.mean(0), atol=1e-5, rtol=0)
    alone = torch.tensor(extractor([{"shop": shop, "music": [], "video": "  "}])[0])
    torch.testing.assert_close(alone, torch.tensor(extractor([shop])[0]), atol=1e-5, rtol=0)
    joined = extractor([{"shop": shop, "music": music}], combine="concat")
    assert joined == extractor([shop + music])
    assert extractor({"shop": shop, "music": music}) == extractor([{"shop": shop, "music": music}])[0]


def test_bad_combine_inputs(extractor):
    with pytest.raises(ValueError, match=r"no history in any service .*give at least one service a non-empty history"):
        extractor([{"shop": [], "music": " "}])
    with pytest.raises(ValueError, match=r"combine must be one of \('mean', 'concat'\).*got 'max'"):
        extractor([{"shop": HISTORIES[0]}], combine="max")
    with pytest.raises(ValueError, match=r"combine='concat' joins item lists; service 'music' gave str"):
        extractor([{"shop": HISTORIES[0], "music": "a formatted text"}], combine="concat")
    with pytest.raises(ValueError, match=r"one user at a time.*leave batch_size out"):
        extractor([{"shop": HISTORIES[0]}, {"shop": HISTORIES[1]}], batch_size=2)
