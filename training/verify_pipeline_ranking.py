"""Checks that the feature-extraction pipeline reproduces a trained checkpoint's ranking.

Loads MODEL_DIR through `pipeline("feature-extraction", trust_remote_code=True)` in a process where lmrec_hf is not
importable, embeds test histories with projection="user" and every catalog item with projection="item", ranks the
catalog by dot product, and compares with `lmrec_hf.evaluation` on the same users. Prints one line per check.

    .venv/bin/python training/verify_pipeline_ranking.py outputs/demo/model --data online-retail --users 500
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--data", default="online-retail")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--max-history-items", type=int, default=50, help="most recent items kept per history, as in "
                        "`lmrec-hf evaluate`")
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmrec_hf import format_history, format_item
    from lmrec_hf.data import eval_pairs, history_items, load_data, resolve_data_path
    from lmrec_hf.evaluation import embed_texts, ranks_from_scores

    data = load_data(resolve_data_path(args.data))
    pairs = eval_pairs(data, "test")
    rows, positions = pairs["user_row"][: args.users], pairs["position"][: args.users]
    histories = [[data.item_texts[i] for i in history_items(data, r, p, args.max_history_items)]
                 for r, p in zip(rows, positions)]
    items = [format_item(t) for t in data.item_texts]
    targets = torch.tensor([data.sequences[r][p] for r, p in zip(rows, positions)])

    model = AutoModelForCausalLM.from_pretrained(args.model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    length = model.config.n_positions
    users = embed_texts(model, tokenizer, [format_history(h) for h in histories], "user", max_length=length)
    library_scores = users @ embed_texts(model, tokenizer, items, "item", max_length=length).T

    with tempfile.TemporaryDirectory() as tmp:
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({"histories": histories, "items": items}))
        script = (
            "import sys, json, torch\n"
            "sys.modules['lmrec_hf'] = None\n"
            "from transformers import pipeline\n"
            f"req = json.load(open({str(request)!r}))\n"
            f"fe = pipeline('feature-extraction', model={args.model_dir!r}, trust_remote_code=True)\n"
            "u = torch.tensor(fe(req['histories'], projection='user', batch_size=32))\n"
            "i = torch.tensor(fe(req['items'], projection='item', batch_size=64))\n"
            f"torch.save(u @ i.T, {str(Path(tmp) / 'scores.pt')!r})\n"
        )
        subprocess.run([sys.executable, "-c", script], check=True, stdin=subprocess.DEVNULL)
        pipeline_scores = torch.load(Path(tmp) / "scores.pt")

    same_top10 = (library_scores.topk(10).indices == pipeline_scores.topk(10).indices).all(dim=1).float().mean()
    ranks_lib = ranks_from_scores(library_scores, targets)
    ranks_pipe = ranks_from_scores(pipeline_scores, targets)
    print(f"users: {len(rows)}, items: {len(items)}")
    print(f"max |score difference|: {(library_scores - pipeline_scores).abs().max().item():.2e}")
    print(f"users whose top-10 list is identical: {same_top10.item():.4f}")
    print(f"users whose target rank is identical: {(ranks_lib == ranks_pipe).float().mean().item():.4f}")
    print(f"Recall@10 library {(ranks_lib < 10).float().mean().item():.4f}, "
          f"pipeline {(ranks_pipe < 10).float().mean().item():.4f}")


if __name__ == "__main__":
    main()
