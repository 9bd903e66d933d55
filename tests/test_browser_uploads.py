"""Files and pictures in the browser (real Chromium): pick a file, see the picture arrive."""
from __future__ import annotations

import io

from PIL import Image
from playwright.sync_api import expect

from tests.test_browser_chat import browser, pair, tabs  # noqa: F401  (fixtures)


def test_a_picked_picture_and_file_show_in_both_bubbles(server, tabs):  # noqa: F811
    ann, ben = pair(server)
    out = io.BytesIO()
    Image.new("RGB", (640, 320), "green").save(out, format="PNG")
    mine = tabs(server, ann, f"/chat/u/{ben.user_id}")
    theirs = tabs(server, ben, f"/chat/u/{ann.user_id}")
    mine.page.set_input_files("#file-input", [
        {"name": "green.png", "mimeType": "image/png", "buffer": out.getvalue()},
        {"name": "notes &amp; plans.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    for tab in (mine, theirs):
        image = tab.page.locator("#messages .attachments img")
        expect(image).to_have_count(1)
        expect(image).to_have_attribute("alt", "green.png")
        expect(image).to_have_js_property("naturalWidth", 320)  # the thumbnail, loaded
        link = tab.page.locator("#messages .attachment-file .attachment-name")
        expect(link).to_have_text("notes &amp; plans.txt")  # shown as text, never as markup
