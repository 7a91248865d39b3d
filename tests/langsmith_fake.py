"""A local stand-in for the LangSmith API: records what a client uploads (no network).

Implements just what ``langsmith.Client`` calls while an experiment runs: ``/info``, datasets
(read by name, create), examples (bulk JSON or multipart upload), sessions (create, update) and
``/runs/multipart`` (runs and feedback). Everything received is kept on the server object.
"""

from __future__ import annotations

import json
import threading
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


def multipart_parts(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """``(name, payload)`` of each part of a ``multipart/form-data`` body."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    out = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        out.append((str(name), part.get_payload(decode=True) or b""))
    return out


class FakeLangSmith:
    """The recording server; ``url`` once started. Use as a context manager."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.datasets: dict[str, dict[str, Any]] = {}
        self.examples: dict[str, list[dict[str, Any]]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.feedback: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeLangSmith:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def _reply(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                fake.requests.append(("GET", url.path))
                if url.path == "/info":
                    return self._reply(200, {"version": "0.0-fake"})
                if url.path == "/datasets":
                    name = parse_qs(url.query).get("name", [None])[0]
                    return self._reply(200, [d for d in fake.datasets.values()
                                             if name is None or d["name"] == name])  # fmt: skip
                return self._reply(404, {"detail": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                fake.requests.append(("POST", url.path))
                body = self._body()
                content_type = self.headers.get("content-type", "")
                if url.path == "/datasets":
                    data = json.loads(body)
                    dataset = {**data, "id": data.get("id") or str(uuid.uuid4()),
                               "created_at": "2026-11-30T00:00:00", "tenant_id": str(uuid.uuid4()),
                               "data_type": data.get("data_type") or "kv"}  # fmt: skip
                    fake.datasets[dataset["id"]] = dataset
                    return self._reply(200, dataset)
                if url.path.endswith("/examples") and "datasets/" in url.path:
                    dataset_id = url.path.split("datasets/")[1].split("/")[0]
                    ids = sorted({n.split(".")[0] for n, _ in
                                  multipart_parts(content_type, body)})  # fmt: skip
                    fake.examples.setdefault(dataset_id, []).extend({"id": i} for i in ids)
                    return self._reply(200, {"count": len(ids), "example_ids": ids})
                if url.path == "/examples/bulk":
                    rows = json.loads(body)
                    for row in rows:
                        fake.examples.setdefault(str(row["dataset_id"]), []).append(row)
                    return self._reply(200, [{"id": r["id"]} for r in rows])
                if url.path == "/sessions":
                    session = {**json.loads(body), "id": str(uuid.uuid4()),
                               "start_time": "2026-11-30T00:00:00",
                               "tenant_id": str(uuid.uuid4())}  # fmt: skip
                    fake.sessions[session["id"]] = session
                    return self._reply(200, session)
                if url.path == "/runs/multipart":
                    for name, payload in multipart_parts(content_type, body):
                        kind, _, rest = name.partition(".")
                        if kind in ("post", "patch") and "." not in rest:
                            fake.runs.setdefault(rest, {}).update(json.loads(payload))
                        elif kind == "feedback" and "." not in rest:
                            fake.feedback.append(json.loads(payload))
                    return self._reply(202, {})
                if url.path == "/feedback":
                    fake.feedback.append(json.loads(body))
                    return self._reply(200, fake.feedback[-1])
                if url.path == "/runs/batch":
                    return self._reply(200, {})
                return self._reply(404, {"detail": "not found"})

            def do_PATCH(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                fake.requests.append(("PATCH", url.path))
                body = self._body()
                if url.path.startswith("/sessions/"):
                    session = fake.sessions[url.path.split("/")[2]]
                    session.update({k: v for k, v in json.loads(body).items() if v is not None})
                    return self._reply(200, session)
                return self._reply(200, {})

        return Handler
