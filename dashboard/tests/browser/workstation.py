"""Drives the controller page of a dashboard that runs beside no controller (as `theseus
dashboard` does on a workstation that reaches only etcd): it shows what it can know of etcd
and says plainly where Marathon's reachability and the work queues are shown. See
chromium.py for how it is run.
"""

from selenium.webdriver.common.by import By

from chromium import base, browser, passed, shot, text_of, wait


def main():
    driver = browser()
    try:
        driver.get(base + "/controller")
        wait(driver, "the page says where the controller's own facts are",
             lambda d: d.find_elements(By.ID, "host-note"))
        note = text_of(driver, "#host-note")
        assert "reaches only etcd" in note and "controller's own dashboard" in note, note
        assert not driver.find_elements(By.ID, "host-facts")
        wait(driver, "etcd answered", lambda d: (text_of(d, "#etcd-reachable") or "").startswith("answered"))
        wait(driver, "the watch is caught up",
             lambda d: (text_of(d, "#watch-lag") or "").startswith("caught up"))
        page = driver.find_element(By.ID, "main").text
        assert "No replica takes part in the election." in page, page
        shot(driver, "controller-workstation")
    finally:
        driver.quit()
    passed()


main()
