"""RFC 6455 conformance of our WebSocket transport: the Autobahn TestSuite's fuzzing cases.

kosoku (PyPI, pinned in requirements-dev.txt) runs Autobahn's own case files
natively, in "fuzzingclient" mode: it is the client, and the server under test is
a real dev server (gevent) whose ``/_echo`` route (``CHAT_ECHO_ROUTE=1``) echoes
every message on exactly our stack: ``ChatSocket`` reads, one ``Connection``
writer sends.

One test per Autobahn section, each its own kosoku run (cases one at a time):

* 1-7 and 10: framing, pings and pongs, reserved bits and opcodes, fragmentation,
  UTF-8 (invalid text must be failed with 1007), the closing handshake, and the
  automatic fragmentation of big messages. About ten seconds together;
* 9: big messages (up to 16 MiB) and many small ones, about fifteen seconds,
  hence a frame limit above 16 MiB for this server only;
* 12 and 13 are left out: they test permessage-deflate, which we never negotiate
  (every one of them comes out UNIMPLEMENTED, by design).

A case passes when its behaviour is OK, NON-STRICT or INFORMATIONAL, and its
closing behaviour is OK, INFORMATIONAL or FAILED BY CLIENT (kosoku had to drop the
TCP connection itself: a SHOULD of the spec, and a matter of timing on a busy
machine). Everything else fails the test: FAILED; UNIMPLEMENTED, which Autobahn
only gives the compression cases, so in these sections it means the case never
reached its verdict; ERROR (kosoku could not run it); and a close that was
UNCLEAN, by the wrong endpoint or with a WRONG CODE (say 1002 where invalid UTF-8
calls for 1007).

Autobahn-format reports (index.html, index.json, one file per case) are written
under the test's tmp dir, ``<basetemp>/autobahn*/section-N/``.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from collections import Counter

import pytest
import requests

from tests.support import PASSWORD, ServerProcess, need, unique_name

try:
    import kosoku
    from kosoku._report import write_reports
except ImportError:  # pragma: no cover - checked by the fixture below
    kosoku = None

# Cases per section in kosoku 0.1.0 (Autobahn's case set): a run that selects
# fewer did not test what it claims to.
SECTIONS = {"1": 16, "2": 11, "3": 7, "4": 10, "5": 20, "6": 145, "7": 37, "9": 54, "10": 1}
# A hang (a case waiting for an echo that never comes) fails the test instead of
# waiting out Autobahn's own timeouts (up to 480 s per case in section 9).
TIME_LIMIT = {"9": 240}
DEFAULT_TIME_LIMIT = 90

PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}
PASSING_CLOSE = {"OK", "INFORMATIONAL", "FAILED BY CLIENT"}


@pytest.fixture(scope="module")
def echo_server(sqlite_url):
    """A dev server with the echo route, limits high enough for section 9's 16 MiB messages."""
    need(kosoku is not None, "kosoku (pip install kosoku==0.1.0)")
    proc = ServerProcess({"DATABASE_URL": sqlite_url, "REDIS_URL": "",
                          "CHAT_ECHO_ROUTE": "1",
                          "CHAT_MAX_FRAME_BYTES": str(20_000_000),
                          "CHAT_SEND_QUEUE_BYTES": str(64 * 1024 * 1024)}).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def report_root(tmp_path_factory):
    return tmp_path_factory.mktemp("autobahn")


def _fuzz(server: ServerProcess, section: str) -> list:
    """Run one section's cases against the echo route; the results, passed or not."""
    url = f"ws://127.0.0.1:{server.port}/_echo"
    limit = TIME_LIMIT.get(section, DEFAULT_TIME_LIMIT)

    async def run():
        coro = kosoku.run_fuzzingclient(url, [f"{section}.*"], None, concurrency=1)
        return await asyncio.wait_for(coro, limit)
    try:
        return asyncio.run(run())
    except kosoku.FailureError as failure:  # raised when any case did not pass
        return list(failure.results)
    except asyncio.TimeoutError:
        pytest.fail(f"Autobahn section {section} did not finish within {limit}s: a case "
                    f"waits for an echo or a close that never comes. To find it, run "
                    f"`kosoku -i '{section}.*' ws://127.0.0.1:PORT/_echo` against a server "
                    f"started with CHAT_ECHO_ROUTE=1. Server log:\n{server.log()}")


def _short(value, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def _explain(result) -> str:
    """One failing case, with kosoku's reasons."""
    return (f"{result.case_id}: behavior {result.behavior.value} ({result.result}); "
            f"close {result.behavior_close.value} ({result.result_close}); "
            f"remote close code {result.remote_close_code}, "
            f"expected close {_short(result.expected_close)}; "
            f"expectation: {result.expectation.strip()}; "
            f"received: {_short(result.received)}")


def _server_log(server: ServerProcess) -> str:
    try:
        return server.log_path.read_text(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("section", list(SECTIONS))
def test_autobahn_section(echo_server, report_root, section):
    log_before = len(_server_log(echo_server))
    results = _fuzz(echo_server, section)
    outdir = report_root / f"section-{section}"
    if results:
        write_reports(results, str(outdir))

    outcomes = Counter(f"{r.behavior.value}/{r.behavior_close.value}" for r in results)
    print(f"Autobahn section {section}: {dict(sorted(outcomes.items()))}; reports in {outdir}")

    failing = [r for r in results
               if r.behavior.value not in PASSING or r.behavior_close.value not in PASSING_CLOSE]
    assert not failing, (
        f"{len(failing)} of {len(results)} Autobahn cases of section {section} failed "
        f"(reports: {outdir}):\n" + "\n".join(_explain(r) for r in failing))
    assert len(results) == SECTIONS[section], (
        f"section {section}: {len(results)} cases ran, {SECTIONS[section]} expected: "
        f"{sorted(r.case_id for r in results)}")

    # The server lived through the fuzzing without a single unhandled exception.
    assert echo_server.proc.poll() is None, f"the server died: {echo_server.log()}"
    new_log = _server_log(echo_server)[log_before:]
    assert "Traceback" not in new_log, f"the server logged errors:\n{new_log[-5000:]}"


def _upgrade(port: int) -> socket.socket:
    """A raw TCP connection to /_echo, upgraded to WebSocket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /_echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_bytes_after_the_close_frame_are_never_read_as_http(echo_server):
    """gevent's WSGI server used to parse, and run, what followed the close as a new request.

    The close frame and filler fill exactly the reader's first recv (16 KiB); the
    HTTP request behind them stays in the kernel buffer for whoever reads next.
    """
    name = unique_name("smuggled")
    body = json.dumps({"username": name, "password": PASSWORD}).encode()
    smuggled = (f"POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode() + body
    close = bytes([0x88, 0x82]) + b"\0\0\0\0" + struct.pack("!H", 1000)  # masked, code 1000
    sock = _upgrade(echo_server.port)
    try:
        sock.sendall(close + b"x" * (16384 - len(close)) + smuggled)
        answer = b""
        while True:  # the close reply, then the end of the connection
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            answer += chunk
    finally:
        sock.close()
    assert answer.startswith(b"\x88\x02\x03\xe8"), answer[:100]  # close 1000 echoed
    assert b"HTTP/1.1" not in answer, answer[:300]
    time.sleep(0.5)  # the server would run a smuggled request just after dropping us
    login = requests.post(echo_server.base + "/api/tokens",
                          json={"username": name, "password": PASSWORD}, timeout=30)
    assert login.status_code == 401, f"the smuggled request was run: {login.text}"
