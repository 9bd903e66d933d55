"""The pure parts of uploads: file names, download names, and telling pictures by their bytes."""
from __future__ import annotations

import io

from PIL import Image

from chat.files.images import sniff
from chat.files.names import disposition, sanitize
from chat.files.receive import TooBig, read_file_part


def test_names_lose_folders_control_characters_and_end_dots():
    assert sanitize("../../etc/passwd") == "passwd"
    assert sanitize("C:\\Users\\me\\cv.pdf") == "cv.pdf"
    assert sanitize("a\u202egnp.exe") == "agnp.exe"  # no right-to-left override
    assert sanitize("..") == "file" and sanitize("") == "file" and sanitize(None) == "file"
    assert sanitize("x" * 300 + ".tar.gz").endswith(".gz") and len(sanitize("x" * 300)) == 200
    assert sanitize("猫 <1>.png") == "猫 _1_.png"


def test_download_names_have_an_ascii_fallback_and_the_utf8_name():
    header = disposition("attachment", 'résumé "final".pdf')
    assert header.startswith('attachment; filename="resume _final_.pdf"')
    assert header.endswith("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf")


def test_pictures_are_told_by_their_bytes_only():
    for fmt in ("PNG", "JPEG", "GIF", "WEBP"):
        out = io.BytesIO()
        Image.new("RGB", (4, 4)).save(out, format=fmt)
        assert sniff(out.getvalue()[:64]) == fmt
    assert sniff(b"<svg xmlns='http://www.w3.org/2000/svg'/>") is None
    assert sniff(b"<html>\x89PNG") is None


def test_the_file_part_is_cut_off_at_its_limit(tmp_path):
    body = (b"--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\n\r\n"
            + b"y" * 1000 + b"\r\n--b--\r\n")
    got = read_file_part(io.BytesIO(body), b"b", 1000, str(tmp_path))
    assert (got.filename, got.size, open(got.path, "rb").read()) == ("f.txt", 1000, b"y" * 1000)
    try:
        read_file_part(io.BytesIO(body), b"b", 999, str(tmp_path))
        raise AssertionError("not refused")
    except TooBig:
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == [got.path.rsplit("/", 1)[1]]


def test_an_animation_of_many_big_frames_is_refused_before_decoding(tmp_path):
    from chat.files.images import MAX_ANIMATION_PIXELS, NotAPicture, clean

    count = MAX_ANIMATION_PIXELS // 10**6 + 2  # one megapixel each: all of them, past the cap
    frames = [Image.new("P", (1000, 1000), i % 2) for i in range(count)]
    source = tmp_path / "many.gif"
    frames[0].save(source, format="GIF", save_all=True, append_images=frames[1:])
    try:
        clean(str(source), "GIF", str(tmp_path / "out.gif"), str(tmp_path / "thumb"))
        raise AssertionError("not refused")
    except NotAPicture as refused:
        assert "too many pixels" in str(refused)
    few = tmp_path / "few.gif"
    frames[0].save(few, format="GIF", save_all=True, append_images=frames[1:3])
    assert clean(str(few), "GIF", str(tmp_path / "out.gif"), str(tmp_path / "thumb")).width == 1000


def test_a_gif_whose_later_frames_outgrow_its_header_is_refused(tmp_path, monkeypatch):
    from chat.files import images
    from chat.files.images import NotAPicture, clean

    # The cap scaled down 20 times (10 megapixels), to keep the test quick: the header says
    # 1x1, the frames after it reach 2,000 x 2,000, 4 megapixels each, 16 or more together.
    monkeypatch.setattr(images, "MAX_ANIMATION_PIXELS", 10_000_000)
    frames = [Image.new("P", (1, 1), 0)] + [Image.new("P", (2000, 2000), i % 2) for i in range(6)]
    source = tmp_path / "grows.gif"
    frames[0].save(source, format="GIF", save_all=True, append_images=frames[1:])
    with Image.open(source) as opened:
        assert opened.size == (1, 1)
    try:
        clean(str(source), "GIF", str(tmp_path / "out.gif"), str(tmp_path / "thumb"))
        raise AssertionError("not refused")
    except NotAPicture as refused:
        assert "too many pixels" in str(refused)
