"""The console in a real browser (Chromium, driven by Playwright), on every store: sign in, start
a chat, text from both simulated phones, a long text in parts, end with the notice; escaping,
CSRF, no page without the cookie, the keyboard, no script, phone width."""

import re
import socket
import struct
import threading
import time

import pytest
import requests
from playwright.sync_api import Page, expect, sync_playwright

from docs.screenshots import take_with
from tests.browser import NO_CHROMIUM, chat_id_of, chromium_path, serve, serve_wsgi
from tests.service import PROJECT
from tests.support import ADMIN_TOKEN, ALICE, BOB

A, B = f"+{ALICE}", f"+{BOB}"
# Long enough for three SMS parts (153 characters each).
LONG_TEXT = " ".join(f"word{n:03d}" for n in range(50))


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = chromium_path()
        if chromium is None:
            pytest.fail(NO_CHROMIUM)
        browser = playwright.chromium.launch(executable_path=chromium)
        yield browser
        browser.close()


@pytest.fixture
def console(store_url):
    with serve({"DATABASE_URL": store_url, "STORE_MESSAGE_BODIES": "true"}) as console:
        yield console


@pytest.fixture
def page(browser, console) -> Page:
    context = browser.new_context(base_url=console.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    yield page
    context.close()


def sign_in(page: Page, token: str = ADMIN_TOKEN) -> None:
    page.goto("/console/sign-in")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def start_chat(page: Page, a: str = A, b: str = B) -> str:
    page.get_by_label("Person A's number").fill(a)
    page.get_by_label("Person B's number").fill(b)
    page.get_by_role("button", name="Start the chat").click()
    expect(page.get_by_role("heading", name=re.compile("^Chat "))).to_be_visible()
    return chat_id_of(page.url)


def phone(page: Page, side: str):
    return page.locator(f"#phone-{side}")


def text_from(page: Page, side: str, text: str) -> None:
    label = side.upper()
    page.get_by_label(f"Text from {label} to").fill(text)
    page.get_by_role("button", name=f"Send as {label}").click()


def test_a_wrong_token_is_refused_and_the_right_one_signs_in(page):
    page.goto("/console/chats")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))

    sign_in(page, "not-the-token")
    expect(page.get_by_role("alert")).to_have_text(re.compile("not the service's admin token"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    sign_in(page)
    expect(page).to_have_url(re.compile(r"/console/chats$"))
    expect(page.get_by_role("heading", name="Chats", exact=True)).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    page.goto("/console/chats")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))


def test_a_whole_conversation_in_dry_run_from_both_simulated_phones(page):
    sign_in(page)
    start_chat(page)
    # The intros, as each phone got them.
    expect(phone(page, "a").locator(".inbox")).to_contain_text("Reply to this SMS to talk to UserB")
    expect(phone(page, "b").locator(".inbox")).to_contain_text("Reply to this SMS to talk to UserA")

    text_from(page, "a", "Where are you?")
    expect(phone(page, "b").locator(".inbox")).to_contain_text("Where are you?")
    text_from(page, "b", "At the corner.")
    expect(phone(page, "a").locator(".inbox")).to_contain_text("At the corner.")
    expect(phone(page, "b").locator(".inbox")).not_to_contain_text("At the corner.")

    # A long text leaves A's phone in three parts and reaches B joined, in three SMS parts.
    text_from(page, "a", LONG_TEXT)
    expect(phone(page, "b").locator(".inbox li").last).to_contain_text(LONG_TEXT)
    expect(phone(page, "b").locator(".inbox li").last).to_contain_text("in 3 parts")
    transcript = page.locator("#transcript")
    expect(transcript).to_contain_text("joined from 3 parts")
    expect(transcript.locator("tbody tr")).to_have_count(3)
    expect(transcript.locator("tbody tr").nth(0)).to_contain_text("A → B")
    expect(transcript.locator("tbody tr").nth(1)).to_contain_text("B → A")
    expect(transcript.locator("tbody tr").last.locator(".parts li")).to_have_count(3)
    expect(transcript.locator(".outcome")).to_have_text(["sent", "sent", "sent"])
    expect(transcript.locator(".parts li").first).to_contain_text("no receipt yet")

    # B's phone says what it got was delivered: a receipt per part, through the webhook.
    page.get_by_role("button", name="Report B's texts delivered").click()
    parts_to_b = transcript.locator("tbody tr").filter(has_text="A → B").locator(".parts li")
    expect(parts_to_b).to_have_count(4)
    for n in range(4):
        expect(parts_to_b.nth(n)).to_contain_text("delivered at")
    expect(transcript.locator("tbody tr").nth(1).locator(".parts li")).to_contain_text(
        "no receipt yet"
    )

    page.get_by_label("Text both people that the chat ended").check()
    page.get_by_role("button", name="End the chat").click()
    expect(page.locator("#chat-status")).to_contain_text("ended")
    for side in "ab":
        expect(phone(page, side).locator(".inbox li").last).to_contain_text("This chat has ended")
    expect(page.get_by_role("button", name="Send as A")).to_have_count(0)

    page.goto("/console/chats?status=ended")
    expect(page.locator("table.chats tbody tr")).to_have_count(1)
    expect(page.locator("table.chats")).to_contain_text(A)


def test_the_transcript_updates_while_it_is_open(page, console):
    sign_in(page)
    start_chat(page)
    # The same chat in a second tab: a text sent there shows up here without a reload.
    other = page.context.new_page()
    other.goto(page.url)
    text_from(other, "b", "On my way")
    expect(page.locator("#transcript")).to_contain_text("On my way")
    expect(phone(page, "a").locator(".inbox")).to_contain_text("On my way")


def test_what_a_participant_wrote_shows_as_text_and_never_runs(page):
    sign_in(page)
    start_chat(page)
    hostile = "<script>alert('a')</script><img src=x onerror=\"alert('b')\"> & \"quotes\""
    text_from(page, "a", hostile)
    expect(phone(page, "b").locator(".inbox li").last.locator(".body")).to_have_text(hostile)
    expect(page.locator("#transcript td.body")).to_have_text([hostile])
    # Reloaded and refreshed by console.js: still text.
    page.reload()
    page.wait_for_timeout(2500)
    expect(page.locator("#transcript td.body")).to_have_text([hostile])
    assert page.dialogs == []
    assert page.locator("#transcript img, .inbox img, .inbox script").count() == 0


def test_a_form_without_its_csrf_token_is_refused(page, console):
    sign_in(page)
    chat_id = start_chat(page)
    cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
    with requests.Session() as session:
        session.cookies.update(cookies)
        for form in ({}, {"csrf": "forged"}):
            answer = session.post(
                f"{console.url}/console/chats/{chat_id}/end",
                data={**form, "notify": "yes"},
                allow_redirects=False,
            )
            assert answer.status_code == 403
            assert "CSRF" in answer.text
    page.reload()
    expect(page.locator("#chat-status")).to_have_text("active")

    # The sign-in form carries its own token too.
    answer = requests.post(
        f"{console.url}/console/sign-in", data={"token": ADMIN_TOKEN}, allow_redirects=False
    )
    assert answer.status_code == 403
    assert "sms_proxy_console=" not in answer.headers.get("Set-Cookie", "")


def test_no_page_opens_without_the_cookie(page, console):
    sign_in(page)
    chat_id = start_chat(page)
    for path in [
        "/console/",
        "/console/chats",
        "/console/chats?status=all",
        f"/console/chats/{chat_id}",
    ]:
        answer = requests.get(f"{console.url}{path}", allow_redirects=False)
        assert answer.status_code == 303, path
        assert "/console/sign-in" in answer.headers["Location"]
        assert ALICE not in answer.text and "+44" not in answer.text
    for path in [f"/console/chats/{chat_id}/end", f"/console/chats/{chat_id}/phones/a"]:
        answer = requests.post(f"{console.url}{path}", data={"text": "hi"}, allow_redirects=False)
        assert answer.status_code == 401, path
        assert ALICE not in answer.text
    # A cookie the service did not sign opens nothing either.
    answer = requests.get(
        f"{console.url}/console/chats",
        cookies={"sms_proxy_console": "eyJjc3JmIjoieCJ9.forged.sig"},
        allow_redirects=False,
    )
    assert answer.status_code == 303


def test_the_console_works_with_the_keyboard_alone(page):
    page.goto("/console/sign-in")
    # The token field takes the focus by itself (autofocus), once the page has loaded.
    expect(page.get_by_label("Admin token")).to_be_focused()
    page.keyboard.type(ADMIN_TOKEN)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/chats$"))
    page.get_by_label("Person A's number").focus()
    page.keyboard.type(A)
    page.keyboard.press("Tab")
    page.keyboard.type(B)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Start the chat")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("^Chat "))).to_be_visible()
    page.get_by_label("Text from A to").focus()
    page.keyboard.type("typed, not clicked")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(phone(page, "b").locator(".inbox")).to_contain_text("typed, not clicked")


def test_every_control_has_a_label_and_the_pages_fit_a_phone(browser, console):
    context = browser.new_context(base_url=console.url, viewport={"width": 360, "height": 740})
    page = context.new_page()
    sign_in(page)
    start_chat(page)
    text_from(page, "a", LONG_TEXT)
    for path in ["/console/sign-in", "/console/chats", page.url]:
        if path == "/console/sign-in":
            page.context.clear_cookies()
        page.goto(path)
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll(
                    'input:not([type=hidden]), select, textarea, button')]
                .filter(c => !(c.labels && c.labels.length) && !c.textContent.trim()
                             && !c.getAttribute('aria-label'))
                .map(c => c.outerHTML)"""
        )
        assert unlabelled == [], path
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, path
        if path == "/console/sign-in":
            sign_in(page)
    context.close()


def test_the_lists_and_the_transcript_render_without_javascript(browser, console, page):
    sign_in(page)
    chat_id = start_chat(page)
    text_from(page, "a", "Plain HTML")
    expect(phone(page, "b").locator(".inbox")).to_contain_text("Plain HTML")
    cookies = page.context.cookies()

    context = browser.new_context(base_url=console.url, java_script_enabled=False)
    context.add_cookies(cookies)
    plain = context.new_page()
    plain.goto("/console/chats")
    expect(plain.locator("table.chats tbody tr")).to_have_count(1)
    plain.goto(f"/console/chats/{chat_id}")
    expect(plain.locator("#transcript")).to_contain_text("Plain HTML")
    text_from(plain, "b", "Forms need no script")
    # Without a script nothing refreshes the page: a relay worker may send after it loaded.
    for _ in range(50):
        if "Forms need no script" in phone(plain, "a").locator(".inbox").inner_text():
            break
        plain.wait_for_timeout(200)
        plain.reload()
    expect(phone(plain, "a").locator(".inbox")).to_contain_text("Forms need no script")
    context.close()


def test_the_readmes_screenshots_can_be_taken_again(browser, tmp_path):
    files = take_with(browser, tmp_path)
    assert [file.name for file in files] == ["chats.png", "transcript.png", "phones.png"]
    for file in files:
        assert file.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert (PROJECT / "docs" / "images" / file.name).exists()


def test_the_browser_tests_server_closes_a_response_whose_browser_went_away_after_it():
    # A browser that drops a connection (a page left while its CSS comes) resets it. When the
    # reset comes after the response was written, Werkzeug's server sees it while draining the
    # request, and leaves the response unclosed: a static file's open file then fails the test
    # that was running, as an unraisable ResourceWarning.
    written, gone, closed = threading.Event(), threading.Event(), threading.Event()

    class Body:
        def __iter__(self):
            yield b"body"
            written.set()
            gone.wait(10)

        def close(self):
            closed.set()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "4")])
        return Body()

    with serve_wsgi(app) as url:
        browser = socket.create_connection(url.removeprefix("http://").split(":"), timeout=10)
        browser.sendall(b"GET /console/static/console.css HTTP/1.1\r\nHost: x\r\n\r\n")
        assert written.wait(10)
        browser.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        browser.close()  # a reset, not an orderly close
        time.sleep(0.05)
        gone.set()
        assert closed.wait(5), "the response was never closed"
