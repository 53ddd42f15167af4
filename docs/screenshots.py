"""Take the README's screenshots of the console: a dry-run service on loopback, a conversation
played on its simulated phones, and Chromium photographing the chat list, a transcript and the
phones.

    .venv/bin/python -m docs.screenshots [FOLDER]

FOLDER defaults to docs/images. It needs what the tests need (requirements-dev.txt, and
Chromium: `bash tests/install-chromium.sh`).
"""

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser import NO_CHROMIUM, chromium_path, serve
from tests.support import ADMIN_TOKEN

IMAGES = Path(__file__).resolve().parent / "images"
WIDTH = 1100
CONVERSATION = [
    ("a", "Hi, I'm outside the station. Which car are you?"),
    ("b", "Silver estate, by the taxi rank. 2 minutes!"),
    (
        "a",
        "Great. I've got two big suitcases and a folded pram, so I'll need the boot; is there "
        "room for all of it, or shall I ask for a larger car? Also, could we stop at a cash "
        "machine on the way? Thanks!",
    ),
    ("b", "Plenty of room, and a cash machine is no problem. See you in a minute."),
]


def take(folder: Path) -> list[Path]:
    """Play a conversation on the console and photograph it into `folder`; return the files."""
    chromium = chromium_path()
    if chromium is None:
        raise SystemExit(NO_CHROMIUM)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        try:
            return take_with(browser, folder)
        finally:
            browser.close()


def take_with(browser: Browser, folder: Path) -> list[Path]:
    """`take`, in a browser already running."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        settings = {
            "DATABASE_URL": f"sqlite:///{scratch}/chats.db",
            "STORE_MESSAGE_BODIES": "true",
            "SEND_RATE": "0",
            "LOG_LEVEL": "WARNING",
        }
        with serve(settings) as console:
            context = browser.new_context(
                base_url=console.url, viewport={"width": WIDTH, "height": 900}
            )
            try:
                return photograph(context.new_page(), folder)
            finally:
                context.close()


def photograph(page: Page, folder: Path) -> list[Path]:
    page.goto("/console/sign-in")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    for a, b in [("+447700900101", "+447700900102"), ("+447700900103", "+447700900104")]:
        page.goto("/console/chats")
        page.get_by_label("Person A's number").fill(a)
        page.get_by_label("Person B's number").fill(b)
        page.get_by_role("button", name="Start the chat").click()
    for side, text in CONVERSATION:
        page.get_by_label(f"Text from {side.upper()} to").fill(text)
        page.get_by_role("button", name=f"Send as {side.upper()}").click()
        page.locator(f"#phone-{'b' if side == 'a' else 'a'} .inbox").get_by_text(text).wait_for()
    page.get_by_role("button", name="Report B's texts delivered").click()
    page.locator("#transcript").get_by_text("delivered at").first.wait_for()
    chat = page.url.split("#")[0]

    files = [folder / name for name in ("chats.png", "transcript.png", "phones.png")]
    page.goto("/console/chats")
    page.screenshot(path=files[0], full_page=True)
    page.goto(chat)
    # From the chat's heading to the end of its transcript.
    top = page.locator("h1").bounding_box()
    bottom = page.locator("section", has=page.locator("#transcript")).bounding_box()
    clip = {"x": 0, "y": top["y"] - 16, "width": WIDTH, "height": 0}
    clip["height"] = bottom["y"] + bottom["height"] - clip["y"] + 8
    page.screenshot(path=files[1], clip=clip, full_page=True)
    page.locator("section", has=page.locator("#phones-heading")).screenshot(path=files[2])
    return files


if __name__ == "__main__":
    for taken in take(Path(sys.argv[1]) if len(sys.argv) > 1 else IMAGES):
        print(taken)
