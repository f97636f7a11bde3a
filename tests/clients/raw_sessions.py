#!/usr/bin/env python3
"""Raw FTP control connections for tests/scaleout.rs, where ftplib cannot go.

    raw_sessions.py header HOST PORT SOURCE LINE USER PASSWORD
        Connects from SOURCE, sends LINE (e.g. a forged "PROXY TCP4 ..." header) before
        anything else, reads the replies up to the first one that is not the 220 greeting,
        then, if the connection is still open, logs in with USER and PASSWORD. Prints one JSON
        object: {"replies": [...], "closed": BOOL, "error": TEXT|null}.

    raw_sessions.py hold HOST PORT SOURCE N USER PASSWORD
        Opens N control connections from SOURCE one after the other, each logged in and kept
        open, printing "session I: REPLIES" for each and then "ready"; then waits to be killed.

    raw_sessions.py download HOST SOURCE USER PASSWORD PATH TARGET BYTES_PER_SEC
        Downloads PATH into TARGET with ftplib (port 21, passive mode), reading at most
        BYTES_PER_SEC (curl 7.88's --limit-rate does not hold back FTP downloads). Prints
        "done" and exits 0, or prints what broke the transfer and exits 1.
"""

import json
import socket
import sys
import time


def reply(f):
    """One whole reply (its lines joined by " | "), or None when the server closed."""
    lines = []
    while True:
        line = f.readline()
        if not line:
            return None
        line = line.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(line)
        if len(line) >= 4 and line[:3].isdigit() and line[3] == " ":
            return " | ".join(lines)


def connect(host, port, source):
    s = socket.create_connection((host, int(port)), timeout=20, source_address=(source, 0))
    return s, s.makefile("rb")


def login(s, f, user, password):
    """USER and PASS; the replies, None standing for a closed connection."""
    replies = []
    for line in (f"USER {user}", f"PASS {password}"):
        s.sendall(line.encode() + b"\r\n")
        r = reply(f)
        replies.append(r)
        if r is None or not r.startswith("3"):
            break
    return replies


def header(host, port, source, line, user, password):
    out = {"replies": [], "closed": False, "error": None}
    try:
        s, f = connect(host, port, source)
        s.sendall(line.encode() + b"\r\n")
        while True:
            r = reply(f)
            if r is None:
                out["closed"] = True
                break
            out["replies"].append(r)
            if not r.startswith("220"):
                break
        if not out["closed"]:
            replies = login(s, f, user, password)
            out["closed"] = None in replies
            out["replies"].extend(r for r in replies if r is not None)
    except OSError as e:
        out["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))


def hold(host, port, source, n, user, password):
    kept = []
    for i in range(int(n)):
        s, f = connect(host, port, source)
        replies = [reply(f)] + login(s, f, user, password)
        print(f"session {i}: {' | '.join(str(r) for r in replies)}", flush=True)
        kept.append((s, f))
    print("ready", flush=True)
    time.sleep(600)


def download(host, source, user, password, path, target, rate):
    import ftplib
    rate = int(rate)
    started = time.monotonic()
    got = 0
    with open(target, "wb") as out:
        def write(block):
            nonlocal got
            out.write(block)
            out.flush()
            got += len(block)
            ahead = got / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        try:
            ftp = ftplib.FTP(timeout=60, source_address=(source, 0))
            ftp.connect(host, 21)
            ftp.login(user, password)
            ftp.retrbinary(f"RETR {path}", write, blocksize=16384)
            ftp.quit()
        except (OSError, EOFError, ftplib.Error) as e:
            print(f"{type(e).__name__}: {e} (after {got} bytes)", flush=True)
            sys.exit(1)
    print("done", flush=True)


if __name__ == "__main__":
    {"header": header, "hold": hold, "download": download}[sys.argv[1]](*sys.argv[2:])
