#!/usr/bin/env python3
"""Soak client: many concurrent ftplib sessions doing a random mix of operations until a
deadline, verifying every byte they read back.

Used by tests/soak.rs; runs on its own too:

    python3 tests/clients/soak.py --host 127.0.0.1 --port 2121 --sessions 300 --duration 600 \
        --users alice:alicepw,bob:bobpw --report soak.json

Session N logs in as user N mod len(users) and works only in its own directory,
HOME/soak-SEED-N (HOME from --home-pattern), so what it reads back is exactly what it wrote.
File contents are slices of one pseudo-random block derived from --seed; a file is described
by its list of (offset, length) slices (one per STOR/APPE), so nothing larger than one
received chunk is ever held to verify it.

Operations: STOR of a new file or over an existing one (1 KiB - 2 MiB), RETR compared byte for
byte, REST + RETR of a tail, APPE then SIZE, LIST / NLST / MLSD of the session directory
compared with the expected names (and MLSD sizes), SIZE, MDTM, RNFR/RNTO, DELE, MKD + CWD +
PWD + CDUP, RMD, NOOP. Every ~20 operations a session sends QUIT and reconnects. At the
deadline each session deletes what it made and removes its directory.

Any error reply, socket error, timeout, or data mismatch is a failure. After a failure the
session drops its connection, reconnects, and deletes the files the failed operation touched
(their state is unknown), so later verification stays exact.

Prints a summary; --report writes it as JSON. Exit status: 0 without failures, 1 with.
"""

import argparse
import ftplib
import json
import random
import re
import sys
import threading
import time

KIB = 1024
MIB = 1024 * KIB
BLOCK = 256 * KIB
POOL = 4 * MIB
MAX_FILE = 4 * MIB
MAX_FILES = 4
MAX_DIRS = 2
KEEP_ERRORS = 20
MDTM_REPLY = re.compile(r"^213 \d{14}(\.\d+)?$")

# Operation weights (the mix); an operation whose precondition does not hold falls back.
WEIGHTS = {
    "stor": 14, "stor_over": 4, "retr": 16, "rest_retr": 8, "appe": 8,
    "list": 5, "nlst": 5, "mlsd": 5, "size": 8, "mdtm": 5, "rename": 6,
    "dele": 6, "mkd": 3, "rmd": 3, "noop": 4,
}


class Mismatch(Exception):
    """What the server returned is not what the session stored."""


class Stats:
    """Counters shared by all sessions."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ops = {}
        self.failures = {}
        self.errors = []
        self.bytes_up = 0
        self.bytes_down = 0
        self.bytes_verified = 0
        self.connects = 0
        self.active = 0

    def ok(self, kind, up=0, down=0, verified=0):
        with self.lock:
            self.ops[kind] = self.ops.get(kind, 0) + 1
            self.bytes_up += up
            self.bytes_down += down
            self.bytes_verified += verified

    def fail(self, kind, text):
        with self.lock:
            self.ops[kind] = self.ops.get(kind, 0) + 1
            self.failures[kind] = self.failures.get(kind, 0) + 1
            if len(self.errors) < KEEP_ERRORS:
                self.errors.append(text)

    def session_started(self):
        with self.lock:
            self.active += 1

    def session_ended(self):
        with self.lock:
            self.active -= 1

    def connected(self):
        with self.lock:
            self.connects += 1

    def totals(self):
        with self.lock:
            return (sum(self.ops.values()), sum(self.failures.values()), self.active,
                    self.bytes_up + self.bytes_down)


class Content:
    """The bytes of a file: a list of (offset, length) slices of the pool."""

    def __init__(self, pool, segments):
        self.pool = pool
        self.segments = segments

    def size(self):
        return sum(n for _, n in self.segments)

    def range(self, start, n):
        """The bytes at [start, start + n) (fewer past the end)."""
        parts = []
        pos = 0
        for off, length in self.segments:
            if n <= 0:
                break
            if start < pos + length:
                skip = max(0, start - pos)
                take = min(length - skip, n)
                parts.append(self.pool[off + skip:off + skip + take])
                start += take
                n -= take
            pos += length
        return b"".join(parts)


class Reader:
    """A file object over a Content, for storbinary."""

    def __init__(self, content, start=0):
        self.content = content
        self.pos = start
        self.sent = 0

    def read(self, n):
        data = self.content.range(self.pos, n)
        self.pos += len(data)
        self.sent += len(data)
        return data


class Verifier:
    """Compares a received stream with a Content from offset `start`, chunk by chunk."""

    def __init__(self, content, start=0):
        self.content = content
        self.start = start
        self.pos = start
        self.mismatch = None

    def feed(self, chunk):
        if self.mismatch is None:
            expected = self.content.range(self.pos, len(chunk))
            if expected != chunk:
                at = next((i for i, (a, b) in enumerate(zip(expected, chunk)) if a != b),
                          min(len(expected), len(chunk)))
                self.mismatch = self.pos + at
        self.pos += len(chunk)

    def check(self, what):
        size = self.content.size()
        if self.mismatch is not None:
            raise Mismatch(f"{what}: data differs at offset {self.mismatch} "
                           f"(expected {size} bytes)")
        if self.pos != size:
            raise Mismatch(f"{what}: got {self.pos - self.start} bytes from offset "
                           f"{self.start}, expected {size - self.start}")
        return self.pos - self.start


class Session(threading.Thread):
    """One client: connects, works in its own directory until the deadline, cleans up."""

    def __init__(self, index, args, user, password, pool, stats, deadline, start_at):
        super().__init__(name=f"soak-{index}", daemon=True)
        self.index = index
        self.args = args
        self.user = user
        self.password = password
        self.pool = pool
        self.stats = stats
        self.deadline = deadline
        self.start_at = start_at
        self.rng = random.Random(f"{args.seed}-{index}")
        self.dir = args.home_pattern.format(user=user) + f"/soak-{args.seed}-{index}"
        self.ftp = None
        self.files = {}
        self.dirs = set()
        self.counter = 0
        self.made_dir = False
        self.tried_dir = False
        self.touching = []
        self.suspects = []
        self.until_reconnect = 0

    # -- plumbing -------------------------------------------------------------------------

    def run(self):
        self.stats.session_started()
        try:
            time.sleep(max(0.0, self.start_at - time.monotonic()))
            while time.monotonic() < self.deadline:
                if self.ftp is None and not self.connect():
                    time.sleep(0.5)
                    continue
                if self.until_reconnect <= 0:
                    self.op("quit", self.do_quit)
                    continue
                self.until_reconnect -= 1
                self.op(*self.pick())
            self.cleanup()
        finally:
            self.close()
            self.stats.session_ended()

    def fresh_name(self, prefix):
        self.counter += 1
        return f"{prefix}{self.counter}"

    def op(self, kind, fn):
        """Runs one operation; a failure drops the connection (its state is unknown)."""
        self.touching = []
        try:
            counts = fn() or {}
            self.stats.ok(kind, **counts)
            return True
        except Exception as e:  # noqa: BLE001 - every kind of failure is counted
            self.stats.fail(kind, f"session {self.index} ({self.user}) {kind} "
                                  f"{' '.join(self.touching)}: {type(e).__name__}: {e}")
            self.suspects.extend(self.touching)
            for name in self.touching:
                self.files.pop(name, None)
                self.dirs.discard(name)
            self.close()
            return False

    def connect(self):
        self.ftp = ftplib.FTP(timeout=self.args.timeout, encoding="utf-8")
        ok = (self.op("connect", lambda: self.ftp.connect(self.args.host, self.args.port)
                      and None)
              and self.op("login", lambda: self.ftp.login(self.user, self.password) and None)
              and self.op("cwd", self.enter_dir))
        if not ok:
            self.close()
            return False
        self.stats.connected()
        self.until_reconnect = self.rng.randint(10, 30)
        # Whatever a failed operation touched is in an unknown state: remove it.
        suspects, self.suspects = self.suspects, []
        for name in suspects:
            for cmd in (self.ftp.delete, self.ftp.rmd):
                try:
                    cmd(name)
                except ftplib.all_errors:
                    pass
        return True

    def enter_dir(self):
        if not self.made_dir:
            try:
                self.ftp.mkd(self.dir)
            except ftplib.error_perm:
                # A retry after a MKD whose reply was lost finds the directory there.
                if not self.tried_dir:
                    raise
            finally:
                self.tried_dir = True
            self.made_dir = True
        self.ftp.cwd(self.dir)

    def close(self):
        if self.ftp is not None:
            try:
                self.ftp.close()
            except OSError:
                pass
            self.ftp = None

    def do_quit(self):
        self.ftp.quit()
        self.close()

    def pick(self):
        kinds = list(WEIGHTS)
        kind = self.rng.choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0]
        if kind in ("stor_over", "retr", "rest_retr", "appe", "size", "mdtm", "rename",
                    "dele") and not self.files:
            kind = "stor"
        if kind == "stor" and len(self.files) >= MAX_FILES:
            kind = "stor_over"
        if kind == "mkd" and len(self.dirs) >= MAX_DIRS:
            kind = "rmd"
        if kind == "rmd" and not self.dirs:
            kind = "mkd"
        return kind, getattr(self, "do_" + kind)

    def any_file(self):
        return self.rng.choice(sorted(self.files))

    def new_content(self):
        if self.rng.random() < 0.7:
            size = self.rng.randint(KIB, 64 * KIB)
        else:
            size = self.rng.randint(64 * KIB, 2 * MIB)
        return self.segment(size)

    def segment(self, size):
        return (self.rng.randrange(0, POOL - size + 1), size)

    def store(self, cmd, name, content, start=0):
        reader = Reader(content, start)
        self.ftp.storbinary(f"{cmd} {name}", reader, blocksize=BLOCK)
        if reader.pos != content.size():
            raise Mismatch(f"{cmd} {name}: sent {reader.pos} of {content.size()} bytes")
        return reader.sent

    # -- operations ----------------------------------------------------------------------

    def do_stor(self):
        name = self.fresh_name("f") + ".bin"
        self.touching = [name]
        content = Content(self.pool, [self.new_content()])
        sent = self.store("STOR", name, content)
        self.files[name] = content
        return {"up": sent}

    def do_stor_over(self):
        name = self.any_file()
        self.touching = [name]
        content = Content(self.pool, [self.new_content()])
        sent = self.store("STOR", name, content)
        self.files[name] = content
        return {"up": sent}

    def do_retr(self):
        name = self.any_file()
        self.touching = [name]
        verifier = Verifier(self.files[name])
        self.ftp.retrbinary(f"RETR {name}", verifier.feed, blocksize=BLOCK)
        got = verifier.check(f"RETR {name}")
        return {"down": got, "verified": got}

    def do_rest_retr(self):
        name = self.any_file()
        self.touching = [name]
        content = self.files[name]
        start = self.rng.randrange(0, content.size())
        verifier = Verifier(content, start)
        self.ftp.retrbinary(f"RETR {name}", verifier.feed, blocksize=BLOCK, rest=start)
        got = verifier.check(f"REST {start} + RETR {name}")
        return {"down": got, "verified": got}

    def do_appe(self):
        name = self.any_file()
        content = self.files[name]
        if content.size() > MAX_FILE - 256 * KIB:
            return self.do_stor_over()
        self.touching = [name]
        piece = Content(self.pool, [self.segment(self.rng.randint(1, 256 * KIB))])
        sent = self.store("APPE", name, piece)
        grown = Content(self.pool, content.segments + piece.segments)
        self.files[name] = grown
        size = self.ftp.size(name)
        if size != grown.size():
            raise Mismatch(f"SIZE {name} after APPE: {size}, expected {grown.size()}")
        return {"up": sent}

    def expected_names(self):
        return set(self.files) | self.dirs

    def check_names(self, what, names):
        names = {n.rsplit("/", 1)[-1] for n in names} - {".", ".."}
        expected = self.expected_names()
        if names != expected:
            raise Mismatch(f"{what}: missing {sorted(expected - names)}, "
                           f"unexpected {sorted(names - expected)}")

    def do_list(self):
        lines = []
        self.ftp.retrlines("LIST", lines.append)
        self.check_names("LIST", [line.split()[-1] for line in lines if line.strip()])

    def do_nlst(self):
        lines = []
        try:
            self.ftp.retrlines("NLST", lines.append)
        except ftplib.error_temp as e:
            # "450 no files" is what some servers say about an empty directory.
            if self.expected_names() or not str(e).startswith("450"):
                raise
        self.check_names("NLST", lines)

    def do_mlsd(self):
        entries = list(self.ftp.mlsd())
        self.check_names("MLSD", [n for n, facts in entries
                                  if facts.get("type", "").lower() not in ("cdir", "pdir")])
        for name, facts in entries:
            kind = facts.get("type", "").lower()
            if name in self.files:
                size = self.files[name].size()
                if kind != "file" or int(facts.get("size", -1)) != size:
                    raise Mismatch(f"MLSD {name}: {facts}, expected a file of {size} bytes")
            elif name in self.dirs and kind != "dir":
                raise Mismatch(f"MLSD {name}: {facts}, expected a directory")

    def do_size(self):
        name = self.any_file()
        self.touching = [name]
        size = self.ftp.size(name)
        if size != self.files[name].size():
            raise Mismatch(f"SIZE {name}: {size}, expected {self.files[name].size()}")

    def do_mdtm(self):
        name = self.any_file()
        self.touching = [name]
        reply = self.ftp.sendcmd(f"MDTM {name}")
        if not MDTM_REPLY.match(reply):
            raise Mismatch(f"MDTM {name}: {reply!r}")

    def do_rename(self):
        old = self.any_file()
        new = self.fresh_name("r") + ".bin"
        self.touching = [old, new]
        self.ftp.rename(old, new)
        self.files[new] = self.files.pop(old)
        size = self.ftp.size(new)
        if size != self.files[new].size():
            raise Mismatch(f"SIZE {new} after RNTO: {size}, expected {self.files[new].size()}")

    def do_dele(self):
        name = self.any_file()
        self.touching = [name]
        self.ftp.delete(name)
        del self.files[name]

    def do_mkd(self):
        name = self.fresh_name("d")
        self.touching = [name]
        self.ftp.mkd(name)
        self.dirs.add(name)
        self.ftp.cwd(name)
        pwd = self.ftp.pwd()
        if pwd.rstrip("/") != f"{self.dir}/{name}":
            raise Mismatch(f"PWD after CWD {name}: {pwd!r}, expected {self.dir}/{name}")
        self.ftp.voidcmd("CDUP")
        pwd = self.ftp.pwd()
        if pwd.rstrip("/") != self.dir:
            raise Mismatch(f"PWD after CDUP: {pwd!r}, expected {self.dir}")

    def do_rmd(self):
        name = self.rng.choice(sorted(self.dirs))
        self.touching = [name]
        self.ftp.rmd(name)
        self.dirs.discard(name)

    def do_noop(self):
        self.ftp.voidcmd("NOOP")

    def cleanup(self):
        """Deletes what the session made, then its directory; then QUIT."""
        if self.ftp is None and not self.connect():
            return
        for name in sorted(self.files):
            self.op("dele", lambda name=name: self.remove_file(name))
        for name in sorted(self.dirs):
            self.op("rmd", lambda name=name: self.remove_dir(name))
        if self.ftp is not None and self.made_dir:
            self.op("rmd", self.remove_own_dir)
        if self.ftp is not None:
            self.op("quit", self.do_quit)

    def remove_file(self, name):
        self.touching = [name]
        self.ftp.delete(name)
        del self.files[name]

    def remove_dir(self, name):
        self.touching = [name]
        self.ftp.rmd(name)
        self.dirs.discard(name)

    def remove_own_dir(self):
        self.ftp.cwd("..")
        self.ftp.rmd(self.dir)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sessions", type=int, default=300)
    p.add_argument("--duration", type=float, default=60, help="seconds of load")
    p.add_argument("--users", required=True, help="USER:PASSWORD,USER:PASSWORD,...")
    p.add_argument("--home-pattern", default="/home/{user}",
                   help="directory under which each session makes its own")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ramp", type=float, default=5,
                   help="seconds over which the sessions start, evenly spread")
    p.add_argument("--timeout", type=float, default=120, help="socket timeout, seconds")
    p.add_argument("--progress", type=float, default=10, help="seconds between progress lines")
    p.add_argument("--report", help="write the summary as JSON here")
    args = p.parse_args()
    users = []
    for item in args.users.split(","):
        user, sep, password = item.partition(":")
        if not sep or not user:
            p.error(f"--users: {item!r} is not USER:PASSWORD")
        users.append((user, password))
    return args, users


def progress(stats, started, stop, every):
    while not stop.wait(every):
        ops, failures, active, moved = stats.totals()
        print(f"soak: t={time.monotonic() - started:6.1f}s sessions={active} ops={ops} "
              f"failures={failures} moved={moved / MIB:.1f} MiB", file=sys.stderr, flush=True)


def main():
    args, users = parse_args()
    pool = memoryview(random.Random(args.seed).randbytes(POOL))
    stats = Stats()
    started = time.monotonic()
    deadline = started + args.ramp + args.duration
    sessions = []
    for i in range(args.sessions):
        user, password = users[i % len(users)]
        start_at = started + args.ramp * i / max(1, args.sessions)
        sessions.append(Session(i, args, user, password, pool, stats, deadline, start_at))
    stop = threading.Event()
    reporter = threading.Thread(target=progress, args=(stats, started, stop, args.progress),
                                daemon=True)
    reporter.start()
    for s in sessions:
        s.start()
    for s in sessions:
        s.join()
    stop.set()
    wall = time.monotonic() - started

    ops, failures, _, _ = stats.totals()
    report = {
        "sessions": args.sessions,
        "duration_secs": args.duration,
        "wall_secs": round(wall, 3),
        "seed": args.seed,
        "ops": ops,
        "ops_per_sec": round(ops / wall, 1) if wall else 0,
        "failures": failures,
        "connects": stats.connects,
        "bytes_up": stats.bytes_up,
        "bytes_down": stats.bytes_down,
        "bytes_verified": stats.bytes_verified,
        "mib_moved": round((stats.bytes_up + stats.bytes_down) / MIB, 1),
        "ops_by_kind": dict(sorted(stats.ops.items())),
        "failures_by_kind": dict(sorted(stats.failures.items())),
        "errors": stats.errors,
    }
    print(f"soak: {args.sessions} sessions, {wall:.1f} s: {ops} ops ({report['ops_per_sec']}/s), "
          f"{stats.connects} logins, {report['mib_moved']} MiB moved "
          f"({stats.bytes_up / MIB:.1f} up, {stats.bytes_down / MIB:.1f} down, "
          f"{stats.bytes_verified / MIB:.1f} verified), {failures} failures")
    for kind, n in report["ops_by_kind"].items():
        print(f"soak:   {kind:<10} {n:>8}  failed {report['failures_by_kind'].get(kind, 0)}")
    for text in stats.errors:
        print(f"soak: error: {text}")
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
