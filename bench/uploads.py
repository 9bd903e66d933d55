"""The uploads scenario's second half: clients posting photos while pairs traffic runs.

    taskset -c 1 python -m bench.uploads SPEC.json OUT.json

``bench/run.py`` starts this process next to the load generator, which runs pairs
traffic at a fixed rate (half the highest clean rate of plain pairs in the same run).
The load generator touches ``ready_file`` once its sockets are open and ``stop_file``
when its step is over; in between, each of ``clients`` threads uploads the same photo
(a JPEG of about ``photo_mib`` MiB, made here once) over and over, one upload at a
time, as a person sending a batch of pictures would. Figures: uploads finished, MB/s
of photo bytes accepted, thumbnails made per second (an accepted picture comes back
with a ``thumb_url``), upload time percentiles and refusals by status.
"""
from __future__ import annotations

import http.client
import io
import json
import os
import sys
import threading
import time

from .loadgen import percentiles


def photo(mib: float) -> bytes:
    """A JPEG of about ``mib`` MiB: a camera-sized picture of noise over a gradient (noise
    keeps JPEG from compressing it to nothing, as a real photo's detail does)."""
    from PIL import Image
    width, height = 3000, 2250  # 6.75 megapixels, a phone photo's shape
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    picture = Image.blend(gradient, noise, 0.35)
    quality, data = 95, b""
    for quality in (95, 90, 85, 80, 70, 60, 50):
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=quality)
        data = out.getvalue()
        if len(data) <= mib * 1024 * 1024 * 1.05:
            break
    return data


def multipart(data: bytes, boundary: str) -> bytes:
    """One form part named ``file`` holding the photo."""
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode()


class Uploader(threading.Thread):
    """One client: upload, wait for the answer, upload again, until told to stop."""

    def __init__(self, host: str, port: int, token: str, body: bytes, boundary: str,
                 stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.host, self.port, self.token = host, port, token
        self.body, self.boundary, self.stop = body, boundary, stop
        self.times_ns: list[int] = []
        self.thumbs = 0
        self.refused: dict[str, int] = {}

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}",
                   "Content-Type": f"multipart/form-data; boundary={self.boundary}",
                   "Content-Length": str(len(self.body))}
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        while not self.stop.is_set():
            t = time.monotonic_ns()
            try:
                conn.request("POST", "/api/uploads", body=self.body, headers=headers)
                answer = conn.getresponse()
                payload = answer.read()
            except (OSError, http.client.HTTPException) as exc:
                self.refused[type(exc).__name__] = self.refused.get(type(exc).__name__, 0) + 1
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                continue
            if answer.status != 201:
                self.refused[str(answer.status)] = self.refused.get(str(answer.status), 0) + 1
                continue
            self.times_ns.append(time.monotonic_ns() - t)
            if json.loads(payload).get("thumb_url"):
                self.thumbs += 1
        conn.close()


def wait_for(path: str, timeout: float) -> bool:
    """Whether ``path`` appeared within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run(spec: dict) -> dict:
    """Upload until the load generator's step is over; the figures."""
    data = photo(spec.get("photo_mib", 5))
    boundary = "bench" + os.urandom(8).hex()
    body = multipart(data, boundary)
    if not wait_for(spec["ready_file"], spec.get("ready_timeout", 120)):
        return {"error": "the load generator never said it was ready"}
    stop = threading.Event()
    clients = [Uploader(spec["host"], spec["port"], token, body, boundary, stop)
               for _, token in spec["users"]]
    started = time.monotonic()
    for c in clients:
        c.start()
    wait_for(spec["stop_file"], spec.get("seconds", 60) + 120)
    elapsed = time.monotonic() - started
    stop.set()
    for c in clients:
        c.join(150)  # an upload in flight finishes; it is counted, its time is ours too
    elapsed = max(elapsed, time.monotonic() - started)
    times = [t for c in clients for t in c.times_ns]
    refused: dict[str, int] = {}
    for c in clients:
        for k, v in c.refused.items():
            refused[k] = refused.get(k, 0) + v
    return {"clients": len(clients), "photo_bytes": len(data), "seconds": round(elapsed, 2),
            "uploads": len(times), "thumbnails": sum(c.thumbs for c in clients),
            "mb_per_s": round(len(times) * len(data) / elapsed / 1e6, 2),
            "uploads_per_s": round(len(times) / elapsed, 2),
            "thumbnails_per_s": round(sum(c.thumbs for c in clients) / elapsed, 2),
            "upload_ms": percentiles(times), "refused": refused}


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        spec = json.load(f)
    result = run(spec)
    with open(argv[2], "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
