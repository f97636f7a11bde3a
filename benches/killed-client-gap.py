#!/usr/bin/env python3
"""How long after a killed client's data connection ends does its control connection end?

An atomic STOR of qftpd waits that long (KILLED_CLIENT_GRACE in src/ftp/upload/mod.rs) before
it replaces the target, so that a client killed mid-upload leaves the previous file. This
measures the gap: a child process opens two connections to this script (control, then data),
sends on the data one until it is SIGKILLed, and the script notes when each connection ends.

Usage: benches/killed-client-gap.py [RUNS]   (default 300; load the machine to see the tail)
Prints the gaps in microseconds (negative: the control connection ended first).
"""

import select
import signal
import socket
import subprocess
import sys
import time

CLIENT = """
import socket
control = socket.create_connection(("127.0.0.1", {port}))
data = socket.create_connection(("127.0.0.1", {port}))
data.sendall(b"d")
control.sendall(b"c")
block = b"x" * 65536
while True:
    data.sendall(block)
"""


def ended(sock):
    """Whether `sock` reached its end (reading what is there)."""
    try:
        return sock.recv(1 << 20) == b""
    except ConnectionResetError:
        return True
    except BlockingIOError:
        return False


def one_run(server, port, i):
    child = subprocess.Popen([sys.executable, "-c", CLIENT.format(port=port)])
    accepted = [server.accept()[0] for _ in range(2)]
    by_name = {s.recv(1): s for s in accepted}
    control, data = by_name[b"c"], by_name[b"d"]
    for s in accepted:
        s.setblocking(False)
    # Some data moves first (20 to 80 ms), then the client is killed mid-upload.
    until = time.time() + 0.02 + 0.03 * (i % 3)
    while time.time() < until:
        ended(data)
    child.send_signal(signal.SIGKILL)
    ends = {}
    while len(ends) < 2:
        waiting = [s for s in (control, data) if s not in ends]
        readable, _, _ = select.select(waiting, [], [], 5)
        now = time.perf_counter()
        for s in readable:
            if ended(s):
                ends[s] = now
    child.wait()
    for s in accepted:
        s.close()
    return (ends[control] - ends[data]) * 1e6


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(10)
    port = server.getsockname()[1]
    gaps = sorted(one_run(server, port, i) for i in range(runs))
    print("runs %d: gap min %.0f us, p50 %.0f us, p99 %.0f us, max %.0f us; control first %d"
          % (runs, gaps[0], gaps[len(gaps) // 2], gaps[int(len(gaps) * 0.99)], gaps[-1],
             sum(1 for g in gaps if g < 0)))


if __name__ == "__main__":
    main()
