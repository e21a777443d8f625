"""The township worklist in a real headless browser (Chromium through Selenium) against the real backend: a
clerk signs in, accepts, returns and completes forwarded filings by clicking, and the kiosk API sees each
status. Screenshots of every step go to a temporary directory (kept by pytest; the path is printed).

Needs the Debian packages chromium and chromium-driver, and selenium (pip); skipped without them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import shutil
from pathlib import Path

import pytest
import requests
from PIL import Image, ImageDraw

from backend.worklist import set_clerk_password

selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        CHROMIUM is None or DRIVER is None,
        reason="Chromium is not installed (apt-get install -y chromium chromium-driver)",
    ),
]

PASSWORD = "township-clerk-browser"
ELDER = {"ssn": "370102195203140527", "name": "王秀兰"}
WAIT = 20.0  # seconds: an upper bound for a page load, not a timing assert


class Api:
    """The kiosk API over mutual TLS, as the terminal of the demo PKI."""

    def __init__(self, server) -> None:
        self.server = server
        self.http = requests.Session()
        self.http.trust_env = False  # a CA bundle named in the environment must not replace the demo CA
        self.http.verify = str(server.ca_path)
        self.http.cert = (str(server.client_cert), str(server.client_key))

    def put_image(self, data: bytes, media: str) -> str:
        digest = hashlib.sha256(data).hexdigest()
        r = self.http.put(f"{self.server.url}/v1/attachments/{digest}", data=data,
                          headers={"Content-Type": media}, timeout=10)
        assert r.status_code in (200, 201), r.text
        return digest

    def file(self, service: str, answers: dict, n: int, when: dt.datetime) -> dict:
        body = {
            "service": service, "local_number": f"L{when:%Y%m%d}-BRWS{n:02d}",
            "person": {**ELDER, "credential": "sscard_pin"}, "answers": answers, "created_at": when.isoformat(),
        }
        r = self.http.post(f"{self.server.url}/v1/filings", json=body,
                           headers={"Idempotency-Key": f"browser-filing-{n:04d}"}, timeout=10)
        assert r.status_code == 201, r.text
        return r.json()

    def rate(self, satisfaction: str, reasons: list[str], n: int, when: dt.datetime) -> None:
        body = {"service": "business_loan", "satisfaction": satisfaction, "reasons": reasons,
                "created_at": when.isoformat()}
        r = self.http.post(f"{self.server.url}/v1/ratings", json=body,
                           headers={"Idempotency-Key": f"browser-rating-{n:04d}"}, timeout=10)
        assert r.status_code == 201, r.text

    def status(self, ref: str) -> dict:
        r = self.http.post(f"{self.server.url}/v1/sessions", json={"credential": "sscard_pin", "ssn": ELDER["ssn"]},
                           timeout=10)
        assert r.status_code == 201, r.text
        got = self.http.get(f"{self.server.url}/v1/filings/{ref}",
                            headers={"Authorization": f"Bearer {r.json()['token']}"}, timeout=10)
        assert got.status_code == 200, got.text
        return got.json()


def _picture(label: str, colour: tuple[int, int, int], fmt: str) -> bytes:
    img = Image.new("RGB", (480, 320), colour)
    draw = ImageDraw.Draw(img)
    draw.rectangle((20, 20, 460, 300), outline=(255, 255, 255), width=6)
    draw.text((40, 40), label, fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, fmt, quality=85) if fmt == "JPEG" else img.convert("L").save(buf, fmt)
    return buf.getvalue()


def _loan_answers(api: Api, n: int) -> dict:
    return {
        "name": ELDER["name"], "id_number": ELDER["ssn"], "phone": "13912345678", "village": "v03",
        "business_type": "shop", "amount": 50000, "term": "2",
        "licence": api.put_image(_picture(f"licence {n}", (30, 90, 160), "JPEG"), "image/jpeg"),
        "premises": api.put_image(_picture(f"premises {n}", (40, 130, 60), "JPEG"), "image/jpeg"),
        "signature": api.put_image(_picture(f"signature {n}", (250, 250, 250), "PNG"), "image/png"),
    }


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1100",
                "--lang=zh-CN", "--disable-gpu"):
        options.add_argument(arg)
    options.accept_insecure_certs = True  # the demo PKI's server certificate; the page itself is what is tested
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def _row_status(driver, filing_id: str) -> str:
    return driver.find_element(By.ID, f"row-{filing_id}").get_attribute("data-status")


def _wait_row(driver, filing_id: str, status: str) -> None:
    wait(driver).until(lambda d: _row_status(d, filing_id) == status)


def wait(driver) -> WebDriverWait:
    """Until a condition holds after a click: the page is replaced under it (303 after each POST). While it is
    replaced, Chromium may also answer "Node with given id does not belong to the document", a plain
    WebDriverException: retried like a stale element (the wait still ends in a TimeoutException)."""
    return WebDriverWait(driver, WAIT, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException,
                                                           WebDriverException))


def test_clerk_accepts_returns_and_completes_by_clicking(server, clock, browser, tmp_path_factory):
    shots: Path = tmp_path_factory.mktemp("worklist-screenshots")
    set_clerk_password(server.keys_dir, PASSWORD)
    api = Api(server)
    when = dt.datetime.fromtimestamp(clock.t, dt.UTC)  # the server's (frozen) clock
    loan = api.file("business_loan", _loan_answers(api, 1), 1, when)
    job = api.file(
        "public_welfare_job",
        {"name": ELDER["name"], "id_number": ELDER["ssn"], "phone": "13912345678", "village": "v07",
         "category": "older", "position": "cleaning", "available_from": when.date().isoformat(),
         "signature": api.put_image(_picture("signature 2", (250, 250, 250), "PNG"), "image/png")},
        2, when,
    )
    third = api.file("business_loan", _loan_answers(api, 3), 3, when)
    for n, (satisfaction, reasons) in enumerate(
        (("satisfied", []), ("satisfied", []), ("basically_satisfied", []), ("dissatisfied", ["too_slow"]))
    ):
        api.rate(satisfaction, reasons, n, when)

    # Not signed in: the worklist sends the browser to the sign-in page.
    browser.get(server.worklist_url + "/")
    wait(browser).until(lambda d: d.find_elements(By.ID, "password"))
    assert browser.current_url.endswith("/login")
    browser.save_screenshot(str(shots / "01-login.png"))
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login").click()
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "table.work"))
    assert "王*兰" in browser.page_source and "王秀兰" not in browser.page_source
    for f in (loan, job, third):
        assert _row_status(browser, f["filing_id"]) == "forwarded"
    assert "办得太慢 1" in browser.page_source and "75%" in browser.page_source  # the station's satisfaction
    browser.save_screenshot(str(shots / "02-worklist.png"))

    # 受理 the loan.
    browser.find_element(By.CSS_SELECTOR, f"#row-{loan['filing_id']} button[data-action=accept]").click()
    _wait_row(browser, loan["filing_id"], "in_progress")
    assert api.status(loan["filing_id"])["status"] == "in_progress"

    # 退回 the job application with a reason from the list and a note.
    row = f"#row-{job['filing_id']}"
    Select(browser.find_element(By.CSS_SELECTOR, f"{row} select[name=reason]")).select_by_visible_text("材料不全")
    browser.find_element(By.CSS_SELECTOR, f"{row} input[name=note]").send_keys("请补充户口簿")
    browser.find_element(By.CSS_SELECTOR, f"{row} button[data-action=return]").click()
    _wait_row(browser, job["filing_id"], "returned")
    got = api.status(job["local_number"])
    assert got["status"] == "returned" and got["reason"] == "材料不全：请补充户口簿"
    browser.save_screenshot(str(shots / "03-after-accept-and-return.png"))

    # Open the loan, look at its answers and attachments, 办结 it there.
    browser.find_element(By.LINK_TEXT, loan["filing_id"]).click()
    wait(browser).until(lambda d: d.find_elements(By.ID, "status"))
    thumbs = browser.find_elements(By.CSS_SELECTOR, "img.thumb")
    assert len(thumbs) == 3
    wait(browser).until(
        lambda d: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", t) for t in thumbs)
    )
    assert "创业担保贷款申请" in browser.page_source and "杏花岭村" in browser.page_source
    assert ELDER["ssn"] not in browser.page_source
    browser.set_window_size(1500, 2100)  # the whole page, thumbnails included
    browser.save_screenshot(str(shots / "04-detail.png"))
    browser.find_element(By.CSS_SELECTOR, "div.actions button[data-action=complete]").click()
    wait(browser).until(lambda d: "已办结" in d.find_element(By.ID, "status").text)
    browser.save_screenshot(str(shots / "05-detail-done.png"))
    assert api.status(loan["filing_id"])["status"] == "done"
    assert api.status(third["filing_id"])["status"] == "forwarded"  # untouched

    # The receipt QR of the returned filing tells the same.
    v = requests.get(job["verify_url"], verify=str(server.ca_path), timeout=10).json()
    assert v["filing_status"] == "returned" and v["filing_reason"] == "材料不全：请补充户口簿"

    # Sign out: the worklist is closed again.
    browser.find_element(By.ID, "logout").click()
    wait(browser).until(lambda d: d.find_elements(By.ID, "password"))
    browser.get(server.worklist_url + "/")
    wait(browser).until(lambda d: d.current_url.endswith("/login"))
    for name in ("01-login.png", "02-worklist.png", "03-after-accept-and-return.png", "04-detail.png",
                 "05-detail-done.png"):
        assert (shots / name).stat().st_size > 10_000
    print(f"worklist screenshots: {shots}")
