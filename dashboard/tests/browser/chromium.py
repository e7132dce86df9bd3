"""The headless Chromium the driver scripts share, and what they do with it: waits with
deadlines, screenshots, etcdctl, and the test's requests.

Every script is run by tests/browser.rs as

    SCRIPT BASE_URL SCREENSHOT_DIR ETCD_ENDPOINT

Lines starting with `@` on stdout ask the test for something (`@kill-etcd`,
`@restart-etcd`); the test answers with one line on stdin once it is done. `@passed` ends a
script that met every expectation.
"""

import json
import os
import subprocess
import sys

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

DEADLINE = 30

base, shots, etcd = sys.argv[1:4]


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ["CHROMIUM_BIN"]
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,900", "--no-first-run", "--disable-extensions"]:
        options.add_argument(flag)
    service = Service(executable_path=os.environ["CHROMEDRIVER_BIN"])
    return webdriver.Chrome(service=service, options=options)


def ask(request):
    print("@" + request, flush=True)
    answer = sys.stdin.readline().strip()
    if answer != "done":
        raise RuntimeError("the test did not do %s: %r" % (request, answer))


def passed():
    print("@passed", flush=True)


def etcdctl(*args):
    env = dict(os.environ, ETCDCTL_API="3")
    return subprocess.run(["etcdctl", "--endpoints", etcd, *args], env=env, check=True,
                          stdout=subprocess.PIPE).stdout.decode()


def etcdctl_put(key, value):
    etcdctl("put", key, value)


def etcd_json(key):
    """The JSON value at `key`, as etcd holds it now."""
    return json.loads(etcdctl("get", key, "--print-value-only"))


def mod_revision(key):
    """The mod revision of `key` now."""
    return json.loads(etcdctl("get", key, "-w", "json"))["kvs"][0]["mod_revision"]


def wait(driver, what, condition):
    try:
        return WebDriverWait(driver, DEADLINE, poll_frequency=0.05).until(lambda d: condition(d))
    except TimeoutException:
        shot(driver, "failed-" + what.replace(" ", "-")[:40])
        raise AssertionError("timed out waiting until " + what + "; page says: " +
                             driver.find_element(By.TAG_NAME, "body").text[:2000])


def shot(driver, name):
    driver.save_screenshot(os.path.join(shots, name + ".png"))


def text_of(driver, css):
    """The text of the first element matching `css`, read in one step (pages are redrawn
    live), or None."""
    return driver.execute_script(
        "const node = document.querySelector(arguments[0]);"
        "return node ? node.textContent : null;", css)


def cell(driver, deployment, css):
    """The text of a cell of a fleet row."""
    return text_of(driver, 'tr[data-id="%s"] %s' % (deployment, css))


def post(driver, path, body, headers):
    """POSTs `body` as JSON from the page, the way a script of the page could; the answer's
    HTTP status."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', headers: arguments[2], body: JSON.stringify(arguments[1])})"
        "  .then((response) => done(response.status), (error) => done(String(error)));",
        path, body, headers)
