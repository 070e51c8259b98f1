"""A headless Chromium driven through the DevTools protocol, for the tests of `nlirg serve`.

The page draws the terminal on a canvas, so the screen is read where its text passes: a script injected before
the page's own records every frame its websocket receives (the app's terminal output), and `screen_text` strips
the escape sequences from them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

CAPTURE = """
(() => {
  window.__nlirgOut = [];
  const Original = window.WebSocket;
  window.WebSocket = function (url, protocols) {
    const ws = protocols === undefined ? new Original(url) : new Original(url, protocols);
    const decoder = new TextDecoder();
    const keep = (bytes) => window.__nlirgOut.push(decoder.decode(bytes, {stream: true}));
    ws.addEventListener("message", (e) => {
      if (e.data instanceof ArrayBuffer) keep(e.data);
      else if (e.data instanceof Blob) e.data.arrayBuffer().then(keep);
    });
    return ws;
  };
  window.WebSocket.prototype = Original.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();
"""
ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screen_text(raw: str) -> str:
    return ESCAPES.sub("", raw)


class Browser:
    """One headless Chromium with its own profile; `close()` ends it and everything it started."""

    def __init__(self, profile: Path) -> None:
        exe = chromium()
        assert exe is not None
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.2)
        self.endpoint = f"http://127.0.0.1:{port_file.read_text().split()[0]}"

    def close(self) -> None:
        import os
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)


class Page:
    """One tab, spoken to over its DevTools websocket."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: str, ws: aiohttp.ClientWebSocketResponse,
                 target_id: str):
        self.session, self.endpoint, self.ws, self.target_id = session, endpoint, ws, target_id
        self._ids = itertools.count(1)

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, endpoint: str) -> Page:
        async with session.put(f"{endpoint}/json/new?about:blank") as resp:
            target = await resp.json(content_type=None)
        ws = await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        page = cls(session, endpoint, ws, target["id"])
        await page.call("Page.enable")
        await page.call("Page.addScriptToEvaluateOnNewDocument", source=CAPTURE)
        return page

    async def call(self, method: str, **params: Any) -> dict:
        msg_id = next(self._ids)
        await self.ws.send_json({"id": msg_id, "method": method, "params": params})
        while True:
            reply = json.loads((await self.ws.receive(timeout=30)).data)
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def screen(self) -> str:
        return screen_text(await self.evaluate("(window.__nlirgOut || []).join('')") or "")

    async def wait_for_text(self, text: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            seen = await self.screen()
            if text in seen:
                return seen
            await asyncio.sleep(0.5)
        raise AssertionError(f"{text!r} never appeared in the browser; last screen text: {seen[-500:]!r}")

    async def press(self, key: str) -> None:
        await self.evaluate("document.querySelector('.xterm-helper-textarea').focus()")
        for kind in ("keyDown", "keyUp"):
            await self.call("Input.dispatchKeyEvent", type=kind, key=key, text=key if kind == "keyDown" else "")

    async def close(self) -> None:
        await self.ws.close()
        async with self.session.get(f"{self.endpoint}/json/close/{self.target_id}") as resp:
            await resp.read()
