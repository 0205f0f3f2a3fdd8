"""
A test double of the Hugging Face Hub: the part of its HTTP API that stock `huggingface_hub` uses to push a
model and that `from_pretrained` uses to load one back. Standard library only; everything is kept in memory.

Covered: create repo (409 when it exists), whoami, validate-yaml, preupload (every file "regular", so commits carry
the files inline as base64), commit (to a branch; each commit is a snapshot with its own 40-hex oid), create
branch, model info (by branch or commit), the file tree (one level, no pagination), and `resolve` (HEAD and GET,
with the X-Repo-Commit / ETag / Content-Length headers that `hf_hub_download` checks; RepoNotFound /
RevisionNotFound / EntryNotFound error codes). Writes need the token given to the double; reads of private repos
too.
Not covered: LFS and Xet uploads, pull requests, tags, deletes of repos, datasets and Spaces, pagination, rate
limits, gated repos. validate-yaml checks only that the YAML parses and that model-index results have their
required fields. See docs/hub.md.

Run it by hand with `python tests/hub_double.py --port 8790`, then point HF_ENDPOINT at the printed URL.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

TOKEN = "hf_test_double_token"
_REPO = r"(?P<repo>[^/]+/[^/]+)"


def _blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class HubDouble:
    """
    An in-memory Hub on 127.0.0.1 with a free port.

    Example:
    ```python
    >>> with HubDouble() as hub:
    ...     os.environ["HF_ENDPOINT"] = hub.url
    ...     HfApi(token=hub.token).create_repo("org/x")
    ```
    """

    def __init__(self, token: str = TOKEN, port: int = 0):
        self.token = token
        self.repos: dict[str, dict] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[str] = []  # "METHOD path", for tests that check what a client asked
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "HubDouble":
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "HubDouble":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- state ----------------------------------------------------------------------------------------------------

    def _new_commit(self, repo: dict, parent: str | None, files: dict[str, str], summary: str) -> str:
        payload = json.dumps([parent, sorted(files.items()), summary, time.time_ns(), len(repo["commits"])])
        oid = hashlib.sha1(payload.encode()).hexdigest()
        repo["commits"][oid] = {"parent": parent, "files": files, "summary": summary}
        return oid

    def create_repo(self, repo_id: str, private: bool = False) -> None:
        repo = {"private": private, "commits": {}, "branches": {}}
        repo["branches"]["main"] = self._new_commit(repo, None, {".gitattributes": self._store(b"")}, "initial commit")
        self.repos[repo_id] = repo

    def _store(self, content: bytes) -> str:
        sha = _blob_sha(content)
        self.blobs[sha] = content
        return sha

    def resolve_revision(self, repo: dict, revision: str) -> str | None:
        revision = unquote(revision)
        if revision in repo["branches"]:
            return repo["branches"][revision]
        return revision if revision in repo["commits"] else None


def _metadata_errors(readme: str) -> list[str]:
    """The Hub's README metadata checks that matter here: the YAML block parses to a mapping, and every model-index
    result names a task type, a dataset type and name, and metrics with a type and a numeric value."""
    import yaml

    match = re.match(r"^---\n(.*?)\n---\n", readme, flags=re.S)
    if not match:
        return []
    try:
        metadata = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as error:
        return [f"YAML does not parse: {error}"]
    if not isinstance(metadata, dict):
        return ["metadata must be a mapping"]
    errors = []
    for model in metadata.get("model-index") or []:
        for result in model.get("results") or []:
            if not (result.get("task") or {}).get("type"):
                errors.append('"model-index[0].results[].task.type" is required')
            dataset = result.get("dataset") or {}
            if not dataset.get("type") or not dataset.get("name"):
                errors.append('"model-index[0].results[].dataset" needs type and name')
            for metric in result.get("metrics") or []:
                if not metric.get("type") or not isinstance(metric.get("value"), (int, float)):
                    errors.append(f'metric {metric.get("type")!r} needs a type and a numeric value')
    return errors


def _handler_for(hub: HubDouble):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        # -- helpers ----------------------------------------------------------------------------------------------

        def _send(self, status: int, body: bytes | dict | list = b"", headers: dict | None = None,
                  head: bool = False) -> None:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = {"Content-Type": "application/json", **(headers or {})}
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _error(self, status: int, code: str | None, message: str, head: bool = False) -> None:
            headers = {"X-Error-Message": message}
            if code:
                headers["X-Error-Code"] = code
            self._send(status, {"error": message}, headers, head=head)

        def _authorized(self) -> bool:
            return self.headers.get("Authorization", "") == f"Bearer {hub.token}"

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _writable_repo(self, repo_id: str) -> dict | None:
            """The repo for a write, or None once the 401 or 404 answer has been sent."""
            if not self._authorized():
                self._error(401, None, "Invalid credentials in Authorization header")
                return None
            return self._repo(repo_id)

        def _snapshot(self, repo_id: str, revision: str, head: bool = False) -> tuple[dict, str] | None:
            """(repo, commit oid) for a read at `revision`, or None once the 404 answer has been sent."""
            state = self._repo(repo_id, head=head)
            if state is None:
                return None
            oid = hub.resolve_revision(state, revision)
            if oid is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {unquote(revision)}", head=head)
                return None
            return state, oid

        def _repo(self, repo_id: str, head: bool = False) -> dict | None:
            repo = hub.repos.get(repo_id)
            if repo is None or (repo["private"] and not self._authorized()):
                self._error(404, "RepoNotFound", f"Repository {repo_id} not found", head=head)
                return None
            return repo

        # -- routes -----------------------------------------------------------------------------------------------

        def do_HEAD(self) -> None:
            self._route("HEAD")

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def _route(self, method: str) -> None:
            path = urlsplit(self.path).path
            hub.requests.append(f"{method} {path}")
            with hub._lock:
                routes = [
                    ("POST", r"/api/repos/create", self._create_repo),
                    ("GET", r"/api/whoami-v2", self._whoami),
                    ("POST", r"/api/validate-yaml", self._validate_yaml),
                    ("POST", rf"/api/models/{_REPO}/preupload/(?P<revision>[^/]+)", self._preupload),
                    ("POST", rf"/api/models/{_REPO}/commit/(?P<revision>[^/]+)", self._commit),
                    ("POST", rf"/api/models/{_REPO}/branch/(?P<branch>[^/]+)", self._create_branch),
                    ("GET", rf"/api/models/{_REPO}/revision/(?P<revision>[^/]+)", self._model_info),
                    ("GET", rf"/api/models/{_REPO}/tree/(?P<revision>[^/]+)(?:/(?P<folder>.+))?", self._tree),
                    ("GET", rf"/api/models/{_REPO}", self._model_info),
                    ("HEAD", rf"/{_REPO}/resolve/(?P<revision>[^/]+)/(?P<filename>.+)", self._resolve),
                    ("GET", rf"/{_REPO}/resolve/(?P<revision>[^/]+)/(?P<filename>.+)", self._resolve),
                ]
                for route_method, pattern, handler in routes:
                    match = re.fullmatch(pattern, path)
                    if match and route_method == method:
                        return handler(method=method, **match.groupdict())
                self._error(404, None, f"The Hub test double does not implement {method} {path}",
                            head=method == "HEAD")

        def _whoami(self, method: str) -> None:
            if not self._authorized():
                return self._error(401, None, "Invalid credentials in Authorization header")
            self._send(200, {"type": "user", "name": "test-user", "orgs": [],
                             "auth": {"type": "access_token", "accessToken": {"role": "write"}}})

        def _validate_yaml(self, method: str) -> None:
            body = json.loads(self._body() or b"{}")
            errors = _metadata_errors(body.get("content", ""))
            self._send(400 if errors else 200, {"errors": [{"message": e} for e in errors], "warnings": []})

        def _create_repo(self, method: str) -> None:
            if not self._authorized():
                return self._error(401, None, "Invalid credentials in Authorization header")
            body = json.loads(self._body() or b"{}")
            if body.get("type", "model") != "model":
                return self._error(400, None, "The Hub test double only holds model repos")
            repo_id = f"{body.get('organization') or 'test-user'}/{body['name']}"
            if repo_id in hub.repos:
                return self._send(409, {"error": "You already created this model repo", "url": f"{hub.url}/{repo_id}"})
            hub.create_repo(repo_id, private=bool(body.get("private")))
            self._send(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id, "id": repo_id})

        def _preupload(self, method: str, repo: str, revision: str) -> None:
            if self._writable_repo(repo) is None:
                return
            files = json.loads(self._body())["files"]
            self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                        "oid": None} for f in files]})

        def _commit(self, method: str, repo: str, revision: str) -> None:
            state = self._writable_repo(repo)
            if state is None:
                return
            branch = unquote(revision)
            if branch not in state["branches"]:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {branch}")
            parent = state["branches"][branch]
            files = dict(state["commits"][parent]["files"])
            summary = ""
            for line in self._body().splitlines():
                if not line.strip():
                    continue
                entry = json.loads(line)
                key, value = entry["key"], entry["value"]
                if key == "header":
                    summary = value.get("summary", "")
                elif key == "file":
                    if value.get("encoding") != "base64":
                        return self._error(400, None, "Only base64 files are accepted by the Hub test double")
                    files[value["path"]] = hub._store(base64.b64decode(value["content"]))
                elif key in ("deletedFile", "deletedFolder"):
                    gone = value["path"].rstrip("/")
                    files = {p: s for p, s in files.items() if p != gone and not p.startswith(gone + "/")}
                else:
                    return self._error(400, None, f"The Hub test double does not accept {key!r} entries (no LFS)")
            oid = hub._new_commit(state, parent, files, summary)
            state["branches"][branch] = oid
            self._send(200, {"commitUrl": f"{hub.url}/{repo}/commit/{oid}", "commitOid": oid,
                             "pullRequestUrl": None})

        def _create_branch(self, method: str, repo: str, branch: str) -> None:
            state = self._writable_repo(repo)
            if state is None:
                return
            branch = unquote(branch)
            body = json.loads(self._body() or b"{}")
            if branch in state["branches"]:
                return self._error(409, None, f"Reference already exists: {branch}")
            start = hub.resolve_revision(state, body.get("startingPoint") or "main")
            if start is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {body.get('startingPoint')}")
            state["branches"][branch] = start
            self._send(200, {})

        def _model_info(self, method: str, repo: str, revision: str = "main") -> None:
            snapshot = self._snapshot(repo, revision)
            if snapshot is None:
                return
            state, oid = snapshot
            files = state["commits"][oid]["files"]
            self._send(200, {"id": repo, "modelId": repo, "sha": oid, "private": state["private"],
                             "siblings": [{"rfilename": name} for name in sorted(files)], "tags": [],
                             "lastModified": "2026-01-01T00:00:00.000Z", "disabled": False, "gated": False})

        def _tree(self, method: str, repo: str, revision: str, folder: str | None = None) -> None:
            snapshot = self._snapshot(repo, revision)
            if snapshot is None:
                return
            state, oid = snapshot
            prefix = unquote(folder).rstrip("/") + "/" if folder else ""
            entries, folders = [], set()
            for name, sha in sorted(state["commits"][oid]["files"].items()):
                if not name.startswith(prefix):
                    continue
                rest = name[len(prefix):]
                if "/" in rest:
                    folders.add(prefix + rest.split("/", 1)[0])
                else:
                    entries.append({"type": "file", "path": name, "oid": sha, "size": len(hub.blobs[sha])})
            if prefix and not entries and not folders:
                return self._error(404, "EntryNotFound", f"{prefix} does not exist at {oid}")
            self._send(200, [{"type": "directory", "path": f, "oid": f, "size": 0} for f in sorted(folders)] + entries)

        def _resolve(self, method: str, repo: str, revision: str, filename: str) -> None:
            head = method == "HEAD"
            snapshot = self._snapshot(repo, revision, head=head)
            if snapshot is None:
                return
            state, oid = snapshot
            sha = state["commits"][oid]["files"].get(unquote(filename))
            if sha is None:
                return self._error(404, "EntryNotFound", f"{unquote(filename)} does not exist at {oid}", head=head)
            self._send(200, hub.blobs[sha], {"X-Repo-Commit": oid, "ETag": f'"{sha}"',
                                             "Content-Type": "application/octet-stream"}, head=head)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the Hub test double until interrupted.")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--token", default=TOKEN)
    args = parser.parse_args()
    hub = HubDouble(token=args.token, port=args.port).start()
    print(f"Hub test double at {hub.url} (token {hub.token}); set HF_ENDPOINT={hub.url} HF_TOKEN={hub.token}",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    main()
