"""Debian's nginx on a loopback port of its own, running the repository's deploy/nginx.conf.

Shared by the benchmark's balanced scenario and tests/test_balancer.py: both run the
documented file with only its ports and paths replaced.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "nginx.conf"
NGINX = "/usr/sbin/nginx"


def templated(conf: str, listen: int, upstreams: list[int], directory: str) -> str:
    """deploy/nginx.conf with only its ports and paths replaced."""
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    servers = re.findall(r"server 127\.0\.0\.1:(800\d)", conf)
    if len(servers) != len(upstreams):
        raise ValueError(f"deploy/nginx.conf names {len(servers)} upstreams, "
                         f"not {len(upstreams)}")
    for old, new in zip(servers, upstreams):
        conf = conf.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
    for path in ("/run/nginx-chat.pid", "/var/log/nginx", "/var/lib/nginx/chat"):
        if path not in conf:
            raise ValueError(f"deploy/nginx.conf no longer names {path}")
    conf = conf.replace("/run/nginx-chat.pid", f"{directory}/nginx.pid")
    return conf.replace("/var/log/nginx", directory).replace("/var/lib/nginx/chat", directory)



class Nginx:
    """nginx in a temporary prefix in front of ``upstreams`` (optionally pinned to CPUs)."""

    def __init__(self, upstreams: list[int], cpus: str | None = None) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="chat-nginx-")
        os.chmod(self.dir, 0o755)  # workers run as an unprivileged user when we are root
        self.conf = Path(self.dir) / "nginx.conf"
        self.conf.write_text(templated(CONF.read_text(), self.port, upstreams, self.dir))
        argv = [NGINX, "-p", self.dir, "-c", str(self.conf), "-g", "daemon off;"]
        self.proc = subprocess.Popen((["taskset", "-c", cpus] if cpus else []) + argv,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.log()}")
            try:
                urllib.request.urlopen(f"{self.base}/healthz", timeout=2).close()
                return
            except urllib.error.HTTPError:
                return  # it answered (a 503 from the app is still nginx up)
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"nginx did not start: {self.log()}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def pids(self) -> list[int]:
        """The master and its workers (for CPU accounting)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                             text=True).stdout.split()
        return [self.proc.pid, *map(int, out)]

    def access_log(self) -> str:
        """What nginx wrote to its access log so far."""
        path = Path(self.dir) / "chat-access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log(self) -> str:
        """The tail of nginx's error log."""
        path = Path(self.dir) / "chat-error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        """Stop nginx and remove its prefix."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)
