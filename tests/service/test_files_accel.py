"""Behind nginx with the local folder: the app authorizes and nginx sends (X-Accel-Redirect)."""
from __future__ import annotations

import io

from tests.inprocess import make_app
from tests.support import PASSWORD, unique_name


def test_downloads_are_handed_to_nginx_with_the_headers(sqlite_module_url, tmp_path):
    app = make_app(sqlite_module_url, CHAT_UPLOAD_DIR=str(tmp_path / "up"),
                   CHAT_UPLOAD_SPOOL=str(tmp_path / "spool"), CHAT_UPLOAD_ACCEL_PREFIX="/_uploads/")
    client = app.test_client()
    name = unique_name("x")
    assert client.post("/api/register", json={"username": name, "password": PASSWORD}
                       ).status_code == 201
    token = client.post("/api/tokens", json={"username": name, "password": PASSWORD}
                        ).get_json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    made = client.post("/api/uploads", headers=auth,
                       data={"file": (io.BytesIO(b"<html>"), "page.html")}).get_json()
    got = client.get(made["url"], headers=auth)
    key = got.headers["X-Accel-Redirect"].removeprefix("/_uploads/")
    assert got.status_code == 200 and got.data == b""
    assert (tmp_path / "up" / key).read_bytes() == b"<html>"
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert got.headers["Content-Disposition"].startswith("attachment")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(made["url"], headers={"If-None-Match": got.headers["ETag"], **auth}
                      ).status_code == 304
