"""Small fixture files written by the tests (never the shared data in fast tests)."""

import gzip
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


# Three users: 0 has items 0..5, 1 has 6,7,0,1,2, 2 has 3,4,5 (three items: no train rows).
SEQUENCES = {"0": [0, 1, 2, 3, 4, 5], "1": [6, 7, 0, 1, 2], "2": [3, 4, 5]}


def write_unisrec(directory: Path, name="Toy", gz_train=False, texts=None):
    directory.mkdir(parents=True, exist_ok=True)
    texts = texts or {i: f"item  {i}   text" for i in range(8)}
    (directory / f"{name}.item2index").write_text("".join(f"A{i}\t{i}\n" for i in range(8)))
    (directory / f"{name}.text").write_text("item_id:token\ttext:token_seq\n" +
                                            "".join(f"A{i}\t{t}\n" for i, t in texts.items()))
    train = ["user_id:token\titem_id_list:token_seq\titem_id:token"]
    valid, test = list(train), list(train)
    for user, seq in SEQUENCES.items():
        for end in range(len(seq) - 3, 0, -1):  # longest prefix first
            train.append(f"{user}\t{' '.join(map(str, seq[:end]))}\t{seq[end]}")
        valid.append(f"{user}\t{' '.join(map(str, seq[:-2]))}\t{seq[-2]}")
        test.append(f"{user}\t{' '.join(map(str, seq[:-1]))}\t{seq[-1]}")
    body = "\n".join(train) + "\n"
    if gz_train:
        with gzip.open(directory / f"{name}.train.inter.gz", "wt") as handle:
            handle.write(body)
    else:
        (directory / f"{name}.train.inter").write_text(body)
    (directory / f"{name}.valid.inter").write_text("\n".join(valid) + "\n")
    (directory / f"{name}.test.inter").write_text("\n".join(test) + "\n")
    return directory
