"""A few commands of the W3C WebDriver protocol, spoken to Debian's chromedriver over HTTP: enough to drive
headless Chromium through the console as a person would (type, choose, click, read, take screenshots).
Selenium's Python bindings would do the same; they require a newer certifi than the project pins."""

from __future__ import annotations

import base64
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.processes import free_port

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C name of an element reference
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


class Driver:
    """chromedriver as a child process; `session()` opens a headless browser."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.process: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)

    def start(self) -> Driver:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [str(CHROMEDRIVER), f"--port={self.port}"], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if self.http.get("/status").json()["value"]["ready"]:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"chromedriver did not start: {self.log.read_text()[-1000:]}")

    def stop(self) -> None:
        self.http.close()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def session(self, width: int = 1366, height: int = 768) -> Browser:
        options = {
            "binary": str(CHROMIUM),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--lang=zh-CN"],
        }
        capabilities = {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}
        answer = self.http.post("/session", json={"capabilities": capabilities})
        assert answer.status_code == 200, answer.text
        browser = Browser(self.http, answer.json()["value"]["sessionId"])
        browser.resize(width, height)
        return browser


@dataclass
class Element:
    browser: Browser
    id: str

    def click(self) -> None:
        self.browser.command("POST", f"/element/{self.id}/click", {})

    def type(self, text: str) -> None:
        self.browser.command("POST", f"/element/{self.id}/clear", {})
        self.browser.command("POST", f"/element/{self.id}/value", {"text": text})

    @property
    def text(self) -> str:
        return str(self.browser.command("GET", f"/element/{self.id}/text"))


@dataclass
class Browser:
    http: httpx.Client
    session_id: str

    def command(self, method: str, path: str, body: dict | None = None) -> object:
        answer = self.http.request(method, f"/session/{self.session_id}{path}", json=body)
        assert answer.status_code == 200, f"{method} {path}: {answer.text[:500]}"
        return answer.json()["value"]

    def resize(self, width: int, height: int) -> None:
        self.command("POST", "/window/rect", {"width": width, "height": height})

    def open(self, url: str) -> None:
        self.command("POST", "/url", {"url": url})

    @property
    def url(self) -> str:
        return str(self.command("GET", "/url"))

    @property
    def page(self) -> str:
        return str(self.command("GET", "/source"))

    def find(self, css: str) -> Element:
        found = self.command("POST", "/element", {"using": "css selector", "value": css})
        assert isinstance(found, dict)
        return Element(self, found[ELEMENT])

    def script(self, code: str) -> object:
        return self.command("POST", "/execute/sync", {"script": code, "args": []})

    def click_through(self, css: str, timeout: float = 20) -> None:
        """Click a button or link and wait until the page it leads to has loaded (a click returns at once)."""
        self.script("window.__before_submit = true")
        self.find(css).click()
        deadline = time.monotonic() + timeout
        while self.script("return window.__before_submit === true || document.readyState !== 'complete'"):
            assert time.monotonic() < deadline, f"{css} led nowhere within {timeout}s: {self.url}"
            time.sleep(0.05)

    def fill(self, fields: dict[str, str]) -> None:
        """Type into inputs and text areas, or choose an option of a select, each found by its id."""
        for field_id, value in fields.items():
            element = self.find(f"#{field_id}")
            tag = self.command("GET", f"/element/{element.id}/name")
            if tag == "select":
                self.find(f'#{field_id} option[value="{value}"]').click()
            else:
                element.type(value)

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(str(self.command("GET", "/screenshot"))))

    def close(self) -> None:
        self.http.delete(f"/session/{self.session_id}")
