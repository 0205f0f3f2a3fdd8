"""
Publishing a checkpoint folder to the Hugging Face Hub: weights (safetensors), tokenizer, the custom-code files, the
rendered model card and the item catalog, in one commit. Reads only from the folder; never writes to it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from .catalog import build_catalog, example_items, read_catalog_files
from .checkpoints import check_checkpoint_dir
from .model_card import LMRecModelCardData, render_model_card, validate_model_card

logger = logging.getLogger(__name__)

REQUIRED_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "configuration_lmrec.py",
                  "modeling_lmrec.py", "pipeline_lmrec.py", "formatting_lmrec.py")
OPTIONAL_FILES = ("special_tokens_map.json", "generation_config.json", "model.safetensors.index.json")


class HubPushError(RuntimeError):
    """A push that could not happen; the message names the fix. Nothing was uploaded by the failing step, and the
    local folder is unchanged."""


def files_to_upload(model_dir: Path) -> list[Path]:
    """The files of a checkpoint folder that go to the Hub: never training_args.bin (a pickle), checkpoints or the
    card files (the card is rendered afresh)."""
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).exists()]
    weights = sorted(model_dir.glob("model*.safetensors"))
    if not weights:
        missing.append("model.safetensors")
    if missing:
        raise HubPushError(
            f"{model_dir} is not a complete LMRec checkpoint: it lacks {missing}. Expected the folder that "
            "`lmrec-hf train` writes as OUTPUT_DIR/model (model.save_pretrained plus tokenizer.save_pretrained)."
        )
    return [model_dir / n for n in REQUIRED_FILES] + weights + \
        [model_dir / n for n in OPTIONAL_FILES if (model_dir / n).exists()]


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection and timeout errors of whichever HTTP client huggingface_hub uses (httpx2 in 2.x, httpx in 1.x)."""
    errors: list[type[BaseException]] = [OSError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(__import__(module).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def _resolve_token(token: str | None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubPushError(
            "No Hugging Face token was found, and pushing needs one with write access. Set HF_TOKEN=hf_..., run "
            "`hf auth login`, or pass --token. Nothing was uploaded."
        )
    return token


def prepare_push(model_dir: str | Path, repo_id: str, data: str | None = None, eval_results: list[str] = (),
                 with_catalog: bool = True) -> dict[str, bytes | Path]:
    """
    Everything one push uploads, as {path in the repo: local file or bytes}, built without touching the Hub or the
    folder: the checkpoint files, the catalog (saved beside the checkpoint, or built from `data`), and README.md
    rendered from lmrec_card.json plus the `eval_results` records, validated.
    """
    try:
        model_dir = check_checkpoint_dir(model_dir)
    except (FileNotFoundError, ValueError) as error:
        raise HubPushError(f"{error} Nothing was uploaded.") from error
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise HubPushError(f"--repo-id must look like ORG/NAME, got {repo_id!r}.")
    uploads: dict[str, bytes | Path] = {p.name: p for p in files_to_upload(model_dir)}

    catalog = read_catalog_files(model_dir) if with_catalog else None
    if with_catalog and catalog is None:
        if data is None:
            raise HubPushError(
                f"{model_dir} has no catalog/ (item texts and embeddings), which the Space needs. Pass --data with "
                "the model's data set so the catalog is built now, or --no-catalog to push without one."
            )
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .data import load_data, resolve_data_path

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        catalog = build_catalog(model, tokenizer, load_data(resolve_data_path(data)))
    uploads.update(catalog or {})

    card_data = LMRecModelCardData.from_model_dir(model_dir)
    card_data.repo_id = repo_id
    card_data.model_name = repo_id.split("/")[1]
    card_data.has_catalog = bool(catalog)
    if catalog:
        card_data.example_items = card_data.example_items or example_items(catalog)
    for path in eval_results:
        try:
            record = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise HubPushError(f"Evaluation record {path} could not be read as JSON ({error}). Pass a file that "
                               "`lmrec-hf evaluate --output` wrote.") from error
        card_data.add_evaluation(record)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
    card = render_model_card(card_data, config)
    validate_model_card(card)
    uploads["README.md"] = str(card).encode("utf-8")
    uploads["lmrec_card.json"] = json.dumps(asdict(card_data), indent=2).encode()
    return uploads


def push_to_hub(model_dir: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
                token: str | None = None, data: str | None = None, eval_results: list[str] = (),
                with_catalog: bool = True, commit_message: str | None = None) -> str:
    """
    Uploads a checkpoint folder to `repo_id` in one commit, creating the repo (and the `revision` branch) if needed.
    Respects HF_ENDPOINT and the token from HF_TOKEN or `hf auth login`. Returns the commit URL.

    Example:
    ```python
    >>> push_to_hub("outputs/demo/model", "org/lmrec-demo")
    'https://huggingface.co/org/lmrec-demo/commit/...'
    ```
    """
    token = _resolve_token(token)
    uploads = prepare_push(model_dir, repo_id, data=data, eval_results=eval_results, with_catalog=with_catalog)
    return _commit(uploads, repo_id, model_dir, token, private, revision, commit_message)


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "lmrec_adapter.json")


def prepare_adapter_push(adapter_dir: str | Path, base_repo_id: str | None = None) -> dict[str, bytes | Path]:
    """
    What an adapter push uploads: the adapter (LoRA matrices + heads), its facts, the tokenizer and peft's README,
    with the base renamed to `base_repo_id` in the uploaded configs (the folder keeps its local base). Without it the
    base must already be a Hub repo id, since a local path means nothing to whoever loads the adapter.
    """
    adapter_dir = Path(adapter_dir)
    missing = [name for name in ADAPTER_FILES if not (adapter_dir / name).exists()]
    if missing:
        raise HubPushError(f"{adapter_dir} is not an LMRec adapter folder: it lacks {missing}. Pass the folder "
                           "`lmrec-hf finetune --lora` saves as OUTPUT_DIR/adapter. Nothing was uploaded.")
    uploads: dict[str, bytes | Path] = {p.name: p for p in sorted(adapter_dir.iterdir())
                                        if p.is_file() and p.suffix in (".json", ".safetensors", ".md")}
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    facts = json.loads((adapter_dir / "lmrec_adapter.json").read_text())
    base = base_repo_id or config.get("base_model_name_or_path", "")
    if base_repo_id is None and (Path(base).exists() or base.count("/") != 1):
        raise HubPushError(f"The adapter's base is {base!r}, a local path (or not ORG/NAME), which nobody who loads "
                           "the adapter from the Hub can reach. Push the base first (`lmrec-hf push`), then pass its "
                           "repo id with --base-repo-id ORG/NAME. Nothing was uploaded.")
    uploads["adapter_config.json"] = json.dumps({**config, "base_model_name_or_path": base}, indent=2).encode()
    uploads["lmrec_adapter.json"] = json.dumps({**facts, "base_model": base}, indent=2).encode()
    return uploads


def push_adapter(adapter_dir: str | Path, repo_id: str, base_repo_id: str | None = None, *, private: bool = False,
                 revision: str | None = None, token: str | None = None, commit_message: str | None = None) -> str:
    """
    Uploads a LoRA adapter folder to its own repo, naming `base_repo_id` as its base. It then loads on that base by
    repo id: `lmrec_hf.adapters.load_adapter(repo_id)`, or `peft.AutoPeftModel.from_pretrained(repo_id,
    trust_remote_code=True)` without lmrec_hf. Returns the commit URL.
    """
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise HubPushError(f"--repo-id must look like ORG/NAME, got {repo_id!r}.")
    token = _resolve_token(token)
    uploads = prepare_adapter_push(adapter_dir, base_repo_id)
    return _commit(uploads, repo_id, adapter_dir, token, private, revision, commit_message)


def _commit(uploads: dict[str, bytes | Path], repo_id: str, model_dir, token: str, private: bool,
            revision: str | None, commit_message: str | None) -> str:
    """One commit of `uploads` to `repo_id` (created if needed), with the Hub's errors named."""
    from huggingface_hub import CommitOperationAdd, HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    endpoint = constants.ENDPOINT
    api = HfApi(endpoint=endpoint, token=token)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=content if isinstance(content, bytes)
                                     else str(content)) for name, content in sorted(uploads.items())]
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.create_commit(repo_id, operations, commit_message=commit_message or f"Upload {Path(model_dir).name}"
                                 " with lmrec-hf", revision=revision)
    except OfflineModeIsEnabled as error:
        raise HubPushError("HF_HUB_OFFLINE is set, so nothing can be pushed. Unset HF_HUB_OFFLINE and push again; "
                           f"{model_dir} is unchanged.") from error
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status in (401, 403):
            raise HubPushError(
                f"The Hub at {endpoint} refused the token ({status}) for {repo_id}. Use a token with write access to "
                f"that namespace (HF_TOKEN or `hf auth login`); {model_dir} is unchanged."
            ) from error
        raise HubPushError(f"The Hub at {endpoint} answered {status} while pushing {repo_id}: {error}. "
                           f"{model_dir} is unchanged.") from error
    except _transport_errors() as error:
        raise HubPushError(
            f"Could not reach the Hub at {endpoint} ({type(error).__name__}: {error}). Check the network, or set "
            f"HF_ENDPOINT to a Hub you can reach; nothing was uploaded and {model_dir} is unchanged."
        ) from error
    logger.info("Pushed %d files to %s at %s", len(operations), repo_id, info.oid)
    return info.commit_url

