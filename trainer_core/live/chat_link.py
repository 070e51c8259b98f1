"""One way to ask a run's model, whether it trains or not (docs/chat.md): a `generate` command on the live
trainer's socket, or a request to an inference process on its final/ or a checkpoint. Both hand the same `chat`
events to `on_event` and return the same ack. Torch-free: the CLI and the workbench use it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer_core.live import protocol
from trainer_core.live.chat import ChatRequest
from trainer_core.live.client import LiveClient

OnEvent = Callable[[dict[str, Any]], None]
ANSWER_TIMEOUT_S = 900.0
"""The longest wait for one answer (the trainer answers at its next step boundary, after a long step maybe)."""


class ChatUnavailable(RuntimeError):
    """The model cannot be asked (the inference process failed to load it): one line."""


def ask_live(client: LiveClient, request: ChatRequest, on_event: OnEvent,
             timeout: float = ANSWER_TIMEOUT_S) -> dict[str, Any]:
    """Send `request` as a `generate` command; stream its `chat` events to `on_event`; return its ack."""
    client.send(protocol.replay(client.hello["last_seq"] + 1))  # live events only: this answer's pieces
    cmd_id = f"chat-{os.getpid()}-{time.monotonic_ns()}"
    client.send(protocol.command(cmd_id, "generate", request.args()))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = client.read()
        if msg.get("type") == "chat" and msg.get("request") == cmd_id:
            on_event(msg)
        elif msg.get("type") == "ack" and msg.get("id") == cmd_id:
            return msg
        elif msg.get("type") == "end":
            return protocol.ack(cmd_id, False, f"the run ended ({msg.get('status')}) before it answered", None)
    raise TimeoutError(f"no answer within {timeout:g} s")


class InferenceChat:
    """An inference process on a run's final/ or a checkpoint (`trainer_core.evaluate.chat_process`), asked
    one request at a time; `close()` ends it."""

    def __init__(self, target: str, root: Path, python: str = sys.executable):
        self.proc = subprocess.Popen(
            [python, "-m", "trainer_core.evaluate.chat_process", target, "--root", str(root)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
            env={**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")})
        first = self._line()
        if first.get("type") != "ready":
            self.close()
            raise ChatUnavailable(first.get("message") or f"the inference process for {target} did not start")
        self.ready = first
        self._ids = 0

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            return {"type": "error", "message": f"the inference process ended (exit {code})"}
        return json.loads(line)

    def ask(self, request: ChatRequest, on_event: OnEvent) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self._ids += 1
        self.proc.stdin.write(json.dumps({"id": self._ids, **request.args()}, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()
        while True:
            msg = self._line()
            if msg.get("type") == "chat":
                on_event(msg)
            elif msg.get("type") == "ack":
                return msg
            elif msg.get("type") == "error":
                return protocol.ack(self._ids, False, msg["message"], None)

    def close(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
