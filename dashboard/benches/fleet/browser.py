"""The browser half of the dashboard benchmark (benches/fleet.rs): headless Chromium through
chromedriver, driven by Selenium.

    browser.py BASE_URL ETCD_ENDPOINT DEPLOYMENTS LOADS PUTS

Prints one line per measurement, in milliseconds:

- `paint MS`: from the start of navigation to the first animation frame after the fleet
  table holds its first page of rows and counts every deployment, taken in the page with
  `performance.now()` (whose origin is the start of navigation); LOADS page loads.
- `snapshot MS`: from the start of navigation to the fleet's `snapshot` event having
  arrived (before the page parses and draws it), for each load.
- `put MS`: from just before a spec is put over etcd's JSON gateway to the moment the
  changed cell holds the new value in the page, PUTS puts one after another; both times are
  the machine's wall clock (`time.time()` here, `performance.timeOrigin + performance.now()`
  in the page).
"""

import base64
import json
import os
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

DEADLINE = 120

base, etcd, deployments, loads, puts = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5])

# Installed before the page's own script runs: notes when the table first holds its rows.
PAINTED = """
window.__painted = null;
window.__snapshot = null;
const PageEventSource = window.EventSource;
window.EventSource = function (url) {
  const source = new PageEventSource(url);
  source.addEventListener('snapshot', function () {
    if (window.__snapshot === null) window.__snapshot = performance.now();
  });
  return source;
};
new MutationObserver(function (records, observer) {
  const count = document.getElementById('count');
  if (!count || !count.textContent.endsWith(' of %d deployments')) return;
  if (document.querySelectorAll('#fleet tbody tr').length === 0) return;
  observer.disconnect();
  requestAnimationFrame(function () { setTimeout(function () { window.__painted = performance.now(); }, 0); });
}).observe(document, {childList: true, subtree: true, characterData: true});
""" % deployments

# Notes when the `desired` cell of row arguments[0] first reads arguments[1].
CHANGED = """
const [id, expected] = arguments;
window.__seen = null;
const cell = () => document.querySelector('tr[data-id="' + id + '"] td.desired');
const observer = new MutationObserver(function () {
  const now = cell();
  if (now && now.textContent === expected) {
    window.__seen = performance.timeOrigin + performance.now();
    observer.disconnect();
  }
});
observer.observe(document.querySelector('#fleet tbody'), {childList: true, subtree: true, characterData: true});
"""


def wait_for(driver, expression):
    deadline = time.time() + DEADLINE
    while time.time() < deadline:
        value = driver.execute_script("return " + expression + ";")
        if value is not None:
            return value
        time.sleep(0.005)
    raise AssertionError("timed out waiting for " + expression)


def put(key, value):
    body = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                       "value": base64.b64encode(value.encode()).decode()}).encode()
    request = urllib.request.Request(etcd + "/v3/kv/put", data=body,
                                     headers={"content-type": "application/json"})
    urllib.request.urlopen(request).read()


def spec(i, instances):
    return json.dumps({"cmd": "sleep 600", "instances": instances, "ports": {"http": 8080},
                       "labels": ["team%d" % (i % 7), "prod" if i % 2 == 0 else "dev"],
                       "environment": {"APP_NAME": "app%d" % i, "API_TOKEN": "s3cret"}})


def main():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ["CHROMIUM_BIN"]
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,900", "--no-first-run", "--disable-extensions"]:
        options.add_argument(flag)
    service = Service(executable_path=os.environ["CHROMEDRIVER_BIN"])
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PAINTED})
        for _ in range(loads):
            driver.get(base + "/")
            painted = wait_for(driver, "window.__painted")
            snapshot = driver.execute_script("return window.__snapshot;")
            print("snapshot %.1f" % snapshot, flush=True)
            print("paint %.1f" % painted, flush=True)
        # The first row shown (the table is sorted by id): app00000 of service svc00.
        wait_for(driver, "document.querySelector('tr[data-id=\"svc00/app00000\"]')")
        for n in range(puts):
            expected = 5 + n % 2
            driver.execute_script(CHANGED, "svc00/app00000", str(expected))
            sent = time.time() * 1000
            put("/desired/svc00/app00000", spec(0, expected))
            seen = wait_for(driver, "window.__seen")
            print("put %.1f" % (seen - sent), flush=True)
    finally:
        driver.quit()


main()
