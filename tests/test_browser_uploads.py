"""Files and pictures in the browser (real Chromium): pick, paste and drop files, watch each
upload with its progress and cancel it, send them with a caption as one message, see the
pictures as thumbnails whose box is kept before they load, open them in the viewer, and be
told in the page when a file is too big or not the picture it says it is.

A server of this module's own runs with a small upload limit (300 KB) and quota (600 KB),
so that "too big" and "over the quota" are cheap to make. Screenshots go to $CHAT_TEST_SCREENSHOTS (a temporary folder by default;
docs/ui.md shows the ones made with CHAT_TEST_SCREENSHOTS=docs/screenshots).
"""
# ruff: noqa: F811  (the browser fixtures imported below are taken as test arguments)
from __future__ import annotations

import base64
import contextlib
import io
import os
import tempfile
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Error as PlaywrightError

from tests.conftest import mysql_env
from tests.support import ServerProcess
from tests.test_browser_chat import PHONE, browser, expect, pair, tabs  # noqa: F401  (fixtures)

LIMIT = 300_000
QUOTA = 600_000
SHOTS = Path(os.environ.get("CHAT_TEST_SCREENSHOTS") or Path(tempfile.gettempdir()) / "chat-screenshots")


@pytest.fixture(scope="module")
def server(mysql_url, redis_prefix):
    """The chat server on MariaDB and Redis with a 300 KB upload limit and a 600 KB quota."""
    proc = ServerProcess(mysql_env(mysql_url, redis_prefix, CHAT_MAX_UPLOAD_BYTES=LIMIT,
                                   CHAT_UPLOAD_QUOTA=QUOTA)).start()
    yield proc
    proc.stop()


def png(width: int, height: int, colour: str = "green") -> bytes:
    """A small PNG picture."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def picture(name: str, width: int = 640, height: int = 320, colour: str = "green") -> dict:
    """A file for Playwright's set_input_files."""
    return {"name": name, "mimeType": "image/png", "buffer": png(width, height, colour)}


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def tray_done(page, count: int) -> None:
    """Wait until the tray holds ``count`` files, each uploaded."""
    expect(page.locator(".upload-item")).to_have_count(count)
    expect(page.locator('.upload-item[data-state="done"]')).to_have_count(count)


def test_picked_files_wait_in_the_tray_and_go_as_one_message_with_a_caption(server, tabs):
    ann, ben = pair(server)
    mine = tabs(server, ann, f"/chat/u/{ben.user_id}")
    theirs = tabs(server, ben, f"/chat/u/{ann.user_id}")
    mine.page.set_input_files("#file-input", [
        picture("green.png"),
        {"name": "notes &amp; plans.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    tray_done(mine.page, 2)
    expect(mine.page.locator(".upload-item progress").first).to_have_js_property("value", 1)
    assert mine.page.locator("#messages .attachments").count() == 0  # nothing sent yet
    mine.send("our holiday")
    expect(mine.page.locator(".upload-item")).to_have_count(0)  # the tray empties
    for tab in (mine, theirs):
        bubble = tab.page.locator("#messages > .msg[data-id]").last
        expect(bubble.locator(".msg-text")).to_have_text("our holiday")
        image = bubble.locator(".attachments img")
        expect(image).to_have_count(1)
        expect(image).to_have_attribute("alt", "green.png")
        expect(image).to_have_js_property("naturalWidth", 320)  # the thumbnail, loaded
        name = bubble.locator(".attachment-file .attachment-name")
        expect(name).to_have_text("notes &amp; plans.txt")  # shown as text, never as markup
        expect(bubble.locator(".attachment-file")).to_have_attribute("download",
                                                                     "notes &amp; plans.txt")
    # One message: both files in the same bubble, on the server too.
    history = ann.get(f"/api/messages/{ben.user_id}?limit=5").json()["messages"]
    assert [len(m["attachments"]) for m in history if m["attachments"]] == [2]


def test_pasted_and_dropped_pictures_upload_and_send(server, tabs):
    ann, ben = pair(server)
    tab = tabs(server, ann, f"/chat/u/{ben.user_id}")
    page = tab.page
    data = base64.b64encode(png(200, 100, "red")).decode()
    page.evaluate("""([data]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "pasted.png", {type: "image/png"}));
        document.getElementById("text").dispatchEvent(
            new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true}));
        const dropped = new DataTransfer();
        dropped.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
        const thread = document.getElementById("thread");
        thread.dispatchEvent(new DragEvent("dragover", {dataTransfer: dropped, bubbles: true, cancelable: true}));
        thread.dispatchEvent(new DragEvent("drop", {dataTransfer: dropped, bubbles: true, cancelable: true}));
    }""", [data])
    tray_done(page, 2)
    expect(page.locator(".upload-item .upload-name")).to_have_text(["pasted.png", "dropped.png"])
    page.locator("#send").click()
    bubble = page.locator("#messages > .msg[data-id]").last
    expect(bubble.locator(".attachments img")).to_have_count(2)
    expect(bubble.locator(".attachments img").first).to_have_attribute("alt", "pasted.png")


def test_each_upload_shows_its_progress_and_can_be_cancelled(server, tabs):
    ann, ben = pair(server)
    tab = tabs(server, ann, f"/chat/u/{ben.user_id}")
    page = tab.page
    held = []
    page.route("**/api/uploads", lambda route: held.append(route))  # answered below, or never
    page.set_input_files("#file-input", [picture("keep.png"), picture("drop.png", colour="blue")])
    expect(page.locator('.upload-item[data-state="uploading"]')).to_have_count(2)
    expect(page.locator(".upload-item progress")).to_have_count(2)
    page.wait_for_function("() => true")  # let the route handler run
    # Nothing sent yet: the bars move without a value (indeterminate) rather than sit at 0.
    expect(page.locator(".upload-item progress").first).to_have_js_property("position", -1)
    page.fill("#text", "two pictures on the way")
    shot(page, "files-uploading")
    page.get_by_role("button", name="Remove drop.png").click()
    expect(page.locator(".upload-item .upload-name")).to_have_text(["keep.png"])
    page.unroute("**/api/uploads")
    for route in held:
        with contextlib.suppress(PlaywrightError):  # the cancelled one was aborted by the page
            route.continue_()
    tray_done(page, 1)
    page.fill("#text", "")
    tab.send("")  # Enter with no caption sends the files alone
    bubble = page.locator("#messages > .msg[data-id]").last
    expect(bubble.locator(".attachments img")).to_have_count(1)
    expect(bubble.locator(".attachments img")).to_have_attribute("alt", "keep.png")


def test_a_too_big_file_is_refused_before_upload_and_a_broken_picture_after(server, tabs):
    ann, ben = pair(server)
    tab = tabs(server, ann, f"/chat/u/{ben.user_id}")
    page = tab.page
    requests_made = []
    page.on("request", lambda r: requests_made.append(r.url) if "/api/uploads" in r.url else None)
    page.set_input_files("#file-input", [{"name": "huge.bin", "mimeType": "application/octet-stream",
                                          "buffer": b"\0" * (LIMIT + 1)}])
    expect(page.locator(".upload-status .upload-error")).to_contain_text("huge.bin is too big")
    expect(page.locator(".upload-status .upload-error")).to_contain_text("300.0 KB")
    assert page.locator(".upload-item").count() == 0 and not requests_made
    # A PNG cut in half: only the server can tell, and the page says what it said.
    broken = png(400, 400)[:300]
    page.set_input_files("#file-input", [{"name": "broken.png", "mimeType": "image/png",
                                          "buffer": broken}])
    failed = page.locator('.upload-item[data-state="failed"]')
    expect(failed).to_have_count(1)
    expect(failed.locator(".upload-state")).to_contain_text("could not be read")
    page.locator("#send").click()
    expect(page.locator(".upload-status .upload-error")).to_contain_text("broken.png")
    assert page.locator("#messages > .msg").count() == 0  # nothing was sent
    page.get_by_role("button", name="Remove broken.png").click()
    expect(page.locator(".upload-item")).to_have_count(0)


def test_over_the_quota_too_many_and_several_too_big_files_are_each_said(server, tabs):
    ann, ben = pair(server)
    for i in range(2):  # 500 KB of the 600 KB quota used
        made = ann.post("/api/uploads", files={"file": (f"old{i}.bin", os.urandom(250_000),
                                                        "application/octet-stream")})
        assert made.status_code == 201, made.text
    tab = tabs(server, ann, f"/chat/u/{ben.user_id}")
    page = tab.page
    page.set_input_files("#file-input", [{"name": "one more.bin", "mimeType": "application/octet-stream",
                                          "buffer": os.urandom(250_000)}])
    failed = page.locator('.upload-item[data-state="failed"]')
    expect(failed).to_have_count(1)  # only the server knows the quota: said after the upload
    expect(failed.locator(".upload-state")).to_contain_text("Over your storage quota")
    page.get_by_role("button", name="Remove one more.bin").click()
    # Eleven files: refused at once, none uploaded.
    page.set_input_files("#file-input", [{"name": f"f{i}.txt", "mimeType": "text/plain",
                                          "buffer": b"x"} for i in range(11)])
    expect(page.locator(".upload-status .upload-error")).to_contain_text("at most 10 files")
    assert page.locator(".upload-item").count() == 0
    # Two too big and one that fits: each too-big file is named, the small one goes.
    big = b"\0" * (LIMIT + 1)
    page.set_input_files("#file-input", [
        {"name": "a.bin", "mimeType": "application/octet-stream", "buffer": big},
        {"name": "small.txt", "mimeType": "text/plain", "buffer": b"fits"},
        {"name": "b.bin", "mimeType": "application/octet-stream", "buffer": big}])
    error = page.locator(".upload-status .upload-error")
    expect(error).to_contain_text("a.bin is too big")
    expect(error).to_contain_text("b.bin is too big")
    tray_done(page, 1)
    expect(page.locator(".upload-item .upload-name")).to_have_text(["small.txt"])


def test_pictures_keep_their_box_open_in_the_viewer_and_download(server, tabs):
    ann, ben = pair(server)
    ids = [ann.post("/api/uploads", files={"file": (f"p{i}.png", png(640, 320, c), "image/png")}
                    ).json()["id"] for i, c in enumerate(("red", "green", "blue"))]
    ann.post("/api/messages", json={"recipient_id": ben.user_id, "content": "three",
                                    "attachments": ids})
    tab = tabs(server, ben, "/")
    page = tab.page
    page.route("**/thumb", lambda route: route.abort())  # never load: the box must still be there
    tab.goto(f"/chat/u/{ann.user_id}")
    images = page.locator("#messages .attachment-image img")
    expect(images).to_have_count(3)
    box = images.first.bounding_box()
    assert abs(box["width"] - 320) <= 1 and abs(box["height"] - 160) <= 1, box
    page.unroute("**/thumb")
    tab.goto(f"/chat/u/{ann.user_id}")  # now with the thumbnails
    expect(images.first).to_have_js_property("naturalWidth", 320)
    page.locator("#messages .attachment-image").nth(1).click()
    viewer = page.get_by_role("dialog", name="Picture")
    expect(viewer).to_be_visible()
    expect(viewer.locator(".viewer-count")).to_have_text("2 of 3")
    expect(viewer.locator(".viewer-caption")).to_have_text("p1.png")
    expect(viewer.locator(".viewer-image")).to_have_js_property("naturalWidth", 640)  # full size
    page.keyboard.press("ArrowRight")
    expect(viewer.locator(".viewer-count")).to_have_text("3 of 3")
    page.keyboard.press("ArrowRight")  # the last one: stays
    expect(viewer.locator(".viewer-count")).to_have_text("3 of 3")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(viewer.locator(".viewer-count")).to_have_text("1 of 3")
    for _ in range(6):  # Tab goes round the dialog's controls, never behind it
        page.keyboard.press("Tab")
        assert page.evaluate("document.getElementById('viewer').contains(document.activeElement)")
    download = viewer.get_by_role("link", name="Download")
    expect(download).to_have_attribute("download", "p0.png")
    with page.expect_download() as got:
        download.click()
    assert got.value.suggested_filename == "p0.png"
    shot(page, "files-viewer")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(page.locator("#messages .attachment-image").nth(1)).to_be_focused()


def test_a_reply_and_a_search_result_show_the_picture_small(sqlite_server, tabs):
    # Search on the embedded default (the shared MariaDB has no Mroonga; tests/test_search.py
    # covers search on MariaDB).
    server = sqlite_server
    ann, ben = pair(server)
    cat, dog = (ann.post("/api/uploads", files={"file": (name, png(300, 300), "image/png")}
                         ).json()["id"] for name in ("cat.png", "dog.png"))
    original = ann.post("/api/messages", json={"recipient_id": ben.user_id,
                                               "content": "catnip report", "attachments": [cat]}
                        ).json()["id"]
    alone = ann.post("/api/messages", json={"recipient_id": ben.user_id, "content": "",
                                            "attachments": [dog]}).json()["id"]
    # More than a history page (30) between: the originals are not among the loaded messages.
    for i in range(30):
        ann.post("/api/messages", json={"recipient_id": ben.user_id, "content": f"line {i}"})
    ben.post("/api/messages", json={"recipient_id": ann.user_id, "content": "so cute",
                                    "reply_to": original})
    ben.post("/api/messages", json={"recipient_id": ann.user_id, "content": "and this one",
                                    "reply_to": alone})
    tab = tabs(server, ann, f"/chat/u/{ben.user_id}")
    page = tab.page
    quotes = page.locator("#messages .reply-quote")
    expect(quotes).to_have_count(2)
    expect(quotes.nth(0).locator("img.small-thumb")).to_have_attribute("alt", "cat.png")
    expect(quotes.nth(1).locator("img.small-thumb")).to_have_attribute("alt", "dog.png")
    expect(quotes.nth(1).locator(".reply-excerpt")).to_have_text("Attachment")  # no text
    assert page.locator(f'#messages .msg[data-id="{original}"]').count() == 0
    page.keyboard.press("Control+k")
    page.keyboard.type("catnip")
    hit = page.locator(".search-result")
    expect(hit).to_have_count(1)
    expect(hit.locator("img.small-thumb")).to_have_attribute("alt", "cat.png")


def test_files_at_phone_width_in_chinese(server, tabs):
    ann, ben = pair(server)
    tab = tabs(server, ann, f"/chat/u/{ben.user_id}", viewport=PHONE, locale="zh-CN")
    page = tab.page
    page.set_input_files("#file-input", [{"name": "大文件.bin", "mimeType": "application/octet-stream",
                                          "buffer": b"\0" * (LIMIT + 1)}])
    expect(page.locator(".upload-status .upload-error")).to_contain_text("大文件.bin 太大")
    # What only the server can tell is said in Chinese too.
    page.set_input_files("#file-input", [{"name": "坏的.png", "mimeType": "image/png",
                                          "buffer": png(400, 400)[:300]}])
    failed = page.locator('.upload-item[data-state="failed"]')
    expect(failed.locator(".upload-state")).to_contain_text("无法读取这张图片")
    page.get_by_role("button", name="移除 坏的.png").click()
    page.set_input_files("#file-input", [picture("风景.png", 800, 600)])
    tray_done(page, 1)
    expect(page.get_by_role("button", name="移除 风景.png")).to_be_visible()
    shot(page, "files-uploading-phone-zh")
    tab.send("周末的照片")
    bubble = page.locator("#messages > .msg[data-id]").last
    image = bubble.locator(".attachments img")
    expect(image).to_have_js_property("naturalWidth", 320)
    width = image.bounding_box()["width"]
    assert width <= PHONE["width"], width  # the picture fits the phone's screen
    shot(page, "files-picture-phone-zh")
    bubble.locator(".attachment-image").click()
    viewer = page.get_by_role("dialog", name="图片")
    expect(viewer.locator(".viewer-count")).to_have_text("1 / 1")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()


def test_a_reply_and_a_search_result_show_the_picture_at_phone_width_in_chinese(sqlite_server,
                                                                               tabs):
    server = sqlite_server
    ann, ben = pair(server)
    cat = ann.post("/api/uploads", files={"file": ("猫.png", png(400, 300, "orange"),
                                                   "image/png")}).json()["id"]
    original = ann.post("/api/messages", json={"recipient_id": ben.user_id,
                                               "content": "猫薄荷报告", "attachments": [cat]}
                        ).json()["id"]
    ben.post("/api/messages", json={"recipient_id": ann.user_id, "content": "好可爱",
                                    "reply_to": original})
    tab = tabs(server, ann, f"/chat/u/{ben.user_id}", viewport=PHONE, locale="zh-CN")
    page = tab.page
    quote = page.locator("#messages .reply-quote")
    expect(quote).to_have_count(1)
    thumb = quote.locator("img.small-thumb")
    expect(thumb).to_have_attribute("alt", "猫.png")
    expect(thumb).to_have_js_property("complete", True)
    box = thumb.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    shot(page, "files-reply-phone-zh")
    page.locator("#thread-search").click()  # at phone width: search in this conversation
    page.keyboard.type("薄荷")
    hit = page.locator(".search-result")
    expect(hit).to_have_count(1)
    expect(hit.locator("mark")).to_have_text("薄荷")
    small = hit.locator("img.small-thumb")
    expect(small).to_have_attribute("alt", "猫.png")
    expect(small).to_be_in_viewport()
    shot(page, "files-search-phone-zh")
