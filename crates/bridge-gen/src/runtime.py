import http.client as _http_client
import json as _json
import os as _os
import select as _select
import socket as _socket
import threading as _threading
import urllib.parse as _urlparse
from typing import Any, Dict, List, Literal, Optional, Tuple, TypedDict, Union

# The tool stubs below depend on this runtime only through `_invoke`, `call`
# and the error classes; `search` is for scripts; everything else here is
# transport detail.

_URL_ENV = "CODEMODE_BRIDGE_URL"
_TOKEN_ENV = "CODEMODE_BRIDGE_TOKEN"
_TIMEOUT_ENV = "CODEMODE_BRIDGE_TIMEOUT"
# Generous: a tool may well be slow, and the sandbox has its own time limit.
_DEFAULT_TIMEOUT = 300.0


class ToolError(Exception):
    """A tool call failed.

    Attributes:
        kind: What went wrong, as the bridge names it: "tool_error",
            "invalid_arguments", "unknown_tool", "timeout", "unauthorized",
            "denied" (a person said no, or was not asked in time; the server
            never saw the call), ...; or, raised here, "bridge_unavailable"
            and "bad_response".
        message: Why, in words.
        server: The server called (its configured name), if known.
        tool: The tool called (its original MCP name), if known.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        server: Optional[str] = None,
        tool: Optional[str] = None,
    ) -> None:
        where = f"{server}.{tool}: " if server is not None and tool is not None else ""
        super().__init__(f"{where}{kind}: {message}")
        self.kind = kind
        self.message = message
        self.server = server
        self.tool = tool

    def __reduce__(self) -> Tuple[Any, ...]:
        # The default would rebuild the error from the formatted text alone.
        return (type(self), (self.kind, self.message, self.server, self.tool))


class BridgeError(ToolError):
    """The codemode bridge could not be reached, or answered outside the RPC protocol."""


class _UnixHTTPConnection(_http_client.HTTPConnection):
    """HTTP over a Unix socket: how a sandboxed script reaches the bridge."""

    def __init__(self, path: str, timeout: Optional[float]) -> None:
        super().__init__("localhost", timeout=timeout)
        self._unix_path = path

    def connect(self) -> None:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._unix_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class _ThreadState(_threading.local):
    # One keep-alive connection per thread: http.client connections are not
    # thread-safe, and a script calling tools from a thread pool should not
    # pay a connect per call.
    conn: Optional[_http_client.HTTPConnection] = None
    url: str = ""
    # The bridge's base path, "" or "/prefix": endpoints are appended to it.
    base: str = ""
    pid: int = 0


_state = _ThreadState()


def _timeout() -> Optional[float]:
    raw = _os.environ.get(_TIMEOUT_ENV, "").strip()
    if not raw:
        return _DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        return _DEFAULT_TIMEOUT
    if value != value:
        return _DEFAULT_TIMEOUT
    if value <= 0 or value == float("inf"):
        return None
    return value


def _new_connection(
    url: str, timeout: Optional[float], server: Optional[str], tool: Optional[str]
) -> Tuple[_http_client.HTTPConnection, str]:
    if url.startswith("unix:"):
        path = url[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise BridgeError(
                "bridge_unavailable",
                f"{_URL_ENV}={url!r} names no socket path (expected unix:///path/to/socket)",
                server,
                tool,
            )
        return _UnixHTTPConnection(path, timeout), ""
    parts = _urlparse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        raise BridgeError(
            "bridge_unavailable",
            f"{_URL_ENV}={url!r} is not a unix:///path/to/socket or http://host:port URL",
            server,
            tool,
        )
    base = parts.path.rstrip("/")
    if parts.scheme == "https":
        return _http_client.HTTPSConnection(parts.hostname, port, timeout=timeout), base
    return _http_client.HTTPConnection(parts.hostname, port, timeout=timeout), base


def _is_idle(conn: _http_client.HTTPConnection) -> bool:
    """Whether a kept-alive connection is still usable.

    An idle connection has nothing to read; if it is readable, the bridge
    closed it (or sent something unasked), and it must not be reused.
    """
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = _select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _drop_connection() -> None:
    conn = _state.conn
    _state.conn = None
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass


def _connection(
    url: str, timeout: Optional[float], server: Optional[str], tool: Optional[str]
) -> Tuple[_http_client.HTTPConnection, str, bool]:
    """This thread's connection to `url`, the bridge's base path, and whether
    the connection was reused."""
    pid = _os.getpid()
    conn = _state.conn
    if conn is not None and _state.pid != pid:
        # A forked child must not talk over its parent's socket.
        _state.conn = None
        conn = None
    if conn is not None and (_state.url != url or not _is_idle(conn)):
        _drop_connection()
        conn = None
    if conn is None:
        conn, base = _new_connection(url, timeout, server, tool)
        _state.conn, _state.url, _state.base, _state.pid = conn, url, base, pid
        return conn, base, False
    if conn.timeout != timeout:
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
    return conn, _state.base, True


def _early_answer(conn: _http_client.HTTPConnection) -> Optional[Tuple[int, bytes]]:
    """The answer the bridge gave before it read the whole request, if any.

    The bridge rejects a request as soon as it can tell (a bad token, a body
    too large), answers and closes; sending the rest then fails. The answer
    is still there to read, and it is the real reason.
    """
    if conn.sock is None:
        return None
    try:
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, ValueError, _http_client.HTTPException):
        return None


def _send(
    method: str,
    endpoint: str,
    body: Optional[bytes],
    server: Optional[str] = None,
    tool: Optional[str] = None,
) -> Tuple[int, bytes]:
    """One request to the bridge: `endpoint` is "/rpc" or a "/search?..." query."""
    url = _os.environ.get(_URL_ENV, "").strip()
    if not url:
        raise BridgeError(
            "bridge_unavailable",
            f"{_URL_ENV} is not set, so the codemode bridge cannot be reached; "
            "run the script with `codemode exec`, or start `codemode bridge` and "
            f"set {_URL_ENV} (and {_TOKEN_ENV}) yourself",
            server,
            tool,
        )
    timeout = _timeout()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    token = _os.environ.get(_TOKEN_ENV, "")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for attempt in range(2):
        conn, base, reused = _connection(url, timeout, server, tool)
        try:
            conn.request(method, base + endpoint, body=body, headers=headers)
        except OSError as exc:
            early = None if isinstance(exc, _socket.timeout) else _early_answer(conn)
            _drop_connection()
            if early is not None:
                return early
            if reused and attempt == 0:
                # The kept-alive connection broke before the request went
                # out, so the bridge never saw it: one fresh try is safe.
                continue
            raise BridgeError(
                "bridge_unavailable",
                f"cannot reach the codemode bridge at {url} ({_URL_ENV}): {exc}",
                server,
                tool,
            ) from exc
        try:
            response = conn.getresponse()
            data = response.read()
        except _socket.timeout as exc:
            _drop_connection()
            raise BridgeError(
                "timeout",
                f"the codemode bridge did not answer within {timeout} seconds "
                f"(set {_TIMEOUT_ENV} to wait longer)",
                server,
                tool,
            ) from exc
        except (OSError, _http_client.HTTPException) as exc:
            # The request may have reached the tool: never resend it.
            _drop_connection()
            raise BridgeError(
                "bridge_unavailable",
                f"the connection to the codemode bridge at {url} ({_URL_ENV}) "
                f"broke before it answered: {exc!r}",
                server,
                tool,
            ) from exc
        if response.will_close:
            _drop_connection()
        return response.status, data
    raise BridgeError("bridge_unavailable", f"cannot reach the codemode bridge at {url}", server, tool)


def _excerpt(data: bytes) -> str:
    text = data[:200].decode("utf-8", "replace")
    return repr(text) + ("..." if len(data) > 200 else "")


def _decode(status: int, data: bytes, server: Optional[str], tool: Optional[str]) -> Any:
    try:
        payload: Any = _json.loads(data)
    except ValueError:
        raise BridgeError(
            "bad_response",
            f"the bridge answered HTTP {status} with a body that is not JSON: {_excerpt(data)}",
            server,
            tool,
        ) from None
    if isinstance(payload, dict):
        if 200 <= status < 300 and payload.get("success") is True:
            return payload.get("result")
        error = payload.get("error")
        if payload.get("success") is False and isinstance(error, dict):
            kind = error.get("kind")
            message = error.get("message")
            kind_text = kind if isinstance(kind, str) and kind else "tool_error"
            if isinstance(message, str):
                message_text = message
            elif message is None:
                message_text = f"HTTP {status}"
            else:
                message_text = _json.dumps(message)
            if kind_text == "unauthorized" and not _os.environ.get(_TOKEN_ENV):
                message_text += f" ({_TOKEN_ENV} is not set)"
            raise ToolError(kind_text, message_text, server, tool)
    raise BridgeError(
        "bad_response",
        f"the bridge answered HTTP {status} with JSON that is not an RPC answer: {_excerpt(data)}",
        server,
        tool,
    )


def _invoke(
    server: str,
    tool: str,
    arguments: Dict[str, Any],
    optional: Optional[Dict[str, Any]] = None,
    extra: Optional[Dict[str, Any]] = None,
) -> Any:
    """Calls `tool` of `server` (original names) through the bridge.

    `optional` arguments that are None are left out, so the tool applies its
    own defaults; `extra` carries free-form keyword arguments.
    """
    sent: Dict[str, Any] = dict(extra) if extra else {}
    sent.update(arguments)
    if optional:
        sent.update((key, value) for key, value in optional.items() if value is not None)
    try:
        body = _json.dumps(
            {"server": server, "tool": tool, "arguments": sent},
            ensure_ascii=False,
            allow_nan=False,
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ToolError(
            "invalid_arguments", f"the arguments cannot be sent as JSON: {exc}", server, tool
        ) from None
    status, data = _send("POST", "/rpc", body, server, tool)
    return _decode(status, data, server, tool)


def call(server: str, tool: str, /, **arguments: Any) -> Any:
    """Calls any tool by its original server and tool names.

    `call("news_api", "fetch-latest", limit=3)`; keys that are not Python
    names go through a dict: `call("s", "t", **{"my-key": 1})`. Arguments are
    sent as given (None included). Raises ToolError when the tool fails.
    """
    return _invoke(server, tool, arguments)


def search(query: str, detail: str = "summary", limit: int = 20) -> str:
    """Finds tools by what they do, best matches first, as Python signatures.

    `search("send email")` lists matching tools as `server.tool: summary`
    lines; detail="name" gives names only, detail="full" each tool's `def`
    with its type hints and docstring. Every word should match; when none
    match all of them, tools matching some are listed. Returns the text, ready
    to print. Raises ToolError when the bridge cannot answer.
    """
    if detail not in ("name", "summary", "full"):
        raise ToolError(
            "invalid_arguments", f"detail must be 'name', 'summary' or 'full', not {detail!r}"
        )
    endpoint = "/search?" + _urlparse.urlencode(
        {"q": query, "detail": detail, "limit": str(int(limit))}
    )
    status, data = _send("GET", endpoint, None)
    result = _decode(status, data, None, None)
    if not isinstance(result, str):
        raise BridgeError(
            "bad_response", f"the bridge answered a search with {type(result).__name__}, not text"
        )
    return result
