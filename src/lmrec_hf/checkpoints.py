"""
Checkpoint folders, checked before anything loads them: a saved model (`OUTPUT_DIR/model`, a Hub download) or a
Trainer checkpoint to resume from (`OUTPUT_DIR/checkpoint-N`). Each check names the folder or file, what is wrong,
and what to pass instead, so that transformers, safetensors or sentencepiece never report it their own way.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

# The config fields that fix the shape of the weights: a resumed run must build the same model.
SHAPE_FIELDS = ("n_layer", "n_embd", "n_head", "n_inner", "vocab_size", "n_positions", "projection_dim")


def check_checkpoint_dir(path: str | Path) -> Path:
    """
    The folder, if it holds a readable config.json; else a FileNotFoundError or ValueError that says what to pass.

    Example:
    ```python
    >>> check_checkpoint_dir("outputs/demo/model")
    PosixPath('outputs/demo/model')
    ```
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Model folder {path} does not exist. Pass the folder `lmrec-hf train` saved, "
                                "e.g. outputs/demo/model.")
    if path.is_file():
        raise ValueError(f"{path} is a file, not a checkpoint folder. Pass the folder that holds config.json and "
                         f"model.safetensors (here perhaps {path.parent}).")
    config = path / "config.json"
    if not config.exists():
        present = sorted(p.name for p in path.iterdir())[:8]
        raise ValueError(f"{path} is not an LMRec checkpoint folder: it has no config.json (it holds "
                         f"{present or 'nothing'}). Pass the folder `lmrec-hf train` saves as OUTPUT_DIR/model.")
    read_config(config)
    return path


def read_config(config: Path) -> dict:
    try:
        values = json.loads(config.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{config} is not UTF-8 text; it is damaged. Copy the checkpoint again.") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{config} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); the "
                         "file may be truncated by an interrupted copy or save. Copy the checkpoint again, or "
                         "save it again with save_pretrained.") from error
    if not isinstance(values, dict):
        raise ValueError(f"{config} must hold a JSON object of config fields, got {type(values).__name__}.")
    return values


def resume_checkpoint(output_dir: str | Path, resume: str | bool | None) -> Path | None:
    """
    The Trainer checkpoint a run resumes from, checked: `resume` true (or "true") means the newest
    `output_dir/checkpoint-N`, a path means that folder, and None, false or "" mean no resume. The folder's config
    and weights must be readable; a missing optimizer.pt or scheduler.pt is warned about (the run goes on, with
    that state fresh).
    """
    from transformers.trainer_utils import get_last_checkpoint

    if resume is None or resume is False or str(resume).strip().lower() in ("", "false", "no", "none"):
        return None
    if resume is True or str(resume).strip().lower() == "true":
        last = get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None
        if last is None:
            raise ValueError(f"resume_from_checkpoint=true, but {output_dir} has no checkpoint-N folder to resume "
                             "from. Pass the checkpoint's path, or leave resume_from_checkpoint out to start afresh.")
        checkpoint = Path(last)
    else:
        checkpoint = Path(resume)
    if is_adapter_checkpoint(checkpoint):  # a LoRA run's Trainer checkpoint: the adapter, no config.json
        _check_weights(checkpoint, "adapter_model*.safetensors")
    else:
        check_checkpoint_dir(checkpoint)
        _check_weights(checkpoint)
    for name, what in (("optimizer.pt", "optimizer state (AdamW moments)"),
                       ("scheduler.pt", "learning-rate schedule")):
        if not (checkpoint / name).exists():
            logger.warning("%s has no %s: the %s starts fresh, so the resumed run will not match an uninterrupted "
                           "one.", checkpoint, name, what)
    return checkpoint


def is_adapter_checkpoint(checkpoint: str | Path) -> bool:
    """A folder that holds a LoRA adapter (adapter_config.json) and no model config: what the Trainer saves as
    `checkpoint-N` of a LoRA run."""
    checkpoint = Path(checkpoint)
    return (checkpoint / "adapter_config.json").exists() and not (checkpoint / "config.json").exists()


def check_resume_matches(checkpoint: Path, lora_r: int, lora_targets: str | None) -> None:
    """
    Refuses a resume whose recipe and checkpoint disagree on LoRA: an adapter checkpoint resumed without `lora_r`
    (or with another rank, or other target layers: `lora_targets` is the adapter's `target_modules` pattern), or a
    full checkpoint resumed with `lora_r`.
    """
    if not is_adapter_checkpoint(checkpoint):
        if lora_r:
            raise ValueError(f"{checkpoint} holds a whole model, but the recipe asks for LoRA (lora_r={lora_r}). "
                             "Resume it without lora_r, or start the LoRA run in a new output_dir.")
        return
    saved = read_config(checkpoint / "adapter_config.json")
    if not lora_r:
        raise ValueError(f"{checkpoint} holds a LoRA adapter (r={saved.get('r')}), but the recipe trains the whole "
                         f"model. Resume it with lora_r={saved.get('r')} and the same init_from.")
    if saved.get("r") != lora_r or (lora_targets is not None and saved.get("target_modules") != lora_targets):
        raise ValueError(f"{checkpoint} holds a LoRA adapter of r={saved.get('r')} on {saved.get('target_modules')!r}, "
                         f"but the recipe asks for r={lora_r} on {lora_targets!r}. Resume with the adapter's lora_r "
                         "and lora_targets, or start a new output_dir.")


def _check_weights(checkpoint: Path, pattern: str = "model*.safetensors") -> None:
    from safetensors import safe_open

    weights = sorted(checkpoint.glob(pattern))
    if not weights:
        name = pattern.replace("*", "")
        raise ValueError(f"{checkpoint} has no {name} to resume from. {_earlier(checkpoint)}")
    for file in weights:
        try:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():
                    handle.get_slice(key)
        except Exception as error:  # safetensors raises its own SafetensorError (and OSError) for a damaged file
            raise ValueError(f"{file} cannot be read ({type(error).__name__}: {error}); it may be truncated by a "
                             f"kill during the save. {_earlier(checkpoint)}") from error


def _earlier(checkpoint: Path) -> str:
    others = sorted((p.name for p in checkpoint.parent.glob("checkpoint-*") if p != checkpoint),
                    key=lambda name: int(name.split("-")[-1]) if name.split("-")[-1].isdigit() else -1)
    if others:
        return f"Resume from another checkpoint ({', '.join(others)}) or start afresh."
    return "Start afresh (leave resume_from_checkpoint out, or pick a new output_dir)."


def check_same_shape(checkpoint: Path, config) -> None:
    """Refuses a resume whose recipe builds a model of another shape than the checkpoint's."""
    saved = read_config(checkpoint / "config.json")
    if all(saved.get(name) == getattr(config, name, None) for name in SHAPE_FIELDS):
        return
    was = ", ".join(f"{name}={saved.get(name)}" for name in SHAPE_FIELDS)
    now = ", ".join(f"{name}={getattr(config, name, None)}" for name in SHAPE_FIELDS)
    raise ValueError(f"{checkpoint} was trained with {was}, but the recipe asks for {now}. Resume with the recipe "
                     "the checkpoint was trained with (the same preset and sizes), or start a new output_dir.")


def load_resume_tokenizer(checkpoint: Path):
    """The tokenizer saved in a Trainer checkpoint, which a resumed run must use; None if it has none."""
    from transformers import AutoTokenizer

    if not (checkpoint / "tokenizer.json").exists():
        logger.warning("%s has no tokenizer.json (a checkpoint from before the trainer saved it); the tokenizer is "
                       "trained again from the recipe, and must come out the same for the resumed weights to fit.",
                       checkpoint)
        return None
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    logger.warning("Resuming from %s: loaded the tokenizer saved in it (%d tokens) instead of training one; the "
                   "recipe's vocab_size, tokenizer_texts and tokenizer_source do not apply to a resumed run.",
                   checkpoint, len(tokenizer))
    return tokenizer
