"""`nlirg serve`: the workbench in a real browser, behind a token, with no process left behind."""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import psutil
import pytest
from typer.testing import CliRunner

from nlirg_tui.cli import app
from nlirg_tui.serve import is_loopback
from tests.browser import Browser, Page, chromium


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """A real `nlirg serve` subprocess on a free port; its URL is read from what it prints."""

    def __init__(self, root: Path) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "nlirg_tui", "serve", "--root", str(root),
                                      "--port", str(self.port)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        match = re.search(r"(http://\S+\?token=(\S+))", line)
        assert match, f"no URL with a token in {line!r}"
        self.url, self.token = match.group(1), match.group(2)
        self.base = f"http://127.0.0.1:{self.port}"

    def app_processes(self) -> list[psutil.Process]:
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [p for p in children if _is_app(p)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def _is_app(proc: psutil.Process) -> bool:
    try:
        return "nlirg_tui" in proc.cmdline() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _status(url: str, cookie: str | None = None, user: str | None = None) -> int:
    if user is not None:  # the same request made by another local user
        code = ("import sys, urllib.request, urllib.error\n"
                "try: print(urllib.request.urlopen(sys.argv[1], timeout=10).status)\n"
                "except urllib.error.HTTPError as e: print(e.code)")
        # The system's Python: the other user may not read this venv.
        out = subprocess.run(["runuser", "-u", user, "--", "python3", "-c", code, url],
                             capture_output=True, text=True, timeout=60, cwd="/")
        assert out.stdout.strip().isdigit(), out.stderr
        return int(out.stdout)
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        return urllib.request.urlopen(request, timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_serve_refuses_an_address_other_machines_reach():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")
    res = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert res.exit_code == 2
    assert "--allow-remote" in res.output and "ssh -L" in res.output


@pytest.mark.slow
def test_serve_answers_nothing_without_its_token(tmp_path):
    served = Served(tmp_path / "runs")
    try:
        assert _status(f"{served.base}/") == 403
        assert _status(f"{served.base}/?token=wrong") == 403
        assert _status(f"{served.base}/static/js/textual.js") == 403
        if os.geteuid() == 0 and _has_user("nobody"):
            assert _status(f"{served.base}/", user="nobody") == 403
        with urllib.request.urlopen(served.url, timeout=10) as resp:
            assert resp.status == 200
            cookie = resp.headers["Set-Cookie"].split(";")[0]
            page = resp.read().decode()
        assert f"ws://127.0.0.1:{served.port}/ws" in page
        assert "HttpOnly" in resp.headers["Set-Cookie"]
        assert _status(f"{served.base}/static/js/textual.js", cookie=cookie) == 200
    finally:
        served.stop()


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(what)


@pytest.mark.slow
@pytest.mark.e2e
def test_browser_tabs_each_get_a_workbench_and_leave_no_process(tmp_path):
    if chromium() is None:
        pytest.skip("chromium is not installed (./run test installs it with apt when run as root)")
    root = tmp_path / "runs"
    served = Served(root)
    browser = Browser(tmp_path / "profile")
    try:
        asyncio.run(_drive(served, root, browser.endpoint))
        # The server stops with a tab still open: its app process ends with it, no orphan.
        left = served.app_processes()
        assert len(left) == 1, f"one tab is open, so one app process: {left}"
        served.proc.send_signal(signal.SIGTERM)
        served.proc.wait(timeout=20)  # textual-serve alone waits out aiohttp's 60 s shutdown with the app alive
        gone, alive = psutil.wait_procs(left, timeout=5)
        assert not alive, f"app processes outlived the server: {alive}"
    finally:
        browser.close()
        served.stop()
        for proc in served.app_processes():
            proc.kill()


async def _drive(served: Served, root: Path, browser_endpoint: str) -> None:
    async with aiohttp.ClientSession() as session:
        first = await Page.open(session, browser_endpoint)
        await first.call("Page.navigate", url=served.url)
        await first.wait_for_text(f"Runs under {root}")
        await first.press("n")  # a key reaches the app: the new-run dialog opens
        await first.wait_for_text("Config file to launch")

        second = await Page.open(session, browser_endpoint)
        await second.call("Page.navigate", url=served.url)
        await second.wait_for_text(f"Runs under {root}")
        _wait(lambda: len(served.app_processes()) == 2, 30, "each tab runs its own app process")

        await first.close()  # closing a tab ends its app process
        _wait(lambda: len(served.app_processes()) == 1, 30, "a closed tab's app process ended")
