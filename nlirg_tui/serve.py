"""`nlirg serve`: the workbench in a browser (textual-serve), behind a per-server token.

textual-serve runs one app process per browser tab and bundles its JavaScript, so nothing is fetched from the
network. Two things it does not do are added here:

- A token. Loopback is not private on a shared GPU box: every local user reaches 127.0.0.1:PORT, while the
  trainer's socket admits only its owner. So, as Jupyter does, the server prints a URL carrying a random token and
  answers nothing without it. The first page load with `?token=` sets an HttpOnly cookie that the page's static
  files and its websocket then carry.
- No orphans. textual-serve leaves its app processes running when the server gets SIGTERM; here every process
  the server started in its own session (the app processes and their helpers) is ended on the way out. Trainers
  that an app launched run in sessions of their own and are left alone, as when a terminal closes.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
from aiohttp import web
from textual_serve.server import Server

TOKEN_PARAM = "token"
TOKEN_COOKIE = "nlirg_serve_token"
CHILD_GRACE_S = 3.0
"""How long an app process gets to quit on SIGTERM before it is killed."""


class ServeError(ValueError):
    """A user error in `nlirg serve`'s arguments: one line, exit 2."""


def is_loopback(host: str) -> bool:
    """True when `host` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback
                       for info in socket.getaddrinfo(host, None))
        except (OSError, ValueError):
            return False


def check_host(host: str, allow_remote: bool) -> None:
    if not allow_remote and not is_loopback(host):
        raise ServeError(f"--host {host} is reachable from other machines; the workbench can start and stop "
                         "training there. Serve on 127.0.0.1 and use `ssh -L PORT:localhost:PORT`, or pass "
                         "--allow-remote if you mean it")


def app_command(root: Path) -> str:
    """The shell command textual-serve runs for each browser tab: this Python's `nlirg` on the same root."""
    import shlex

    return f"{shlex.quote(sys.executable)} -m nlirg_tui --root {shlex.quote(str(root))}"


def _token_ok(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def token_middleware(token: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Admit a request that carries the token in its query (then set the cookie) or in the cookie; 403 otherwise."""

    @web.middleware
    async def check(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        if _token_ok(request.cookies.get(TOKEN_COOKIE), token):
            return await handler(request)
        if not _token_ok(request.query.get(TOKEN_PARAM), token):
            raise web.HTTPForbidden(text="nlirg serve: open the URL with its token (printed when the server "
                                         "started)\n")
        response = await handler(request)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", path="/")
        return response

    return check


def own_session_descendants() -> list[psutil.Process]:
    """The processes below this one that still run in this process's session (not a detached trainer)."""
    sid = os.getsid(0)
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if os.getsid(child.pid) == sid:
                found.append(child)
        except (ProcessLookupError, PermissionError):
            continue
    return found


def end_processes(processes: list[psutil.Process], grace_s: float = CHILD_GRACE_S) -> None:
    for proc in processes:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=grace_s)


class WorkbenchServer(Server):
    """textual-serve's server with the token check, URLs that follow the address the browser used (an SSH tunnel's
    localhost or the server's 127.0.0.1), and no app process left behind."""

    def __init__(self, root: Path, host: str, port: int, token: str) -> None:
        super().__init__(app_command(root), host=host, port=port, title="nlirg workbench")
        self.token = token

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(token_middleware(self.token))
        app.on_shutdown.append(self._end_app_processes)
        return app

    async def handle_index(self, request: web.Request) -> Any:
        # The page's websocket and static URLs are absolute; build them from the host the browser asked for, so
        # the cookie set for that host goes with them.
        self.public_url = f"{request.scheme}://{request.host}"
        return await super().handle_index(request)

    async def on_startup(self, app: web.Application) -> None:
        url = f"http://{_url_host(self.host)}:{self.port}/?{TOKEN_PARAM}={self.token}"
        print(f"nlirg workbench at {url}", flush=True)
        print(f"from your laptop: ssh -L {self.port}:localhost:{self.port} THIS_BOX, then open "
              f"http://localhost:{self.port}/?{TOKEN_PARAM}={self.token}", flush=True)
        print("Ctrl+C stops the server and closes every browser session (runs keep training)", flush=True)

    async def _end_app_processes(self, app: web.Application) -> None:
        end_processes(own_session_descendants())

    def initialize_logging(self) -> None:
        import logging

        logging.basicConfig(level=logging.WARNING, format="%(message)s")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def serve(root: Path, host: str, port: int, allow_remote: bool) -> None:
    """Run the server in the foreground until SIGINT or SIGTERM; every app process it started ends with it."""
    check_host(host, allow_remote)
    server = WorkbenchServer(root, host, port, secrets.token_urlsafe(24))
    try:
        server.serve()
    finally:
        # A second path out (an exception in aiohttp's start-up or shutdown): still no orphans.
        end_processes(own_session_descendants())
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
