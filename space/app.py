"""
LMRec demo Space: build a behaviour history from the catalog or from typed item titles, get top-k recommendations,
see where the history sits on a map of the items, and download the user vector.

It needs only transformers, torch, safetensors, huggingface_hub and gradio: the model is loaded by the
`feature-extraction` pipeline with the checkpoint's own code (trust_remote_code), and the item catalog
(`catalog/` in the checkpoint: texts and precomputed item embeddings) is read, never re-encoded.

LMREC_MODEL picks the model: a Hub repo id (ORG/NAME, optionally ORG/NAME@REVISION) or a local checkpoint folder.
The default is the folder `make demo` writes. Run locally with `make space`.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = os.environ.get("LMREC_MODEL", str(ROOT / "outputs" / "demo" / "model"))
MAX_HISTORY_ITEMS = 50
MAX_ITEM_CHARS = 300
MAX_TOP_K = 50
MAP_POINTS = 1500  # catalog items drawn on the map (a fixed sample, so the map stays fast for big catalogs)
CONCURRENCY = 8
MAX_VECTOR_FILES = 2 * CONCURRENCY  # user-vector files kept on disk: more than the requests in flight
MAP_COLORS = {"catalog": "#c8c8c8", "your history": "#1f77b4", "recommended": "#ff7f0e", "you": "#000000"}
CATALOG_FILES = ("catalog/items.json", "catalog/item_embeddings.safetensors", "catalog/examples.json")


class FriendlyError(Exception):
    """A problem with the user's input or choice of model, said in words for the UI."""


@dataclass
class LoadedModel:
    name: str
    extractor: object
    texts: list[str]
    item_embeds: torch.Tensor  # (n_items, d): W_i z_i
    examples: list[dict]
    mean: torch.Tensor  # PCA of the item embeddings: centre and the top two directions
    components: torch.Tensor  # (2, d)
    map_index: np.ndarray
    lock: threading.Lock

    def project(self, vectors: torch.Tensor) -> np.ndarray:
        return ((vectors - self.mean) @ self.components.T).numpy()


_MODELS: dict[str, LoadedModel] = {}
_LOCKS_LOCK = threading.Lock()  # held only to look up a model's own lock, never while loading
_LOAD_LOCKS: dict[str, threading.Lock] = {}


def _split_revision(name: str) -> tuple[str, str | None]:
    if "@" in name and not Path(name).exists():
        repo, revision = name.rsplit("@", 1)
        return repo, revision
    return name, None


def _catalog_paths(name: str, revision: str | None) -> list[Path]:
    if Path(name).is_dir():
        paths = [Path(name) / f for f in CATALOG_FILES]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FriendlyError(f"The model folder {name} has no item catalog ({', '.join(missing)} missing). "
                                "Checkpoints from `lmrec-hf train` have one; for an older one run "
                                "`lmrec-hf push --data DATA` or retrain.")
        return paths
    if name.count("/") != 1 or name.startswith((".", "/")):
        raise FriendlyError(f"'{name}' is neither a local checkpoint folder nor a Hub repo id like org/lmrec-demo. "
                            "Set LMREC_MODEL (or the Model box) to one of those.")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return [Path(hf_hub_download(name, f, revision=revision)) for f in CATALOG_FILES]
    except RepositoryNotFoundError as error:
        raise FriendlyError(f"The Hub has no model '{name}' (or it is private). Check the repo id, "
                            "e.g. org/lmrec-demo.") from error
    except RevisionNotFoundError as error:
        raise FriendlyError(f"The model '{name}' has no revision '{revision}'.") from error
    except LocalEntryNotFoundError as error:  # before EntryNotFoundError, its parent: the Hub did not answer
        raise FriendlyError(f"Could not reach the Hub to load '{name}', and it is not in the local cache. Check "
                            "the network (or HF_ENDPOINT), or use a local checkpoint folder.") from error
    except EntryNotFoundError as error:
        raise FriendlyError(f"The model '{name}' has no item catalog (catalog/ in the repo). Push it with "
                            "`lmrec-hf push`, which uploads the catalog.") from error
    except (HfHubHTTPError, OSError) as error:
        raise FriendlyError(f"Could not reach the Hub to load '{name}': {type(error).__name__}. Try again, or "
                            "use a local checkpoint folder.") from error


def load_model(name: str) -> LoadedModel:
    """
    Loads (once) the pipeline and the catalog of a repo id or folder. Each name loads under its own lock, so a slow
    or failing load (an unknown repo id while the Hub client retries) holds only the requests for that name.
    """
    name = (name or "").strip() if isinstance(name, str) or name is None else None
    if not name:
        raise FriendlyError("No model given. Type a Hub repo id like org/lmrec-demo or a checkpoint folder.")
    if name in _MODELS:
        return _MODELS[name]
    with _LOCKS_LOCK:
        lock = _LOAD_LOCKS.setdefault(name, threading.Lock())
    with lock:
        if name in _MODELS:  # loaded by the request this one waited for
            return _MODELS[name]
        repo, revision = _split_revision(name)
        items_path, embeds_path, examples_path = _catalog_paths(repo, revision)
        from transformers import pipeline

        try:
            extractor = pipeline("feature-extraction", model=repo, revision=revision, trust_remote_code=True)
        except (OSError, ValueError) as error:
            raise FriendlyError(f"Could not load the model '{name}': {str(error).splitlines()[0]}") from error
        catalog = json.loads(items_path.read_text(encoding="utf-8"))
        item_embeds = load_file(str(embeds_path))["item_embeds"].float()
        mean = item_embeds.mean(0)
        _, _, v = torch.pca_lowrank(item_embeds - mean, q=2, center=False, niter=4)
        rng = np.random.default_rng(0)
        n = len(catalog["texts"])
        map_index = np.sort(rng.choice(n, size=min(n, MAP_POINTS), replace=False))
        loaded = LoadedModel(name, extractor, catalog["texts"], item_embeds,
                             json.loads(examples_path.read_text(encoding="utf-8")), mean, v.T.contiguous(),
                             map_index, threading.Lock())
        _MODELS[name] = loaded
        return loaded


def parse_history(picked: list[str] | str | None, typed: str | None) -> list[str]:
    """The history, oldest first: the picked catalog items, then the typed titles (one per line). Blank picks and
    blank lines are skipped."""
    if isinstance(picked, str):  # a single pick may come as a bare string
        picked = [picked]
    if not isinstance(typed, (str, type(None))):
        raise FriendlyError(f"The typed titles must be text, got {type(typed).__name__}.")
    for value in picked or []:
        if value is not None and not isinstance(value, str):
            raise FriendlyError(f"A picked item must be an item title, got {type(value).__name__}: {value!r:.60}.")
    history = [p.strip() for p in picked or [] if p and p.strip()]
    history += [line.strip() for line in (typed or "").splitlines() if line.strip()]
    if not history:
        raise FriendlyError("The history is empty. Pick at least one item from the catalog, or type an item title "
                            "(one per line).")
    if len(history) > MAX_HISTORY_ITEMS:
        raise FriendlyError(f"The history has {len(history)} items; this demo takes at most {MAX_HISTORY_ITEMS}. "
                            "Remove some of the oldest ones.")
    for number, text in enumerate(history, start=1):
        if len(text) > MAX_ITEM_CHARS:
            raise FriendlyError(f"Item {number} is {len(text)} characters long; this demo takes at most "
                                f"{MAX_ITEM_CHARS} per item. Shorten it to the item's title.")
    return history


def parse_top_k(top_k) -> int:
    """The slider's value as a whole number from 1 to MAX_TOP_K; anything else is said in words."""
    try:
        value = float(top_k)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or not value.is_integer() or not 1 <= value <= MAX_TOP_K:
        raise FriendlyError(f"How many recommendations: expected a whole number from 1 to {MAX_TOP_K}, got "
                            f"{top_k!r}. Set the slider again.")
    return int(value)


def recommend_for(loaded: LoadedModel, history: list[str], top_k: int, exclude_history: bool):
    with loaded.lock:  # one tokenizer and model, shared by the queue's workers
        user = torch.tensor(loaded.extractor([history], projection="user")[0])  # W_u z_u
        feature = loaded.extractor([history])[0]  # z_u
    scores = loaded.item_embeds @ user
    in_history = set(history)
    seen = {i for i, t in enumerate(loaded.texts) if t in in_history}
    if exclude_history and seen:
        scores[list(seen)] = float("-inf")
    available = len(loaded.texts) - (len(seen) if exclude_history else 0)
    if available < 1:
        raise FriendlyError("Every catalog item is already in the history, so there is nothing left to recommend. "
                            "Untick 'Leave out items already in the history'.")
    top_k = int(max(1, min(MAX_TOP_K, top_k, available)))
    values, index = torch.topk(scores, top_k)
    rows = [[rank, loaded.texts[i], round(float(v), 4), "yes" if i in seen else ""]
            for rank, (v, i) in enumerate(zip(values.tolist(), index.tolist()), start=1)]
    return rows, user, feature, index.tolist(), sorted(seen)


def _map(loaded: LoadedModel, user: torch.Tensor, top: list[int], seen: list[int]) -> pd.DataFrame:
    xy = loaded.project(loaded.item_embeds)
    marked = set(top) | set(seen)
    background = [i for i in loaded.map_index.tolist() if i not in marked]
    frames = [pd.DataFrame({"x": xy[background, 0], "y": xy[background, 1], "kind": "catalog",
                            "item": [loaded.texts[i] for i in background]})]
    for kind, index in (("your history", seen), ("recommended", top)):
        if index:
            frames.append(pd.DataFrame({"x": xy[index, 0], "y": xy[index, 1], "kind": kind,
                                        "item": [loaded.texts[i] for i in index]}))
    # The user vector lives beside the item vectors (scores are dot products): its direction, at the items' mean
    # length, placed on the same two axes.
    direction = user / user.norm() * loaded.item_embeds.norm(dim=1).mean()
    you = loaded.project(direction.unsqueeze(0))
    frames.append(pd.DataFrame({"x": you[:, 0], "y": you[:, 1], "kind": "you", "item": "your history"}))
    return pd.concat(frames, ignore_index=True)


_VECTOR_DIR: Path | None = None
_VECTOR_LOCK = threading.Lock()


def _vector_file(loaded: LoadedModel, history: list[str], user: torch.Tensor, feature) -> str:
    """
    The user vector as a JSON file for the download box. Files go to one folder of this Space, named by their
    content (a repeated request reuses its file); the newest MAX_VECTOR_FILES are kept (Gradio copies each into its
    own cache when the response is sent, so an older one is no longer needed), and the folder goes when the Space
    exits.
    """
    global _VECTOR_DIR
    payload = {"model": loaded.name, "history": history, "user_feature": [round(x, 6) for x in feature],
               "user_embedding": [round(x, 6) for x in user.tolist()],
               "note": "user_feature is z_u (the EOS hidden state); user_embedding is W_u z_u, which scores items by "
                       "dot product with catalog/item_embeddings.safetensors."}
    text = json.dumps(payload)
    with _VECTOR_LOCK:
        if _VECTOR_DIR is None or not _VECTOR_DIR.is_dir():
            _VECTOR_DIR = Path(tempfile.mkdtemp(prefix="lmrec_space_"))
        path = _VECTOR_DIR / f"lmrec_user_{hashlib.sha1(text.encode('utf-8')).hexdigest()[:16]}.json"
        path.write_text(text, encoding="utf-8")
        files = sorted(_VECTOR_DIR.glob("lmrec_user_*.json"), key=lambda p: p.stat().st_mtime_ns)
        for old in files[:-MAX_VECTOR_FILES]:
            old.unlink(missing_ok=True)
    return str(path)


@atexit.register
def remove_vector_files() -> None:
    """Removes this Space's folder of user-vector files (at exit)."""
    global _VECTOR_DIR
    with _VECTOR_LOCK:
        if _VECTOR_DIR is not None:
            shutil.rmtree(_VECTOR_DIR, ignore_errors=True)
        _VECTOR_DIR = None


def recommend(model_name: str, picked: list[str], typed: str, top_k: float, exclude_history: bool):
    """The Recommend button: (table, map, user-vector file, status)."""
    try:
        loaded = load_model(model_name)
        history = parse_history(picked, typed)
        rows, user, feature, top, seen = recommend_for(loaded, history, parse_top_k(top_k), bool(exclude_history))
    except FriendlyError as error:
        raise gr.Error(str(error), print_exception=False) from None
    except ValueError as error:  # the pipeline's own checks on a history (e.g. an empty item), already in words
        raise gr.Error(f"The history could not be read: {error}", print_exception=False) from None
    catalog = set(loaded.texts)
    unseen = [t for t in history if t not in catalog]
    status = (f"{len(history)} items in the history" + (f", {len(unseen)} of them typed titles not in the catalog "
                                                        "(cold start: they are scored as text)" if unseen else "")
              + f". Top {len(rows)} of {len(loaded.texts):,} items.")
    table = pd.DataFrame(rows, columns=["rank", "item", "score", "in history"])
    return table, _map(loaded, user, top, seen), _vector_file(loaded, history, user, feature), status


def switch_model(model_name: str):
    """The Load button: fills the catalog and the examples for the chosen model."""
    try:
        loaded = load_model(model_name)
    except FriendlyError as error:
        raise gr.Error(str(error), print_exception=False) from None
    labels = [_example_label(e) for e in loaded.examples]
    return (gr.update(choices=loaded.texts, value=[]), gr.update(choices=labels, value=None),
            f"Loaded {loaded.name}: {len(loaded.texts):,} items.")


def _example_label(example: dict) -> str:
    return f"Test user {example['user_id']} ({len(example['history'])} items)"


def use_example(model_name: str, label: str | None):
    if not label:
        return gr.update(), ""
    try:
        loaded = load_model(model_name)
    except FriendlyError as error:
        raise gr.Error(str(error), print_exception=False) from None
    for example in loaded.examples:
        if _example_label(example) == label:
            catalog = set(loaded.texts)
            return gr.update(value=[t for t in example["history"] if t in catalog]), ""
    return gr.update(), ""


def build_demo(model_name: str = DEFAULT_MODEL) -> gr.Blocks:
    try:
        loaded = load_model(model_name)
        texts, examples, status = loaded.texts, loaded.examples, f"Loaded {loaded.name}: {len(loaded.texts):,} items."
    except FriendlyError as error:  # the page still opens and says what is wrong
        texts, examples, status = [], [], f"**Could not load the default model.** {error}"
    # delete_cache: Gradio removes its copies of served files (the user vectors) after an hour.
    with gr.Blocks(title="LMRec recommendations", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# LMRec: recommendations from a history written as text\n"
                    "Pick items you bought or viewed (oldest first), or type item titles, then **Recommend**. "
                    "Typed titles need not be in the catalog: everything is text, so new items work too.")
        with gr.Row():
            model_box = gr.Textbox(value=model_name, label="Model (Hub repo id or local folder)", scale=4,
                                   elem_id="model")
            load_button = gr.Button("Load", scale=1, elem_id="load")
        with gr.Row():
            with gr.Column(scale=3):
                example_box = gr.Dropdown(choices=[_example_label(e) for e in examples],
                                          label="Start from a real test-split history", value=None,
                                          elem_id="examples")
                picked = gr.Dropdown(choices=texts, multiselect=True, filterable=True, value=[],
                                     label="History from the catalog (type to search)", elem_id="picked")
                typed = gr.Textbox(lines=3, label="Or type item titles, one per line (added after the picked ones)",
                                   elem_id="typed")
                with gr.Row():
                    top_k = gr.Slider(1, MAX_TOP_K, value=10, step=1, label="How many recommendations",
                                      elem_id="top_k")
                    exclude = gr.Checkbox(value=True, label="Leave out items already in the history",
                                          elem_id="exclude")
                button = gr.Button("Recommend", variant="primary", elem_id="recommend")
                status_box = gr.Markdown(status, elem_id="status")
            with gr.Column(scale=4):
                table = gr.Dataframe(headers=["rank", "item", "score", "in history"], label="Recommendations",
                                     elem_id="results", interactive=False)
                item_map = gr.ScatterPlot(x="x", y="y", color="kind", tooltip=["item", "kind"], height=360,
                                          color_map=MAP_COLORS,
                                          label="Item embeddings (PCA) with your position", elem_id="map")
                vector = gr.File(label="Your user vector (JSON)", elem_id="vector")
        button.click(recommend, [model_box, picked, typed, top_k, exclude], [table, item_map, vector, status_box],
                     api_name="recommend")
        load_button.click(switch_model, [model_box], [picked, example_box, status_box], api_name="load")
        example_box.change(use_example, [model_box, example_box], [picked, typed], api_name="example")
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    return demo


if __name__ == "__main__":
    build_demo().launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
