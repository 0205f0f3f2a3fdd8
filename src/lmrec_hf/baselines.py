"""
Baselines for the experiment grid, evaluated with the same protocol as LMRec (`evaluation.evaluate_scorer`):
an ID-based sequential transformer in the SASRec / BST style, written on transformers' GPT-2 blocks over item-id
embeddings. (RecBole's SASRec could not share this environment: it needs numpy<2 and pandas<3; see docs/results.md.)
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, GPT2Model, Trainer, TrainingArguments

from .data import RecData, cold_items, split_sequences
from .evaluation import evaluate_scorer

logger = logging.getLogger(__name__)


class IDTransformerRecommender(nn.Module):
    """
    SASRec-style next-item model: item-id embeddings (tied input and output) through causal GPT-2 blocks, trained
    with a softmax over every catalog item at every position of each training sequence.

    Example:
    ```python
    >>> model = IDTransformerRecommender(n_items=4385, n_embd=64, n_layer=2, n_head=2, max_len=50)
    >>> scores = model.score(histories)  # (len(histories), 4385)
    ```
    """

    def __init__(self, n_items: int, n_embd: int = 64, n_layer: int = 2, n_head: int = 2, max_len: int = 50,
                 dropout: float = 0.2):
        super().__init__()
        if n_items < 2 or n_embd % n_head:
            raise ValueError(f"IDTransformerRecommender needs n_items >= 2 and n_embd divisible by n_head; got "
                             f"n_items={n_items}, n_embd={n_embd}, n_head={n_head}.")
        self.n_items, self.max_len, self.pad_id = n_items, max_len, n_items
        self.config = GPT2Config(vocab_size=n_items + 1, n_positions=max_len, n_embd=n_embd, n_layer=n_layer,
                                 n_head=n_head, n_inner=4 * n_embd, resid_pdrop=dropout, embd_pdrop=dropout,
                                 attn_pdrop=dropout, bos_token_id=n_items, eos_token_id=n_items)
        self.trunk = GPT2Model(self.config)

    def forward(self, input_ids, attention_mask, labels=None):
        hidden = self.trunk(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, d)
        logits = hidden @ self.trunk.wte.weight[: self.n_items].T  # (B, T, n_items)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return {"loss": loss, "logits": logits}

    @torch.no_grad()
    def share_cold_embedding(self, cold: set[int] | list[int]) -> None:
        """
        The usual ID baseline for items unseen in training (Recformer's protocol): every cold item gets one shared
        "[cold]" embedding, as input and as candidate. No cold item occurs in training, so it cannot be learned; it is
        the mean of the trained item embeddings. Cold items then tie with each other, and ties count against the
        model.
        """
        cold = sorted(cold)
        if not cold:
            return
        weight = self.trunk.wte.weight  # (n_items + 1, d), the last row padding
        warm = torch.ones(self.n_items, dtype=torch.bool)
        warm[cold] = False
        weight[cold] = weight[: self.n_items][warm].mean(dim=0)

    @torch.no_grad()
    def score(self, histories: list[list[int]]) -> torch.Tensor:
        """Scores of every item after each history (right-padded; the last real position is read)."""
        histories = [h[-self.max_len:] or [self.pad_id] for h in histories]
        width = max(map(len, histories))
        ids = torch.full((len(histories), width), self.pad_id)
        mask = torch.zeros_like(ids)
        for i, h in enumerate(histories):
            ids[i, : len(h)] = torch.tensor(h)
            mask[i, : len(h)] = 1
        device = self.trunk.wte.weight.device
        hidden = self.trunk(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        last = hidden[torch.arange(len(histories)), mask.sum(1) - 1]  # (B, d)
        return (last @ self.trunk.wte.weight[: self.n_items].T).float().cpu()


class _Sequences(torch.utils.data.Dataset):
    def __init__(self, sequences: list[list[int]]):
        self.sequences = sequences

    def __len__(self):
        return len(self.sequences)

    def __getitem__(self, index):
        return {"items": self.sequences[index]}


def _collate(pad_id: int):
    def collate(batch):
        width = max(len(b["items"]) for b in batch) - 1
        ids = torch.full((len(batch), width), pad_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            seq = b["items"]
            ids[i, : len(seq) - 1] = torch.tensor(seq[:-1])
            labels[i, : len(seq) - 1] = torch.tensor(seq[1:])
            mask[i, : len(seq) - 1] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def train_id_transformer(data: RecData, args: TrainingArguments, n_embd: int = 64, n_layer: int = 2,
                         n_head: int = 2, max_len: int = 50, dropout: float = 0.2,
                         callbacks=None) -> IDTransformerRecommender:
    """Trains the ID transformer on every user's training part (the last `max_len` + 1 items) with the Trainer
    (and its `callbacks`)."""
    torch.manual_seed(args.seed)
    sequences = [seq[-(max_len + 1):] for _, seq in split_sequences(data, "train") if len(seq) >= 2]
    if not sequences:
        raise ValueError(f"{data.name}: no user has two training items, so the ID transformer has nothing to learn.")
    model = IDTransformerRecommender(len(data.items), n_embd, n_layer, n_head, max_len, dropout)
    trainer = Trainer(model=model, args=args, train_dataset=_Sequences(sequences), data_collator=_collate(model.pad_id),
                      callbacks=callbacks)
    trainer.train()
    model.share_cold_embedding(cold_items(data))  # held-out items (hold_out_cold_items) share one "[cold]" vector
    return model.eval()


def evaluate_id_transformer(model: IDTransformerRecommender, data: RecData, split: str = "test", **kwargs) -> dict:
    """Leave-one-out metrics of the ID transformer, with the same protocol and options as `evaluate_model`."""
    model.eval()
    sequences = data.sequences

    def score_users(rows, positions):
        return model.score([sequences[r][:p] for r, p in zip(rows, positions)])

    return evaluate_scorer(score_users, data, split, **kwargs)
