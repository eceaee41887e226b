"""A stand-in for the codemode bridge, for the runtime tests.

Serves POST /rpc over a Unix socket on a background thread, records every
request, and answers according to the tool called:

- "fail": HTTP 502 with an RPC error {"kind": "tool_error", ...}
- "garbage": HTTP 200 with a body that is not JSON
- "slow": waits 2 seconds, then answers
- "then_close": answers, then closes the connection without saying so
- anything else: HTTP 200 {"success": true, "result": {"echo": arguments}}
"""

import http.server
import json
import os
import socketserver
import tempfile
import threading
import time
from typing import Any, Dict, List

REQUESTS: List[Dict[str, Any]] = []
CONNECTIONS: List[int] = []


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        CONNECTIONS.append(1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        REQUESTS.append({"path": self.path, "headers": dict(self.headers), "body": body})
        tool = body.get("tool")
        if tool == "fail":
            status, data = 502, json.dumps(
                {"success": False, "error": {"kind": "tool_error", "message": "upstream exploded"}}
            ).encode()
        elif tool == "garbage":
            status, data = 200, b"<html>oops</html>"
        else:
            if tool == "slow":
                time.sleep(2)
            status, data = 200, json.dumps(
                {"success": True, "result": {"echo": body.get("arguments")}}
            ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if tool == "then_close":
            self.close_connection = True


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _TcpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def start(tcp: bool = False) -> str:
    """Starts the fake bridge and points CODEMODE_BRIDGE_URL at it.

    On a Unix socket by default; with `tcp`, on 127.0.0.1 (loopback only).
    """
    server: socketserver.BaseServer
    if tcp:
        server = _TcpServer(("127.0.0.1", 0), _Handler)
        url = "http://127.0.0.1:%d" % server.server_address[1]
    else:
        path = os.path.join(tempfile.mkdtemp(prefix="fb-", dir="/tmp"), "bridge.sock")
        server = _Server(path, _Handler)
        url = "unix://" + path
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["CODEMODE_BRIDGE_URL"] = url
    os.environ["CODEMODE_BRIDGE_TOKEN"] = "secret-token"
    return url
