"""
The demo Space (space/app.py), launched as its own process on 127.0.0.1 the way `make space` runs it, and driven
with gradio_client. The Hub it can see is the test double, so a repo id works and an unknown one fails politely.
"""

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .conftest import ITEMS
from .hub_double import HubDouble

APP = Path(__file__).resolve().parent.parent / "space" / "app.py"
gradio_client = pytest.importorskip("gradio_client")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_space(model: str, env: dict, port: int, timeout: float = 180) -> subprocess.Popen:
    """Runs space/app.py like `make space` and waits until it answers."""
    import urllib.request

    process = subprocess.Popen([sys.executable, str(APP)], env={**env, "LMREC_MODEL": model,
                                                                "GRADIO_SERVER_PORT": str(port)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Space exited: {process.stderr.read().decode()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("the Space did not answer within the time limit")


@pytest.fixture(scope="module")
def space(space_checkpoint, tmp_path_factory):
    """(client, hub, env): the Space on the local checkpoint, with the Hub double as its Hub."""
    with HubDouble() as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "TRANSFORMERS_VERBOSITY": "error",
               "HF_HOME": str(tmp_path_factory.mktemp("hf_home")), "GRADIO_ANALYTICS_ENABLED": "False"}
        env.pop("HF_HUB_OFFLINE", None)
        port = free_port()
        process = start_space(str(space_checkpoint), env, port)
        try:
            yield gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False), hub, env
        finally:
            process.terminate()
            process.wait(timeout=30)


def _recommend(client, model, picked, typed="", top_k=3, exclude=True):
    return client.predict(model, picked, typed, top_k, exclude, api_name="/recommend")


def test_top_k_is_deterministic_and_excludes_the_history(space, space_checkpoint):
    client, _, _ = space
    history = [ITEMS[0], ITEMS[1]]
    table, item_map, vector_file, status = _recommend(client, str(space_checkpoint), history, top_k=5)
    again = _recommend(client, str(space_checkpoint), history, top_k=5)[0]
    assert table["data"] == again["data"]
    assert [row[0] for row in table["data"]] == [1, 2, 3, 4, 5]
    assert not {row[1] for row in table["data"]} & set(history)
    scores = [row[2] for row in table["data"]]
    assert scores == sorted(scores, reverse=True)
    assert "2 items in the history" in status and "Top 5 of 8 items" in status
    kinds = {row[2] for row in item_map["data"]}
    assert kinds == {"catalog", "your history", "recommended", "you"}
    payload = json.loads(Path(vector_file).read_text())
    assert payload["history"] == history and len(payload["user_embedding"]) == len(payload["user_feature"]) > 0

    kept = _recommend(client, str(space_checkpoint), history, top_k=8, exclude=False)[0]
    assert {row[1] for row in kept["data"]} == set(ITEMS)
    assert {row[1] for row in kept["data"] if row[3] == "yes"} == set(history)


def test_typed_titles_are_the_cold_start_case(space, space_checkpoint):
    client, _, _ = space
    table, _, vector_file, status = _recommend(client, str(space_checkpoint), [], typed="a brand new teapot\n\n")
    assert len(table["data"]) == 3
    assert "1 of them typed titles not in the catalog" in status
    assert json.loads(Path(vector_file).read_text())["history"] == ["a brand new teapot"]


@pytest.mark.parametrize("picked, typed, message", [
    ([], "", "The history is empty"),
    ([], "\n".join(f"item {i}" for i in range(51)), "has 51 items; this demo takes at most 50"),
    ([ITEMS[0]], "x" * 301, "Item 2 is 301 characters long; this demo takes at most 300"),
])
def test_bad_input_gets_a_message_not_a_stack_trace(space, space_checkpoint, picked, typed, message):
    client, _, _ = space
    with pytest.raises(Exception, match=message) as error:
        _recommend(client, str(space_checkpoint), picked, typed)
    assert "Traceback" not in str(error.value)


def test_unknown_model_gets_a_message(space):
    client, _, _ = space
    with pytest.raises(Exception, match="The Hub has no model 'org/no-such-model'"):
        _recommend(client, "org/no-such-model", [ITEMS[0]])
    with pytest.raises(Exception, match="neither a local checkpoint folder nor a Hub repo id"):
        client.predict("/no/such/folder", api_name="/load")


def test_model_from_the_hub_by_repo_id(space, space_checkpoint):
    client, hub, env = space
    pushed = subprocess.run([sys.executable, "-m", "lmrec_hf.cli", "push", str(space_checkpoint), "--repo-id",
                             "org/space-test"], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            timeout=300)
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    picked, examples, status = client.predict("org/space-test", api_name="/load")
    assert "Loaded org/space-test: 8 items" in status
    by_repo = _recommend(client, "org/space-test", [ITEMS[2]])[0]
    by_folder = _recommend(client, str(space_checkpoint), [ITEMS[2]])[0]
    assert [row[1] for row in by_repo["data"]] == [row[1] for row in by_folder["data"]]


def test_eight_concurrent_requests_are_served(space, space_checkpoint):
    client, _, _ = space
    histories = [[ITEMS[i % 8], ITEMS[(i + 3) % 8]] for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        jobs = [client.submit(str(space_checkpoint), h, "", 3, True, api_name="/recommend") for h in histories]
        results = list(pool.map(lambda job: job.result(timeout=120), jobs))
    for history, result in zip(histories, results):
        assert result[0]["data"] == _recommend(client, str(space_checkpoint), history)[0]["data"]


def test_example_histories_come_from_the_test_split(space, space_checkpoint):
    client, _, _ = space
    _, examples, _ = client.predict(str(space_checkpoint), api_name="/load")
    labels = [choice[0] if isinstance(choice, (list, tuple)) else choice for choice in examples["choices"]]
    assert labels and all(label.startswith("Test user ") for label in labels)
    picked, typed = client.predict(str(space_checkpoint), labels[0], api_name="/example")
    stored = json.loads((space_checkpoint / "catalog" / "examples.json").read_text())
    picked = picked["value"] if isinstance(picked, dict) else picked  # a gr.update comes back as a dict
    assert picked == next(e["history"] for e in stored if labels[0].startswith(f"Test user {e['user_id']} "))
    assert typed == ""
