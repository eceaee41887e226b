#!/usr/bin/env python3
"""Dump the raw `tools/list` answer of an MCP server started over stdio.

Run it with the Python of the tools venv (see .ci/install-mcp-servers.sh),
which has the `mcp` 2.x client installed:

    .venv/bin/python .ci/dump-tools-list.py time -- .venv/bin/mcp-server-time --local-timezone UTC

It starts the command, runs the `initialize` handshake (mode="legacy", no
`server/discover` probe), walks `tools/list` following `nextCursor`, and prints

    {"name": NAME, "tools": [<each tool exactly as the server sent it>]}

pretty-printed with sorted keys. The tool objects are the raw JSON-RPC wire
form (camelCase `inputSchema`, `outputSchema`, `annotations`, `_meta`, ...):
each tool is kept as the plain dict decoded from the JSON line, never
round-tripped through the SDK's pydantic `Tool` model. `--array` wraps the object in a one-element JSON array (the fixture
format of bridge-gen/tests/fixtures/real-*.json). Startup and listing times
go to stderr.

The fixtures were written from the repository root with (neutral paths and
timezone, so nothing machine-specific ends up in tool descriptions; the git
server exits at startup unless --repository is an existing git repository):

    mkdir -p /tmp/fixture-root && git init -q /tmp/fixture-repo
    D=".venv/bin/python .ci/dump-tools-list.py --array -q"; F=bridge-gen/tests/fixtures
    $D time -o $F/real-time.json -- .venv/bin/mcp-server-time --local-timezone UTC
    $D git -o $F/real-git.json -- .venv/bin/mcp-server-git --repository /tmp/fixture-repo
    $D fetch -o $F/real-fetch.json -- .venv/bin/mcp-server-fetch
    $D everything -o $F/real-everything.json -- .venv/node/node_modules/.bin/mcp-server-everything stdio
    $D filesystem -o $F/real-filesystem.json -- .venv/node/node_modules/.bin/mcp-server-filesystem /tmp/fixture-root

The client advertises no sampling/elicitation/roots capabilities, so the
everything server lists only its 13 unconditional tools (19 with all three).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, Field

import mcp.types as types
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client


class _RawToolsPage(BaseModel):
    """One tools/list result page; the tools stay the plain dicts that came off the wire."""

    model_config = ConfigDict(extra="allow")
    tools: list[dict[str, Any]]
    next_cursor: str | None = Field(default=None, alias="nextCursor")


_MAX_PAGES = 100


async def dump(
    name: str,
    command: list[str],
    *,
    cwd: str | None,
    env: dict[str, str],
    quiet: bool,
    timeout: float,
) -> dict[str, Any]:
    params = StdioServerParameters(command=command[0], args=command[1:], env=env or None, cwd=cwd)
    # `Client(params)` would spawn the server with stderr inherited; building the
    # stdio transport here lets --quiet discard the server's stderr banner.
    errlog = open(os.devnull, "w") if quiet else sys.stderr  # noqa: SIM115
    t0 = time.perf_counter()
    try:
        with anyio.fail_after(timeout):
            async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
                t_init = time.perf_counter()
                tools: list[dict[str, Any]] = []
                cursor: str | None = None
                for _ in range(_MAX_PAGES):
                    req_params = types.PaginatedRequestParams(cursor=cursor) if cursor is not None else None
                    page = await client.session.send_request(types.ListToolsRequest(params=req_params), _RawToolsPage)
                    tools.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
                else:
                    raise RuntimeError(f"tools/list did not end after {_MAX_PAGES} pages")
                t_list = time.perf_counter()
                info = client.server_info
                print(
                    f"[dump-tools-list] {name}: server "
                    f"{info.name if info else '?'} {info.version if info else ''} "
                    f"protocol {client.protocol_version}; initialize {1000 * (t_init - t0):.0f} ms, "
                    f"tools/list {1000 * (t_list - t_init):.1f} ms, {len(tools)} tools",
                    file=sys.stderr,
                )
    finally:
        if errlog is not sys.stderr:
            errlog.close()
    return {"name": name, "tools": tools}


def _describe(exc: BaseException) -> str:
    """The innermost messages of a (possibly nested) exception group."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="server name to put in the output")
    ap.add_argument("--cwd", help="working directory for the server")
    ap.add_argument("--env", action="append", default=[], metavar="K=V", help="extra environment variable")
    ap.add_argument("--array", action="store_true", help="wrap the object in a one-element JSON array")
    ap.add_argument("-o", "--output", help="write to this file instead of stdout")
    ap.add_argument("-q", "--quiet", action="store_true", help="discard the server's stderr")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole exchange")
    ap.usage = "%(prog)s [options] NAME -- COMMAND [ARGS...]"
    argv = sys.argv[1:]
    if "--" not in argv:
        ap.parse_args(argv)  # handles --help and option errors
        ap.error("missing server command: NAME -- COMMAND [ARGS...]")
    split = argv.index("--")
    args = ap.parse_args(argv[:split])
    command = argv[split + 1 :]
    if not command:
        ap.error("missing server command after --")
    env = dict(kv.split("=", 1) for kv in args.env)

    try:
        result = anyio.run(
            lambda: dump(args.name, command, cwd=args.cwd, env=env, quiet=args.quiet, timeout=args.timeout)
        )
    except Exception as exc:  # noqa: BLE001 - report one line, not an anyio exception-group tree
        hint = " (rerun without -q to see the server's stderr)" if args.quiet else ""
        print(f"dump-tools-list: {args.name}: {' '.join(command)}: {_describe(exc)}{hint}", file=sys.stderr)
        return 1
    doc: Any = [result] if args.array else result
    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
