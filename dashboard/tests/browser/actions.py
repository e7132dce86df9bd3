"""Drives a dashboard served with --dashboard-actions in headless Chromium: a deployment is
scaled, paused, resumed and undone from its page, two of its recorded revisions are
compared, and an action based on a revision someone else has replaced since is refused with
nothing overwritten. See chromium.py for how it is run.

tests/browser.rs starts it with web/app running one instance of its first spec, which holds
a secret-looking variable. Every wait has a deadline; a failed expectation raises, and the
exit status is non-zero.
"""

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from chromium import (base, browser, cell, etcd_json, etcdctl_put, mod_revision, passed, post,
                     shot, text_of, wait)

KEY = "/desired/web/app"


def panel_revision(driver):
    """The revision the action panel was drawn for."""
    value = driver.execute_script(
        "const panel = document.getElementById('actions');"
        "return panel ? panel.dataset.revision : null;")
    return int(value) if value else None


def outcome(driver):
    return driver.execute_script(
        "const notice = document.getElementById('action-result');"
        "return notice ? notice.dataset.outcome : null;")


def act(driver, button, expected="written"):
    """Clicks an action button and waits for the page to report `expected`; returns the
    revision the panel was drawn for."""
    revision = panel_revision(driver)
    driver.find_element(By.ID, button).click()
    wait(driver, "the page reports %s %s" % (button, expected),
         lambda d: outcome(d) not in (None, "pending"))
    assert outcome(driver) == expected, text_of(driver, "#action-result")
    return revision


def choose(driver, select_id, value):
    Select(driver.find_element(By.ID, select_id)).select_by_value(value)


def main():
    driver = browser()
    try:
        driver.get(base + "/deployments/web/app")
        wait(driver, "the page offers actions", lambda d: panel_revision(d) is not None)
        first = panel_revision(driver)
        assert first == mod_revision(KEY), (first, mod_revision(KEY))
        wait(driver, "the first revision is in the history",
             lambda d: d.find_elements(By.CSS_SELECTOR, '#undo-revision option[value="%d"]' % first))
        shot(driver, "actions")

        # Scale from the page: /desired changes, and so does what the page shows.
        instances = driver.find_element(By.ID, "scale-instances")
        instances.clear()
        instances.send_keys("2")
        assert act(driver, "scale") == first
        spec = etcd_json(KEY)
        assert spec["instances"] == 2 and spec["environment"]["DB_PASSWORD"] == "hunter2", spec
        wait(driver, "the page shows two instances running",
             lambda d: (text_of(d, "#instances") or "").startswith("2 desired, 2 running"))
        scaled = panel_revision(driver)
        assert scaled > first, (scaled, first)
        shot(driver, "actions-scaled")

        # Pause, then resume.
        wait(driver, "the page offers pause", lambda d: d.find_elements(By.ID, "pause"))
        act(driver, "pause")
        assert etcd_json(KEY)["paused"] is True
        wait(driver, "the page offers resume", lambda d: d.find_elements(By.ID, "resume"))
        shot(driver, "actions-paused")
        act(driver, "resume")
        assert "paused" not in etcd_json(KEY)
        wait(driver, "the page offers pause again", lambda d: d.find_elements(By.ID, "pause"))

        # Compare the first revision with the scaled one: the instances line changed, and the
        # secret stays masked.
        wait(driver, "the scaled revision is in the history",
             lambda d: d.find_elements(By.CSS_SELECTOR, '#diff-to option[value="%d"]' % scaled))
        choose(driver, "diff-from", str(first))
        choose(driver, "diff-to", str(scaled))
        driver.find_element(By.ID, "diff-show").click()
        wait(driver, "the diff is shown", lambda d: d.find_elements(By.CSS_SELECTOR, "#diff span"))
        def changed(css):
            """The lines marked `css`, as mark and text without indentation or comma."""
            return [(e.text[0], e.text[1:].strip().rstrip(","))
                    for e in driver.find_elements(By.CSS_SELECTOR, "#diff " + css)]
        assert changed(".diff-removed") == [("-", '"instances": 1')], changed(".diff-removed")
        assert changed(".diff-added") == [("+", '"instances": 2')], changed(".diff-added")
        diff = driver.find_element(By.ID, "diff").text
        assert "hunter2" not in diff and "DB_PASSWORD" in diff, diff
        driver.find_element(By.ID, "diff").location_once_scrolled_into_view
        shot(driver, "actions-diff")
        driver.execute_script("window.scrollTo(0, 0)")

        # Undo to the first revision: its spec comes back as a new revision.
        choose(driver, "undo-revision", str(first))
        act(driver, "undo")
        spec = etcd_json(KEY)
        assert spec["instances"] == 1, spec
        assert spec["change_cause"].startswith("undo: back to revision %d" % first), spec
        wait(driver, "the page shows one instance running",
             lambda d: (text_of(d, "#instances") or "").startswith("1 desired, 1 running"))
        shot(driver, "actions-undone")

        # Someone writes the key between the page showing it and the click: the action is
        # refused, nothing is overwritten, and the page shows the new state.
        shown = panel_revision(driver)
        instances = driver.find_element(By.ID, "scale-instances")
        instances.clear()
        instances.send_keys("5")
        concurrent = ('{"cmd": "sleep 600", "instances": 3, "labels": ["app"], '
                      '"environment": {"DB_PASSWORD": "hunter2", "WRITTEN_BY": "etcdctl"}}')
        etcdctl_put(KEY, concurrent)
        wait(driver, "the page sees the concurrent write",
             lambda d: "WRITTEN_BY" in (text_of(d, "#spec") or ""))
        assert panel_revision(driver) == shown, "the edited form keeps its revision"
        act(driver, "scale", expected="conflict")
        notice = text_of(driver, "#action-result")
        assert "nothing was written" in notice and "changed since revision %d" % shown in notice, notice
        assert etcd_json(KEY) == {"cmd": "sleep 600", "instances": 3, "labels": ["app"],
                                  "environment": {"DB_PASSWORD": "hunter2",
                                                  "WRITTEN_BY": "etcdctl"}}, etcd_json(KEY)
        wait(driver, "the page offers actions on the new revision",
             lambda d: (panel_revision(d) or 0) > shown)
        assert driver.find_element(By.ID, "scale-instances").get_attribute("value") == "3"
        shot(driver, "actions-conflict")

        # A request without the dashboard's header (what a form on another site could send)
        # is refused.
        status = post(driver, "/api/deployments/web/app/actions",
                      {"action": "scale", "instances": 9, "revision": panel_revision(driver)},
                      {"Content-Type": "application/json"})
        assert status == 403, status
        assert etcd_json(KEY)["instances"] == 3

        # The fleet row shows what /desired holds.
        driver.get(base + "/")
        wait(driver, "the fleet row shows three desired", lambda d: cell(d, "web/app", "td.desired") == "3")
        shot(driver, "actions-fleet")
    finally:
        driver.quit()
    passed()


main()
