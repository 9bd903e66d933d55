"""Files and pictures end to end (docs/protocol.md 3.10): a real server on MariaDB + Redis,
the local folder backend, and the S3 backend against a real S3-compatible server (moto's
standalone server on loopback)."""
from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import struct
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy
from PIL import ExifTags, Image

from tests.conftest import mysql_env
from tests.support import (ROOT, Api, ServerProcess, create_mysql_database, drop_mysql_database,
                           free_port, migrate)

LIMIT = 2 * 1024 * 1024
QUOTA = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def uploads_db(mysql_url):
    """A MariaDB database of this module's own.

    The session's other servers share ``mysql_url`` and run the periodic clean-up with
    their own storage: on a shared database one of them could take this module's
    recalled uploads and delete their objects from the wrong place.
    """
    url = create_mysql_database()
    migrate(url)
    yield url
    drop_mysql_database(url)


@pytest.fixture(scope="module")
def files_server(uploads_db, redis_prefix, tmp_path_factory):
    """A server with small limits, its own upload folder, and no clean-up greenlet."""
    folder = tmp_path_factory.mktemp("uploads")
    env = mysql_env(uploads_db, redis_prefix, CHAT_UPLOAD_DIR=folder,
                    CHAT_UPLOAD_SPOOL=folder / "spool", CHAT_MAX_UPLOAD_BYTES=LIMIT,
                    CHAT_UPLOAD_QUOTA=QUOTA, CHAT_UPLOAD_CLEANUP_INTERVAL=0)
    proc = ServerProcess(env).start()
    proc.folder, proc.db = folder, uploads_db
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def s3_server(redis_prefix, tmp_path_factory):
    """moto's standalone S3 server on loopback, a bucket in it, and a chat server using it
    (a database of its own, the same limits as the local one)."""
    import boto3

    url = create_mysql_database()
    migrate(url)

    port = free_port()
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **aws}, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            requests.get(endpoint, timeout=1)
            break
        except requests.RequestException:
            assert time.time() < deadline and moto.poll() is None, "moto did not start"
            time.sleep(0.1)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="chat-files")
    spool = tmp_path_factory.mktemp("spool")
    env = mysql_env(url, redis_prefix, CHAT_S3_BUCKET="chat-files",
                    CHAT_S3_ENDPOINT=endpoint, CHAT_UPLOAD_SPOOL=spool,
                    CHAT_MAX_UPLOAD_BYTES=LIMIT, CHAT_UPLOAD_QUOTA=QUOTA,
                    CHAT_UPLOAD_CLEANUP_INTERVAL=0, **aws)
    proc = ServerProcess(env).start()
    proc.s3, proc.db = client, url
    yield proc
    proc.stop()
    moto.terminate()
    moto.wait(10)
    drop_mysql_database(url)


@pytest.fixture(scope="module", params=["local", "s3"])
def backend(request) -> ServerProcess:
    """Each rule below runs on both storage backends: the local folder and S3."""
    return request.getfixturevalue("files_server" if request.param == "local" else "s3_server")


def cleanup(server: ServerProcess) -> str:
    """Run ``flask uploads-cleanup`` with the server's settings."""
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "uploads-cleanup"],
                          cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def picture(fmt: str = "PNG", size=(64, 48), mode="RGB", **save) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "red" if mode != "1" else 0).save(out, format=fmt, **save)
    return out.getvalue()


def upload(user: Api, data: bytes, name: str = "a.bin", ctype: str = "application/octet-stream"):
    return user.post("/api/uploads", files={"file": (name, data, ctype)})


def fetch(user: Api, path: str, headers: dict) -> requests.Response:
    return user.http.get(user.base + path, headers={**user.headers(), **headers}, timeout=30)


def send(user: Api, to: int, ids: list[int], content: str = "") -> dict:
    r = user.post("/api/messages", json={"recipient_id": to, "content": content,
                                         "attachments": ids})
    assert r.status_code in (200, 201), r.text
    return r.json()


@pytest.fixture(scope="module")
def trio(backend):
    a, b, c = (Api.new_user(backend.base, s) for s in ("ann", "ben", "cat"))
    a.follow_each_other(b)
    return a, b, c


def test_a_picture_attached_is_seen_by_the_other_member_not_by_a_stranger(trio):
    ann, ben, cat = trio
    r = upload(ann, picture(), "../../etc/passwd.png", "text/html")
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["kind"] == "image" and made["mime"] == "image/png"
    assert (made["width"], made["height"]) == (64, 48)
    assert made["name"] == "passwd.png"  # no folders from the given name
    assert made["thumb_url"] == f"/api/files/{made['id']}/thumb"
    # Before any message holds it, only the uploader sees it.
    assert ann.get(made["url"]).status_code == 200
    assert ben.get(made["url"]).status_code == 404
    send(ann, ben.user_id, [made["id"]])
    got = ben.get(made["url"])
    assert got.status_code == 200 and got.headers["Content-Type"] == "image/png"
    assert got.headers["Content-Disposition"].startswith("inline")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert "private" in got.headers["Cache-Control"]
    assert got.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert Image.open(io.BytesIO(got.content)).size == (64, 48)
    thumb = ben.get(made["thumb_url"])
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.content)).size) <= 320
    history = ben.get(f"/api/messages/{ann.user_id}").json()
    assert [m["attachments"] for m in history["messages"]] == [[made]]
    # A stranger: 404 for the file, the thumbnail, and when attaching someone else's upload.
    assert cat.get(made["url"]).status_code == 404
    assert cat.get(made["thumb_url"]).status_code == 404
    cat.follow_each_other(ann)
    r = cat.post("/api/messages", json={"recipient_id": ann.user_id, "content": "x",
                                        "attachments": [made["id"]]})
    assert r.status_code == 404, r.text


def test_group_members_see_a_group_file_and_others_and_leavers_do_not(trio):
    ann, ben, cat = trio
    group = ann.post("/api/groups", json={"name": "pics"}).json()
    assert ann.put(f"/api/groups/{group['id']}/members/{ben.user_id}").status_code == 200
    made = upload(ann, picture(fmt="GIF"), "a.gif").json()
    assert made["mime"] == "image/gif"
    r = ann.post("/api/messages", json={"group_id": group["id"], "content": "",
                                        "attachments": [made["id"]]})
    assert r.status_code == 201, r.text
    assert ben.get(made["url"]).headers["Content-Type"] == "image/gif"
    assert cat.get(made["url"]).status_code == 404
    # Membership counts as it is now: whoever leaves loses the group's files.
    assert ben.delete(f"/api/groups/{group['id']}/members/{ben.user_id}").status_code == 200
    assert ben.get(made["url"]).status_code == 404
    assert ben.get(made["thumb_url"]).status_code == 404
    assert ann.get(made["url"]).status_code == 200


def test_html_and_svg_are_plain_files_served_as_downloads(trio):
    ann, ben, _ = trio
    page = upload(ann, b"<html><script>alert(1)</script></html>", "cat.png", "image/png")
    svg = upload(ann, b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script>'
                      b'</svg>', "\u732b pic.svg", "image/svg+xml")
    for r in (page, svg):
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["kind"] == "file" and made["width"] is None and made["thumb_url"] is None
        got = ann.get(made["url"])
        assert got.headers["Content-Type"] == "application/octet-stream"
        assert got.headers["Content-Disposition"].startswith("attachment")
        assert b"<script>" in got.content
        assert ann.get(made["url"] + "/thumb").status_code == 404
    disp = ann.get(svg.json()["url"]).headers["Content-Disposition"]
    assert "filename*=UTF-8''%E7%8C%AB%20pic.svg" in disp and 'filename="' in disp


def test_location_metadata_is_gone_from_what_is_served(trio):
    ann, _, _ = trio
    img = Image.new("RGB", (40, 30), "blue")
    exif = img.getexif()
    exif[ExifTags.Base.Make] = "SpyCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 13.0, 7.0)
    out = io.BytesIO()
    img.save(out, format="JPEG", exif=exif)
    assert Image.open(io.BytesIO(out.getvalue())).getexif().get_ifd(ExifTags.IFD.GPSInfo)
    made = upload(ann, out.getvalue(), "holiday.jpg").json()
    served = ann.get(made["url"]).content
    again = Image.open(io.BytesIO(served))
    assert again.format == "JPEG" and again.size == (40, 30)
    assert not again.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert b"SpyCam" not in served and b"Exif" not in served


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def test_bombs_are_never_expanded(trio):
    ann, ben, _ = trio
    # A zip of 100 MiB of zeros named .png: a plain file, kept and served as sent.
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros", b"\0" * (100 << 20))
    r = upload(ann, out.getvalue(), "bomb.png", "image/png")
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["kind"], made["mime"], made["size"]) == ("file", "application/octet-stream",
                                                          len(out.getvalue()))
    assert ann.get(made["url"]).content == out.getvalue()
    # A real PNG with a text chunk that inflates to 50 MiB: refused, not inflated.
    png = picture()
    text = png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"\0" * (50 << 20), 9))
    r = upload(ann, png[:33] + text + png[33:], "text.png")
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    # A 64x48 PNG whose pixel stream inflates to 100 MiB: only its 64x48 pixels are read.
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 48, 8, 2, 0, 0, 0))
    pixels = png_chunk(b"IDAT", zlib.compress(b"\0" * (100 << 20), 9))
    r = upload(ann, png[:8] + header + pixels + png_chunk(b"IEND", b""), "stream.png")
    assert r.status_code == 201, r.text
    assert (r.json()["width"], r.json()["height"]) == (64, 48)
    assert len(ann.get(r.json()["url"]).content) < 10_000


def test_names_with_nul_rtl_override_and_300_characters_are_made_safe(trio, backend):
    ann, _, _ = trio
    boundary = "nn"
    for raw, expected in (("evil\x00.exe.png", "evil.exe.png"),
                          ("photo\u202egnp.exe", "photognp.exe"),
                          ("\u732b" * 300 + ".txt", None)):
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{raw}\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
                f"--{boundary}--\r\n").encode()
        r = ann.http.post(backend.base + "/api/uploads", data=body, timeout=30,
                          headers={**ann.headers(),
                                   "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 201, r.text
        name = r.json()["name"]
        assert "\x00" not in name and "\u202e" not in name and len(name) <= 200
        if expected:
            assert name == expected
        else:
            assert name.endswith(".txt") and name.startswith("\u732b")
        disp = ann.get(r.json()["url"]).headers["Content-Disposition"]
        assert "\x00" not in disp and "\r" not in disp and "\n" not in disp


def test_portrait_photos_stand_up(trio):
    ann, _, _ = trio
    img = Image.new("RGB", (40, 30), "white")
    img.paste((255, 0, 0), (0, 0, 20, 30))  # the left half red: on top once turned
    exif = img.getexif()
    exif[ExifTags.Base.Orientation] = 6  # the camera was held on its side
    out = io.BytesIO()
    img.save(out, format="JPEG", exif=exif, quality=95)
    made = upload(ann, out.getvalue(), "portrait.jpg").json()
    assert (made["width"], made["height"]) == (30, 40)
    served = Image.open(io.BytesIO(ann.get(made["url"]).content))
    assert served.size == (30, 40) and served.getexif().get(ExifTags.Base.Orientation) is None
    top, bottom = served.convert("RGB").getpixel((15, 5)), served.getpixel((15, 35))
    assert top[0] > 200 and top[1] < 80 and min(bottom) > 200
    thumb = Image.open(io.BytesIO(ann.get(made["thumb_url"]).content))
    assert thumb.size[1] > thumb.size[0]


def test_pictures_that_do_not_decode_or_are_too_big_are_refused(trio, backend):
    ann, _, _ = trio
    whole = picture(size=(300, 300))
    assert upload(ann, whole[: len(whole) // 2], "half.png").status_code == 400
    huge = picture(size=(10000, 6000), mode="1")  # 60 megapixels in a few kilobytes
    assert len(huge) < 100_000
    r = upload(ann, huge, "huge.png")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"


def test_range_etag_and_not_modified(trio):
    ann, _, _ = trio
    data = bytes(range(256)) * 40
    made = upload(ann, data, "data.bin").json()
    assert made["size"] == len(data)
    whole = ann.get(made["url"])
    assert whole.content == data and whole.headers["Accept-Ranges"] == "bytes"
    etag = whole.headers["ETag"]
    part = fetch(ann, made["url"], {"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    tail = fetch(ann, made["url"], {"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == data[-5:]
    assert fetch(ann, made["url"], {"Range": f"bytes={len(data)}-"}).status_code == 416
    same = fetch(ann, made["url"], {"If-None-Match": etag})
    assert same.status_code == 304 and same.content == b""


def test_too_large_is_refused_before_the_body_is_read(trio, backend):
    ann, _, _ = trio
    # Announced too big: refused at once, nothing sent after the headers.
    head = (f"POST /api/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ann.token}\r\n"
            f"Content-Type: multipart/form-data; boundary=zz\r\n"
            f"Content-Length: {50 * LIMIT}\r\n\r\n").encode()
    assert b" 413 " in _raw(backend.port, head, b"").split(b"\r\n", 1)[0]
    # Streamed (chunked, no length): refused once past the limit, the body never ended.
    head = head.replace(f"Content-Length: {50 * LIMIT}".encode(), b"Transfer-Encoding: chunked")
    part = (b"--zz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big\"\r\n\r\n")
    body = b"%x\r\n%s\r\n" % (len(part), part)
    block = b"x" * 65536
    body += b"%x\r\n%s\r\n" % (len(block), block) * (LIMIT // 65536 + 4)
    answer = _raw(backend.port, head, body)
    assert b" 413 " in answer.split(b"\r\n", 1)[0] and b"too_large" in answer
    # The quota: two files fit in 5 MiB, the third does not.
    dan = Api.new_user(backend.base, "dan")
    for _ in range(2):
        assert upload(dan, os.urandom(LIMIT - 4096)).status_code == 201
    r = upload(dan, os.urandom(LIMIT - 4096))
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


def _raw(port: int, head: bytes, body: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        try:
            sock.sendall(body)
        except OSError:
            pass  # the server answered and closed while we were still sending
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and b"}" in answer:
                    break
        except OSError:
            pass
    return answer


def run_sql(server: ServerProcess, sql: str, **params) -> None:
    engine = sqlalchemy.create_engine(server.db)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(sql), params)
    engine.dispose()


def settle_recalls(server: ServerProcess) -> None:
    """Turn the clock of every take-back back by a minute: past the clean-up's margin."""
    run_sql(server, "UPDATE message_updates SET created_at = created_at - INTERVAL 1 MINUTE "
                    "WHERE kind = 'recall'")


def test_recalled_and_unused_files_are_deleted_by_the_cleanup(trio, backend):
    ann, ben, _ = trio
    made = upload(ann, picture(), "gone.png").json()
    message = send(ann, ben.user_id, [made["id"]], "look")
    assert ben.get(made["url"]).status_code == 200
    assert ann.delete(f"/api/messages/{message['id']}").status_code in (200, 204)
    assert ben.get(made["url"]).status_code == 404  # recalled: the other member lost it
    r = ann.post("/api/messages", json={"recipient_id": ben.user_id, "content": "again",
                                        "attachments": [made["id"]]})
    assert r.status_code == 404, r.text  # about to be deleted: it cannot be attached again
    kept = upload(ann, b"not attached yet").json()
    # Taken back a moment ago: kept a little longer than a message may wait for its
    # write, so one checked while the file was still live is never stored without it.
    cleanup(backend)
    assert ann.get(made["url"]).status_code == 200
    settle_recalls(backend)
    assert "uploads deleted" in cleanup(backend)
    assert ann.get(made["url"]).status_code == 404  # gone for the uploader too
    assert ann.get(made["thumb_url"]).status_code == 404
    assert ann.get(kept["url"]).status_code == 200  # younger than 24 h: kept
    # A day later (the clock of its row turned back), nothing holds it: gone.
    run_sql(backend, "UPDATE uploads SET created_at = created_at - INTERVAL 25 HOUR "
                     "WHERE id = :id", id=kept["id"])
    cleanup(backend)
    assert ann.get(kept["url"]).status_code == 404
    metrics = requests.get(backend.base + "/metrics").text
    assert "chat_uploads " in metrics and "chat_upload_bytes " in metrics
    before = int(re.search(r"^chat_uploads_received_total (\d+)$", metrics, re.MULTILINE)[1])
    upload(ann, b"one more")
    metrics = requests.get(backend.base + "/metrics").text
    after = int(re.search(r"^chat_uploads_received_total (\d+)$", metrics, re.MULTILINE)[1])
    assert after == before + 1  # the rate of uploads, for Prometheus's rate()


def test_a_file_two_messages_hold_waits_for_the_later_take_back(trio, backend):
    ann, ben, _ = trio
    made = upload(ann, b"shared twice").json()
    first = send(ann, ben.user_id, [made["id"]], "one")
    second = send(ann, ben.user_id, [made["id"]], "two")
    ann.delete(f"/api/messages/{first['id']}")
    settle_recalls(backend)
    assert ben.get(made["url"]).status_code == 200  # the second message still holds it
    ann.delete(f"/api/messages/{second['id']}")
    cleanup(backend)
    assert ann.get(made["url"]).status_code == 200  # its last take-back is too recent
    settle_recalls(backend)
    cleanup(backend)
    assert ann.get(made["url"]).status_code == 404


def test_two_cleanups_at_once_delete_each_file_once(trio, backend):
    ann, ben, _ = trio
    made = [upload(ann, os.urandom(1000), f"f{i}.bin").json() for i in range(12)]
    for m in made:
        ann.delete(f"/api/messages/{send(ann, ben.user_id, [m['id']])['id']}")
    settle_recalls(backend)
    runs = [subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "uploads-cleanup"],
                             cwd=ROOT, env=backend.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    counts = [int(re.match(r"(\d+) uploads deleted", out)[1]) for out, _ in outputs]
    assert sum(counts) == len(made)  # together, each file once; no error from either
    assert all(ann.get(m["url"]).status_code == 404 for m in made)


def test_parallel_uploads_do_not_pass_the_quota_together(backend):
    eve = Api.new_user(backend.base, "eve")
    blobs = [os.urandom(LIMIT - 4096) for _ in range(4)]  # each fits; only two fit together
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda blob: upload(eve, blob).status_code, blobs))
    assert sorted(answers) == [201, 201, 413, 413], answers


def test_the_periodic_cleanup_deletes_a_recalled_file_once_settled(redis_prefix, tmp_path):
    url = create_mysql_database()  # of its own: its clean-up must not meet others' files
    migrate(url)
    env = mysql_env(url, redis_prefix, CHAT_UPLOAD_DIR=tmp_path,
                    CHAT_UPLOAD_SPOOL=tmp_path / "spool", CHAT_UPLOAD_CLEANUP_INTERVAL=1)
    proc = ServerProcess(env).start()
    proc.db = url
    try:
        ann, ben = (Api.new_user(proc.base, s) for s in ("ann", "ben"))
        ann.follow_each_other(ben)
        made = upload(ann, b"periodic").json()
        ann.delete(f"/api/messages/{send(ann, ben.user_id, [made['id']])['id']}")
        time.sleep(3)  # three rounds: the take-back is too recent, the file stays
        assert ann.get(made["url"]).status_code == 200
        settle_recalls(proc)  # the rounds that passed it over still come back to it
        deadline = time.time() + 15
        while ann.get(made["url"]).status_code == 200:
            assert time.time() < deadline, "the periodic clean-up never deleted it"
            time.sleep(0.3)
        assert not [f for f in tmp_path.rglob("*") if f.is_file() and "spool" not in f.parts]
    finally:
        proc.stop()
        drop_mysql_database(url)


def test_the_s3_backend_keeps_each_file_and_thumbnail_as_one_object(s3_server):
    ann, ben = (Api.new_user(s3_server.base, s) for s in ("ann", "ben"))
    ann.follow_each_other(ben)

    def keys() -> set:
        listed = s3_server.s3.list_objects_v2(Bucket="chat-files")
        return {o["Key"] for o in listed.get("Contents", [])}

    before = keys()
    made = upload(ann, picture(size=(800, 600)), "big.png").json()
    data = os.urandom(100_000)
    plain = upload(ann, data, "blob.bin").json()
    assert len(keys() - before) == 3  # the picture, its thumbnail, the plain file
    message = send(ann, ben.user_id, [made["id"], plain["id"]], "both")
    assert max(Image.open(io.BytesIO(ben.get(made["thumb_url"]).content)).size) == 320
    assert ben.get(plain["url"]).content == data
    ann.delete(f"/api/messages/{message['id']}")
    settle_recalls(s3_server)
    cleanup(s3_server)
    assert ann.get(plain["url"]).status_code == 404
    assert keys() <= before


def test_a_browser_session_uploads_only_with_the_csrf_header(files_server):
    from tests.test_csrf import browser_login

    ann = Api.new_user(files_server.base, "ann")
    s, token = browser_login(files_server, ann)
    url = files_server.base + "/api/uploads"
    files = {"file": ("n.txt", b"note", "text/plain")}
    refused = s.post(url, files=files)
    assert refused.status_code == 400 and "CSRF" in refused.json()["error"]["message"]
    assert s.post(url, files=files, data={"csrf_token": token}).status_code == 400
    made = s.post(url, files=files, headers={"X-CSRFToken": token})
    assert made.status_code == 201, made.text
    assert s.get(files_server.base + made.json()["url"]).content == b"note"
