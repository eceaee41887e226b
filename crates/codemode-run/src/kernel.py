"""codemode's session kernel: runs cells, one after another, in one __main__.

Started by codemode as the sandbox's script. It connects to the session's
socket, takes one JSON line per request and answers each with one JSON line:

    {"op": "env", "vars": {...}}             -> {"ok": true}
    {"op": "run", "cell": N, "code": "...",
     "collect": {"max_bytes": B, "max_files": F}}
                                             -> {"cell": N, "status": S, "timed_out": B,
                                                 "files": true}
    {"op": "interrupt", "cell": N, "timed_out": B}
                                             -> (none: the running cell gets
                                                 KeyboardInterrupt; with
                                                 timed_out, for its time limit)

A cell's output goes to the process's own stdout and stderr, as a script's
does; once a cell is done, both streams get the end marker
MARKER + ":" + N + "\\n" so the host can tell where the cell's output ends,
whatever the cell started. With "collect", the answer says "files" and the
kernel then sends what is new or changed in /workspace/out since the last
cell on the collector's socket (collect(), defined before this file: codemode
puts crates/codemode-run/src/collect.py in front of it). Standard library
only.
"""

import json
import os
import queue
import signal
import socket
import sys
import threading
import traceback
import types

SOCKET = os.environ.pop("CODEMODE_KERNEL_SOCKET", "/run/codemode/kernel.sock")
MARKER = os.environ.pop("CODEMODE_KERNEL_MARKER", "")


def _status_of(exit_code):
    if exit_code is None:
        return 0
    if isinstance(exit_code, int):
        return exit_code
    print(exit_code, file=sys.stderr)
    return 1


# The cell now running (None between cells), under its lock: an interrupt
# (the time limit's, or one asked for) is sent only to the cell it is for.
_LOCK = threading.Lock()
_CURRENT = [None]
# The cell the host interrupted for its time limit (kept by the host, on a
# clock that stands while a call waits for a person's approval).
_TIMED_OUT = [None]


def _interrupt(cell=None, timed_out=False):
    """Interrupts `cell` (or whichever runs) if it still runs."""
    with _LOCK:
        if _CURRENT[0] is not None and cell in (None, _CURRENT[0]):
            if timed_out:
                _TIMED_OUT[0] = _CURRENT[0]
            # A real signal, so that a cell in a C-level sleep wakes up too.
            os.kill(os.getpid(), signal.SIGINT)
            return True
    return False


def _raise_if_running(signum, frame):
    # Between cells, and once a cell is over, an interrupt is dropped.
    if _CURRENT[0] is not None:
        raise KeyboardInterrupt


def _run(code, cell, namespace):
    status = 0
    with _LOCK:
        _CURRENT[0] = cell
    signal.signal(signal.SIGINT, _raise_if_running)
    try:
        try:
            compiled = compile(code, "<cell %d>" % cell, "exec")
            exec(compiled, namespace)
        finally:
            with _LOCK:
                _CURRENT[0] = None
    except SystemExit as exit:
        status = _status_of(exit.code)
    except KeyboardInterrupt:
        if _TIMED_OUT[0] == cell:
            print("KeyboardInterrupt: the cell ran past its time limit", file=sys.stderr)
        else:
            print("KeyboardInterrupt", file=sys.stderr)
        status = 1
    except BaseException:
        # The cell's own frames only: the kernel's are not the user's business.
        kind, value, tb = sys.exc_info()
        traceback.print_exception(kind, value, tb.tb_next if tb else None)
        status = 1
    return status, _TIMED_OUT[0] == cell


def main():
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(SOCKET)
    requests = conn.makefile("r", encoding="utf-8")
    answers = conn.makefile("w", encoding="utf-8")

    def answer(value):
        answers.write(json.dumps(value) + "\n")
        answers.flush()

    signal.signal(signal.SIGINT, _raise_if_running)
    # The markers go to the streams the kernel started with, whatever a
    # cell does to fds 1 and 2.
    out, err = os.dup(1), os.dup(2)
    # The cells' own __main__, apart from the kernel's globals: what a cell
    # defines is what the next one sees, and nothing of the kernel.
    user_main = types.ModuleType("__main__")
    sys.modules["__main__"] = user_main
    namespace = user_main.__dict__
    sys.path.insert(0, os.getcwd())
    # Ready means ready to call tools: the import is paid before the first cell.
    try:
        import mcp_tools  # noqa: F401
    except Exception:
        traceback.print_exc()
    # Requests are read apart from the cells, so that an interrupt reaches
    # a cell while it runs.
    pending = queue.Queue()

    def read():
        try:
            for line in requests:
                request = json.loads(line)
                if request.get("op") == "interrupt":
                    _interrupt(request.get("cell"), bool(request.get("timed_out")))
                    continue
                pending.put(request)
        finally:
            # The host is gone, or sent what no kernel sends: end.
            pending.put(None)

    threading.Thread(target=read, daemon=True).start()
    # What was sent of out/ so far: the cells share it, and each hears only
    # of what is new or changed.
    seen = {}
    made_out = False
    answer({"ready": True})
    for request in iter(pending.get, None):
        if request.get("op") == "env":
            os.environ.update(request.get("vars", {}))
            answer({"ok": True})
            continue
        cell = int(request["cell"])
        if request.get("collect") is not None and not made_out:
            # There for the cell to write into, once files are wanted.
            made_out = True
            try:
                os.makedirs(OUT_DIR, exist_ok=True)
            except OSError:
                pass
        try:
            status, timed_out = _run(request["code"], cell, namespace)
        except KeyboardInterrupt:
            # Landed after the cell's own handling: the cell is over anyway.
            status, timed_out = 1, False
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except Exception:
                pass
        end = ("%s:%d\n" % (MARKER, cell)).encode()
        for fd in (out, err):
            try:
                os.write(fd, end)
            except OSError:
                pass
        caps = request.get("collect")
        if caps is None:
            answer({"cell": cell, "status": status, "timed_out": timed_out})
            continue
        answer({"cell": cell, "status": status, "timed_out": timed_out, "files": True})
        try:
            collect(int(caps["max_bytes"]), int(caps["max_files"]), seen)  # noqa: F821
        except Exception:
            # The host hears of it as a stream that broke off.
            pass


if __name__ == "__main__":
    main()
