"""Debian's headless Chromium driven by selenium, for the HTML pages' tests: the system's
chromium and chromedriver (scripts/setup-host.sh --tests installs them), so nothing downloads
a driver; a fresh profile, no background networking."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}

# What the page reports about itself once loaded (returned by execute_script).
PROBE = """
const doc = document.documentElement;
const charts = [...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  return {id: svg.closest('figure').id, width: box.width, height: box.height,
          label: svg.getAttribute('aria-label') || '',
          title: (svg.querySelector('title') || {}).textContent || ''};
});
const resources = performance.getEntriesByType('resource').map(e => e.name);
return {
  scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth,
  bodyText: document.body.innerText.length,
  charts: charts, resources: resources, location: location.href,
  headings: [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => +h.tagName[1]),
  scripts: document.scripts.length,
  thWithoutScope: [...document.querySelectorAll('th')].filter(t => !t.getAttribute('scope')).length,
  title: document.title,
  pwned: window.__pwned === true,
};
"""


def missing() -> str | None:
    """Why the browser cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} not installed (scripts/setup-host.sh --tests installs chromium)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@dataclass
class Browser:
    driver: object

    def open(self, page: Path, size: str) -> dict:
        """Load ``page`` at the named window size; its probe (PROBE) once loaded."""
        width, height = SIZES[size]
        self.driver.set_window_rect(width=width, height=height)  # type: ignore[attr-defined]
        self.driver.get(page.resolve().as_uri())  # type: ignore[attr-defined]
        # The viewport, not the window, must have the asked-for width: set it exactly.
        self.driver.execute_cdp_cmd(  # type: ignore[attr-defined]
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": size == "phone"},
        )
        self.driver.get_log("performance")  # type: ignore[attr-defined]  # drained
        self.driver.get(page.resolve().as_uri())  # type: ignore[attr-defined]
        probe = self.driver.execute_script(PROBE)  # type: ignore[attr-defined]
        probe["requests"] = self.requests(exclude=page.resolve().as_uri())
        return probe

    def requests(self, exclude: str) -> list[str]:
        """Every URL the browser asked for since the last call (DevTools' Network events,
        failed requests included), less ``exclude`` (the page itself) and data: URLs."""
        urls = []
        for entry in self.driver.get_log("performance"):  # type: ignore[attr-defined]
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                url = message["params"]["request"]["url"]
                if url != exclude and not url.startswith("data:"):
                    urls.append(url)
        return urls

    def screenshot(self, path: Path) -> Path:
        self.driver.save_screenshot(str(path))  # type: ignore[attr-defined]
        return path

    def alerts(self) -> str | None:
        """The text of an open alert dialog, if a script managed to open one."""
        from selenium.common.exceptions import NoAlertPresentException

        try:
            alert = self.driver.switch_to.alert  # type: ignore[attr-defined]
            text = alert.text
            alert.dismiss()
            return text
        except NoAlertPresentException:
            return None


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium with a profile of its own, quit (and the profile removed) after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="vmbench-chromium-")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # Network events
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield Browser(driver)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
