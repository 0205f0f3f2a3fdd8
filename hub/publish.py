"""
Publishes the checkpoints listed in hub/checkpoints.yaml whose folders exist, each with its card and catalog, and
says how to train the ones that do not exist yet. HF_ENDPOINT and HF_TOKEN (or `hf auth login`) are honoured.

    python hub/publish.py                 # push every trained checkpoint
    python hub/publish.py --dry-run       # list what would be pushed, touch nothing
    python hub/publish.py --only lmrec-demo --org my-org
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from lmrec_hf.hub import HubPushError, prepare_push, push_to_hub

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--list", default=str(ROOT / "hub" / "checkpoints.yaml"))
    parser.add_argument("--org", default=None, help="organization (default: the one in the list)")
    parser.add_argument("--only", nargs="*", default=None, help="names to publish (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="build every card and catalog, upload nothing")
    args = parser.parse_args(argv)

    listing = yaml.safe_load(Path(args.list).read_text())
    org = args.org or listing["organization"]
    failures = 0
    for entry in listing["checkpoints"]:
        if args.only and entry["name"] not in args.only:
            continue
        repo_id = f"{org}/{entry['name']}"
        model_dir = ROOT / entry["model_dir"]
        if not model_dir.is_dir():
            where = "on a GPU machine" if entry.get("gpu") else "here"
            print(f"skip {repo_id}: {entry['model_dir']} does not exist; train it {where} with "
                  f"`lmrec-hf train {entry['recipe']}`")
            continue
        records = [str(ROOT / r) for r in entry.get("eval_results", []) if (ROOT / r).exists()]
        data = entry.get("data")
        try:
            if args.dry_run:
                uploads = prepare_push(model_dir, repo_id, data=data, eval_results=records)
                print(f"would push {repo_id}: {len(uploads)} files ({', '.join(sorted(uploads))})")
                continue
            url = push_to_hub(model_dir, repo_id, private=bool(entry.get("private")), data=data,
                              eval_results=records)
            print(f"pushed {repo_id}: {url}")
        except HubPushError as error:
            failures += 1
            print(f"failed {repo_id}: {error}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
