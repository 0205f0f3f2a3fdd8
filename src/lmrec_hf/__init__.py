"""lmrec_hf: LMRec (Shin et al., "Pivotal Role of Language Modeling in Recommender Systems") on transformers.

Importing the package registers LMRec with the Auto classes, so `AutoConfig`, `AutoModel` and
`AutoModelForCausalLM` resolve "lmrec" checkpoints, and `save_pretrained` writes the custom-code files that let
a process without this package load them with `trust_remote_code=True`.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_lmrec import LMREC_PRESETS, LMRecConfig, catalog_fingerprint
from .formatting_lmrec import format_history, format_item
from .losses import RecObjective
from .modeling_lmrec import (
    LMRecForJointModeling,
    LMRecJointOutput,
    LMRecModel,
    LMRecModelOutput,
    LMRecPreTrainedModel,
)
from .pipeline_lmrec import LMRecFeatureExtractionPipeline
from .tokenization_lmrec import train_tokenizer

__version__ = "0.1.0"

AutoConfig.register("lmrec", LMRecConfig, exist_ok=True)
AutoModel.register(LMRecConfig, LMRecModel, exist_ok=True)
AutoModelForCausalLM.register(LMRecConfig, LMRecForJointModeling, exist_ok=True)
# register_for_auto_class is what makes save_pretrained copy the code files and write `auto_map`.
LMRecConfig.register_for_auto_class()
LMRecModel.register_for_auto_class("AutoModel")
LMRecForJointModeling.register_for_auto_class("AutoModelForCausalLM")

__all__ = [
    "LMREC_PRESETS",
    "LMRecConfig",
    "LMRecModel",
    "LMRecForJointModeling",
    "LMRecPreTrainedModel",
    "LMRecModelOutput",
    "LMRecJointOutput",
    "LMRecFeatureExtractionPipeline",
    "RecObjective",
    "catalog_fingerprint",
    "format_history",
    "format_item",
    "train_tokenizer",
]
