"""Two-process CPU training with `accelerate launch` (slow: starts two interpreters)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .toy_data import write_unisrec


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The demo's objective computes part of its loss outside the forward (L1 on the user rows, W_i over the item bank):
# DDP must still see every parameter once per step.
DEMO_OBJECTIVE = ("lm_batch_size: 0\nprefix_pairs: true\nlm_on_rec_histories: true\nnegative_layout: shared\n"
                  "rec_loss_type: softmax\nlogq_correction: true\nitem_bank_refresh_steps: 2\n")


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["lm_batch_size: 2\n", DEMO_OBJECTIVE], ids=["paper", "demo"])
def test_two_processes_really_run(tmp_path, objective):
    data = write_unisrec(tmp_path / "toy")
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"data: {data}\npreset: '1.7m'\nvocab_size: 300\noutput_dir: {tmp_path / 'out'}\nmax_steps: 3\n"
        "rec_batch_size: 2\nmax_length: 64\nuse_cpu: true\nlogging_steps: 1\n"
        "eval_strategy: 'no'\nsave_strategy: 'no'\nddp_find_unused_parameters: true\n"
        f"cache_dir: {tmp_path / 'cache'}\n" + objective
    )
    accelerate = Path(sys.executable).parent / "accelerate"
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()), "--mixed_precision", "no",
               "-m", "lmrec_hf.cli", "train", str(config)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["steps"] == 3
    assert (tmp_path / "out" / "model" / "model.safetensors").exists()
