"""codemode's collector: hands the files a script left in /workspace/out back.

Standard library only. It walks the directory by file descriptors (os.scandir
on a directory fd, each directory opened with O_NOFOLLOW), so it never
follows a symlink the script made; it opens each regular file with
O_NOFOLLOW|O_NONBLOCK (a FIFO cannot hang it) and checks with fstat that
what it opened is still a regular file. It skips everything else with a
reason, and skips a file larger than what is left of the cap without
reading it. What it finds goes to the host as one stream on a Unix socket:

    {"file": NAME, "size": N}\\n  then exactly N bytes
    {"skip": NAME, "reason": TEXT}\\n
    {"end": true, "dropped": N}\\n

NAME is the path below out/, "/" between its parts. The host trusts none of
it: it checks every record and cap again (crates/codemode-run/src/outbox.rs).

Two ways in: a session's kernel calls collect() after each cell; a run runs
this file as the script's parent (parent_main), which starts the script with
exactly the command line it would have had, waits for it, collects, and ends
the way the script did.
"""

import json
import os
import signal
import socket
import stat
import sys

OUT_DIR = "/workspace/out"
OUT_SOCKET = "/run/codemode/out.sock"
# Past this depth, or this many entries looked at, the walk stops: the
# workspace's inode cap bounds a real tree long before.
MAX_DEPTH = 32
MAX_ENTRIES = 100000


def _name(parts):
    return "/".join(os.fsencode(p).decode("utf-8", "replace") for p in parts)


def _read_all(fd, size):
    chunks = []
    left = size
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class _Walk:
    def __init__(self, max_bytes, max_files, seen):
        self.left = max_bytes
        self.max_files = max_files
        self.files = 0
        self.dropped = 0
        self.entries = 0
        # Name -> signature of what was sent before: only new or changed
        # files go again (a session's cells share one out/).
        self.seen = seen
        self.records = []

    def skip(self, parts, reason):
        key = ("skip", _name(parts))
        if self.seen is not None and self.seen.get(key) == reason:
            return
        if self.seen is not None:
            self.seen[key] = reason
        self.records.append(({"skip": _name(parts), "reason": reason}, b""))

    def file(self, dir_fd, parts, name, lst):
        signature = (lst.st_size, lst.st_mtime_ns, lst.st_ctime_ns, lst.st_ino)
        key = ("file", _name(parts))
        if self.seen is not None and self.seen.get(key) == signature:
            return
        if self.files >= self.max_files:
            self.dropped += 1
            return
        if lst.st_size > self.left:
            self.skip(parts, "%d bytes, over the %d bytes left of the cap: not read" % (lst.st_size, self.left))
            return
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=dir_fd)
        except OSError as err:
            self.skip(parts, "cannot open: %s" % err.strerror)
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self.skip(parts, "not a regular file")
                return
            if st.st_size > self.left:
                self.skip(parts, "%d bytes, over the %d bytes left of the cap: not read" % (st.st_size, self.left))
                return
            data = _read_all(fd, st.st_size)
        except OSError as err:
            self.skip(parts, "cannot read: %s" % err.strerror)
            return
        finally:
            os.close(fd)
        self.left -= len(data)
        self.files += 1
        if self.seen is not None:
            self.seen[key] = signature
        self.records.append(({"file": _name(parts), "size": len(data)}, data))

    def walk(self, dir_fd, parts):
        try:
            entries = sorted(os.scandir(dir_fd), key=lambda e: e.name)
        except OSError as err:
            self.skip(parts, "cannot list: %s" % err.strerror)
            return
        for entry in entries:
            self.entries += 1
            if self.entries > MAX_ENTRIES:
                self.dropped += 1
                continue
            here = parts + [entry.name]
            try:
                lst = entry.stat(follow_symlinks=False)
            except OSError as err:
                self.skip(here, "cannot stat: %s" % err.strerror)
                continue
            mode = lst.st_mode
            if stat.S_ISDIR(mode):
                if len(here) > MAX_DEPTH:
                    self.skip(here, "nested deeper than %d directories" % MAX_DEPTH)
                    continue
                try:
                    fd = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                except OSError as err:
                    self.skip(here, "cannot open: %s" % err.strerror)
                    continue
                try:
                    self.walk(fd, here)
                finally:
                    os.close(fd)
            elif stat.S_ISREG(mode):
                self.file(dir_fd, here, entry.name, lst)
            elif stat.S_ISLNK(mode):
                self.skip(here, "a symlink: not followed")
            elif stat.S_ISFIFO(mode):
                self.skip(here, "a FIFO: not a regular file")
            elif stat.S_ISSOCK(mode):
                self.skip(here, "a socket: not a regular file")
            else:
                self.skip(here, "a device or other special file: not a regular file")


def collect(max_bytes, max_files, seen=None, out_dir=OUT_DIR, sock_path=OUT_SOCKET):
    """Sends what out_dir holds (new or changed since `seen`, when given)."""
    walk = _Walk(max_bytes, max_files, seen)
    try:
        top = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        top = None
    except OSError as err:
        top = None
        walk.skip([], "out/ is not a directory to read (%s): nothing collected" % err.strerror)
    if top is not None:
        try:
            walk.walk(top, [])
        finally:
            os.close(top)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(sock_path)
        for header, data in walk.records:
            conn.sendall(json.dumps(header).encode() + b"\n")
            if data:
                conn.sendall(data)
        conn.sendall(json.dumps({"end": True, "dropped": walk.dropped}).encode() + b"\n")
    finally:
        conn.close()


def parent_main():
    """Runs the script (sys.argv after "--") as a child, then collects."""
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    try:
        os.makedirs(OUT_DIR, exist_ok=True)
    except OSError:
        pass
    me = os.getpid()
    child = [0]

    def forward(signum, frame):
        if os.getpid() == me and child[0]:
            try:
                os.kill(child[0], signum)
            except OSError:
                pass

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    pid = os.fork()
    if pid == 0:
        # What the script would have had: default handlers, and SIGPIPE and
        # SIGXFSZ not ignored (Python ignores them in itself, not in what it
        # starts; exec keeps an ignored signal ignored).
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(signum, signal.SIG_DFL)
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    child[0] = pid
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            status = 0
            break
    try:
        # MAX_BYTES and MAX_FILES are set by the line codemode adds below.
        collect(MAX_BYTES, MAX_FILES)  # noqa: F821
    except Exception:
        # The host says the collection failed: the stream ended short.
        pass
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # SIGKILL and SIGSTOP have no handler to reset
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)
