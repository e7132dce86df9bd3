"""Drives the dashboard in headless Chromium through chromedriver (Selenium), the way a
person would use it, and saves a screenshot of every page.

Run by tests/browser.rs, which starts etcd, localmarathon and the controller first:

    drive.py BASE_URL SCREENSHOT_DIR ETCD_ENDPOINT

Lines starting with `@` on stdout ask the test for something (`@kill-etcd`,
`@restart-etcd`); the test answers with one line on stdin once it is done. Every wait has a
deadline; a failed expectation raises, and the exit status is non-zero.
"""

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


def ask(request):
    print("@" + request, flush=True)
    answer = sys.stdin.readline().strip()
    if answer != "done":
        raise RuntimeError("the test did not do %s: %r" % (request, answer))


def etcdctl_put(key, value):
    env = dict(os.environ, ETCDCTL_API="3")
    subprocess.run(["etcdctl", "--endpoints", etcd, "put", key, value], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def wait(driver, what, condition):
    try:
        return WebDriverWait(driver, DEADLINE, poll_frequency=0.05).until(lambda d: condition(d))
    except TimeoutException:
        shot(driver, "failed-" + what.replace(" ", "-")[:40])
        raise AssertionError("timed out waiting until " + what + "; page says: " +
                             driver.find_element(By.TAG_NAME, "body").text[:2000])


def shot(driver, name):
    driver.save_screenshot(os.path.join(shots, name + ".png"))


def cell(driver, deployment, css):
    """The text of a cell of a fleet row, read in one step (the table is redrawn live)."""
    return driver.execute_script(
        "const cell = document.querySelector(arguments[0]);"
        "return cell ? cell.textContent : null;",
        'tr[data-id="%s"] %s' % (deployment, css))


def main():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ["CHROMIUM_BIN"]
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,900", "--no-first-run", "--disable-extensions"]:
        options.add_argument(flag)
    service = Service(executable_path=os.environ["CHROMEDRIVER_BIN"])
    driver = webdriver.Chrome(service=service, options=options)
    try:
        # The fleet page lists the deployments.
        driver.get(base + "/")
        wait(driver, "the fleet lists web/blue", lambda d: cell(d, "web/blue", "td.running") == "2")
        wait(driver, "the page says live",
             lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-link") == "live")
        # A label holding markup is shown as text and never runs.
        wait(driver, "web/xss is listed", lambda d: cell(d, "web/xss", ".label") is not None)
        assert cell(driver, "web/xss", ".label") == "<script>document.title='pwned'</script>", \
            cell(driver, "web/xss", ".label")
        assert driver.title == "theseus", driver.title
        assert not driver.find_elements(By.CSS_SELECTOR, "#fleet script")
        assert cell(driver, "web/xss", "td.phase") == "Invalid"
        shot(driver, "fleet")

        # A change in etcd reaches the open page without a reload.
        driver.execute_script("window.notReloaded = true;")
        etcdctl_put("/desired/web/blue", '{"cmd": "sleep 600", "ports": {"http": 8080}, '
                    '"instances": 3, "labels": ["blue"], "environment": {"API_TOKEN": "s3cret"}}')
        wait(driver, "web/blue shows 3 desired", lambda d: cell(d, "web/blue", "td.desired") == "3")
        wait(driver, "web/blue runs 3", lambda d: cell(d, "web/blue", "td.running") == "3")
        assert driver.execute_script("return window.notReloaded === true;"), "the page reloaded"
        # Filtering by text keeps only matching rows.
        driver.find_element(By.ID, "filter").send_keys("xss")
        wait(driver, "the filter keeps only web/xss",
             lambda d: len(d.find_elements(By.CSS_SELECTOR, "#fleet tbody tr")) == 1)
        driver.find_element(By.ID, "filter").clear()
        driver.execute_script("document.getElementById('filter').dispatchEvent(new Event('input'))")
        shot(driver, "fleet-after-put")

        # The deployment page shows its tasks, with their ports as links, and masks secrets.
        driver.find_element(By.CSS_SELECTOR, 'tr[data-id="web/blue"] a').click()
        wait(driver, "web/blue's three tasks are listed",
             lambda d: len(d.find_elements(By.CSS_SELECTOR, "#tasks tbody tr")) == 3)
        links = driver.find_elements(By.CSS_SELECTOR, "#tasks tbody tr a")
        assert links and links[0].get_attribute("href").startswith("http://127.0.0."), \
            [a.get_attribute("href") for a in links]
        spec = driver.find_element(By.ID, "spec").text
        assert "s3cret" not in spec and "API_TOKEN" in spec, spec
        page = driver.find_element(By.ID, "main").text
        assert "Valid" in page and "SpecValid" in page, page
        shot(driver, "deployment")

        # The services page answers what node-list answers.
        driver.get(base + "/services")
        wait(driver, "web serves three endpoints", lambda d: len(
            d.find_elements(By.CSS_SELECTOR, 'section[data-service="web"] tbody tr')) == 3)
        page = driver.find_element(By.ID, "main").text
        assert "null" not in page and "theseus guest node-list web --ports http" in page, page
        assert driver.find_elements(By.CSS_SELECTOR, 'section[data-service="web"] p.muted a')
        shot(driver, "services")

        # The controller page names the leader.
        driver.get(base + "/controller")
        wait(driver, "a leader is named", lambda d: "leader" in d.find_element(By.ID, "main").text)
        page = driver.find_element(By.ID, "main").text
        assert "HTMLElement" not in page and "this replica" in page, page
        shot(driver, "controller")

        # Without etcd the page says it is disconnected; with etcd back it is live again and
        # shows what etcd holds now.
        driver.get(base + "/")
        wait(driver, "the fleet is live again",
             lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-link") == "live")
        ask("kill-etcd")
        wait(driver, "the page says disconnected",
             lambda d: "Disconnected" in d.find_element(By.ID, "connection").text)
        assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-link") != "live"
        shot(driver, "disconnected")
        ask("restart-etcd")
        wait(driver, "the page is live again",
             lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-link") == "live")
        etcdctl_put("/desired/web/green", '{"cmd": "sleep 600", "labels": ["green"]}')
        wait(driver, "web/green appears", lambda d: cell(d, "web/green", "td.phase") is not None)
        shot(driver, "reconnected")
    finally:
        driver.quit()
    print("@passed", flush=True)


main()
