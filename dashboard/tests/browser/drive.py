"""Drives the dashboard in headless Chromium through chromedriver (Selenium), the way a
person would use it, and saves a screenshot of every page. See chromium.py for how it is run.

The dashboard here has no actions: the deployment page offers none, and a POST is refused.
Every wait has a deadline; a failed expectation raises, and the exit status is non-zero.
"""

from selenium.webdriver.common.by import By

from chromium import ask, base, browser, cell, etcdctl_put, passed, post, shot, wait


def main():
    driver = browser()
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
        # Without --dashboard-actions there is nothing to click and no route to write with.
        assert not driver.find_elements(By.ID, "actions")
        assert not driver.find_elements(By.CSS_SELECTOR, "#main button#scale, #main button#pause")
        status = post(driver, "/api/deployments/web/blue/actions",
                      {"action": "scale", "instances": 9, "revision": 1},
                      {"Content-Type": "application/json", "X-Theseus-Dashboard": "action"})
        assert status in (404, 405), status
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
        # The replica's own facts: Marathon, its work queues, and how far behind its watch is.
        wait(driver, "the leader reports Marathon reachable",
             lambda d: "reachable since" in d.find_element(By.ID, "host-facts").text)
        facts = driver.find_element(By.ID, "host-facts").text
        assert "work queue (deployments)" in facts and "waiting" in facts, facts
        wait(driver, "the watch says how far behind etcd it is",
             lambda d: d.find_element(By.ID, "watch-lag").text.startswith("caught up"))
        assert driver.find_element(By.ID, "etcd-reachable").text.startswith("answered"), \
            driver.find_element(By.ID, "etcd-reachable").text
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
    passed()


main()
