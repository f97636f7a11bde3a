"""Thousands of logged-in sessions (RSS, descriptors) and a thousand transfers at once.

Phases of benches/bench.py: `phases(b)` returns (name, function) pairs, run in order with the
Bench `b` (its simulators, sizes and `quick` flag); rows go to the table with add_row.

Both gateways run as the packaged unit runs them: its open-file limit (`LimitNOFILE=65536`
in systemd/qftpd.service, or the machine's hard limit when that is lower, through prlimit)
and the packaged defaults of packaging/qftpd.toml, but `max-connections`, which must admit the
sessions measured (its default, 500, is below both counts). The per-address cap stays at its
default (50): the clients spread over as many loopback addresses (127.0.0.2, 127.0.0.3...)
as that needs, as clients behind many addresses would. The second phase keeps the default
passive ports (50000-50999) too.

Clients are asyncio streams in this process (one descriptor each), so 10,000 sessions cost
the benchmark little; its own open-file limit is raised to its hard limit.

Sizes: BENCH_IDLE_SESSIONS (10,000; --quick 300), BENCH_BUSY_SESSIONS (1,000; --quick 100).
"""

import asyncio
import os
import re
import resource
import socket
import time

from harness import HOME, MIB, PASSWORD, USER, add_row, fail, log, start_gateway

# What systemd/qftpd.service sets (LimitNOFILE=).
UNIT_NOFILE = 65536
# The packaged max-connections-per-ip (packaging/qftpd.toml).
PER_ADDRESS = 50
# Sessions logging in at once: enough to keep the gateway busy, few enough that the cluster
# connections the gateway pools for them stay a small part of its descriptors.
LOGINS_AT_ONCE = 64
# Seconds any one reply or transfer may take before the session counts as failed.
TIMEOUT = 120
TARGET_RSS_MIB = 512
# The packaged passive ports (packaging/qftpd.toml), and the address the busy phase's gateway
# serves on (see busy_sessions).
PASSIVE_DEFAULT = (50000, 50999)
BUSY_IP = "127.0.1.1"

PASV_RE = re.compile(rb"\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)")


def phases(b):
    env = os.environ.get
    idle = int(env("BENCH_IDLE_SESSIONS", 300 if b.quick else 10000))
    busy = int(env("BENCH_BUSY_SESSIONS", 100 if b.quick else 1000))
    return [
        ("9 %d idle logged-in sessions" % idle, lambda: idle_sessions(b, idle)),
        ("10 %d sessions transferring at once" % busy, lambda: busy_sessions(b, busy)),
    ]


# --------------------------------------------------------------------------- limits

def gateway_nofile():
    """The open-file limit the packaged unit gives the gateway, capped by this machine's hard
    limit (which an unprivileged unit could not exceed either)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard >= UNIT_NOFILE:
        return UNIT_NOFILE, "LimitNOFILE=%d of qftpd.service" % UNIT_NOFILE
    return hard, "this machine's hard limit %d (below LimitNOFILE=%d of qftpd.service)" % (
        hard, UNIT_NOFILE)


def raise_own_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < need:
        log("   the benchmark may open %d files, fewer than the %d it needs" % (soft, need))


def start(b, sessions, tag, listen="127.0.0.1:0"):
    """The gateway for `sessions` sessions (and the one the idle phase opens first)."""
    nofile, why = gateway_nofile()
    log("   gateway open-file limit: %d (%s)" % (nofile, why))
    # max-connections: the packaged default (500) is below the sessions measured; every other
    # [ftp] key keeps its packaged default (passive ports 50000-50999, 50 per address).
    lines = ["max-connections = %d" % (sessions + 1)]
    return start_gateway(b.a.binary, b.work, b.sim, ftp_lines=lines, nofile=nofile, tag=tag,
                         listen=listen)


def address(i, sessions):
    """The loopback address of session `i`: sessions take the addresses in turn, so that no
    address has more than PER_ADDRESS of them and logins in progress spread over all."""
    n = max(1, -(-sessions // PER_ADDRESS))
    return "127.0.%d.%d" % divmod(2 + i % n, 256)


# --------------------------------------------------------------------------- gateway probes

def descriptors(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def socket_inodes(pid):
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def connections_to(pid, port):
    """The process's TCP connections whose remote port is `port` (its cluster connections)."""
    mine = socket_inodes(pid)
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in mine:
                        n += 1
        except OSError:
            pass
    return n


# --------------------------------------------------------------------------- the client

class Session:
    """One FTP control connection from a loopback address, read as asyncio streams."""

    def __init__(self, source):
        self.source = source
        self.reader = self.writer = None

    async def connect(self, host, port):
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(self.source, 0), limit=1 << 16),
            TIMEOUT)
        return await self.reply()

    async def reply(self):
        """The code and text of the next reply (multi-line replies whole)."""
        line = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
        if len(line) < 4:
            raise RuntimeError("connection closed (%r)" % line)
        text = line
        if line[3:4] == b"-":
            end = line[:3] + b" "
            while not line.startswith(end):
                line = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
                if not line:
                    raise RuntimeError("connection closed in a reply")
                text += line
        return int(line[:3]), text.decode("utf-8", "replace").strip()

    async def cmd(self, line, want=None):
        self.writer.write(line.encode() + b"\r\n")
        code, text = await self.reply()
        if want is not None and code != want:
            raise RuntimeError("%s: %s" % (line.split()[0], text))
        return code, text

    async def login(self, host, port):
        code, text = await self.connect(host, port)
        if code != 220:
            raise RuntimeError("greeting: " + text)
        await self.cmd("USER " + USER, 331)
        await self.cmd("PASS " + PASSWORD, 230)

    async def data(self):
        """A passive data connection from this session's address."""
        _, text = await self.cmd("PASV", 227)
        m = PASV_RE.search(text.encode())
        if not m:
            raise RuntimeError("PASV reply: " + text)
        f = [int(x) for x in m.groups()]
        return await asyncio.wait_for(asyncio.open_connection(
            "%d.%d.%d.%d" % tuple(f[:4]), f[4] * 256 + f[5], local_addr=(self.source, 0)),
            TIMEOUT)

    async def stor(self, name, body):
        dr, dw = await self.data()
        code, text = await self.cmd("STOR " + name)
        if code not in (125, 150):
            dw.close()
            raise RuntimeError("STOR: " + text)
        dw.write(body)
        await asyncio.wait_for(dw.drain(), TIMEOUT)
        dw.close()
        await dw.wait_closed()
        code, text = await self.reply()
        if code != 226:
            raise RuntimeError("STOR end: " + text)

    async def retr(self, name):
        dr, dw = await self.data()
        code, text = await self.cmd("RETR " + name)
        if code not in (125, 150):
            dw.close()
            raise RuntimeError("RETR: " + text)
        body = await asyncio.wait_for(dr.read(), TIMEOUT)
        dw.close()
        code, text = await self.reply()
        if code != 226:
            raise RuntimeError("RETR end: " + text)
        return body

    async def quit(self):
        try:
            await self.cmd("QUIT")
        except Exception:
            pass
        self.close()

    def close(self):
        if self.writer:
            self.writer.close()


async def log_in_all(host, port, n):
    """n sessions logged in, LOGINS_AT_ONCE at a time; failed ones are None, with the errors."""
    sessions, errors = [None] * n, []
    gate = asyncio.Semaphore(LOGINS_AT_ONCE)

    async def one(i):
        async with gate:
            s = Session(address(i, n))
            try:
                await s.login(host, port)
                sessions[i] = s
            except Exception as e:
                s.close()
                errors.append("session %d (%s): login: %s" % (i, s.source, e or type(e).__name__))

    await asyncio.gather(*(one(i) for i in range(n)))
    return sessions, errors


def report(errors, what):
    for e in errors[:10]:
        fail(e)
    if len(errors) > 10:
        fail("... %d %s failures in all" % (len(errors), what))


# --------------------------------------------------------------------------- 9: idle sessions

def idle_sessions(b, n):
    raise_own_nofile(n + 1024)
    gw, host, port = start(b, n, "idle")
    try:
        asyncio.run(idle_run(b, gw, host, port, n))
    finally:
        gw.stop()


async def idle_run(b, gw, host, port, n):
    sim_port = int(b.sim["url"].rsplit(":", 1)[1])
    # One session first: the gateway's lazily built state (the cluster's name, a pooled
    # cluster connection) is then part of the baseline.
    warm = Session("127.0.0.1")
    await warm.login(host, port)
    await warm.cmd("NOOP", 200)
    fds0, pool0, rss0 = descriptors(gw.pid), connections_to(gw.pid, sim_port), gw.status("VmRSS")
    t0 = time.time()
    sessions, errors = await log_in_all(host, port, n)
    took = time.time() - t0
    live = [s for s in sessions if s]
    fds1, pool1, rss1 = descriptors(gw.pid), connections_to(gw.pid, sim_port), gw.status("VmRSS")
    log("   %d of %d sessions logged in in %.1f s from %d addresses; gateway: %d -> %d "
        "descriptors (cluster connections %d -> %d), VmRSS %.1f -> %.1f MiB"
        % (len(live), n, took, len({s.source for s in live}), fds0, fds1, pool0, pool1,
           rss0 / 1024.0, rss1 / 1024.0))

    gate = asyncio.Semaphore(256)

    async def noop(s):
        async with gate:
            try:
                await s.cmd("NOOP", 200)
                return True
            except Exception as e:
                errors.append("session from %s: NOOP: %s" % (s.source, e or type(e).__name__))
                return False

    answered = sum(await asyncio.gather(*(noop(s) for s in live)))
    await asyncio.gather(*(s.quit() for s in live), warm.quit())
    report(errors, "session")

    add_row("%d idle logged-in sessions: served (NOOP 200 while all open)" % n,
            "%d" % answered, "—", "—", "%d (all)" % n, answered == n)
    per_session = (rss1 - rss0) / max(1, len(live))
    add_row("RSS of qftpd with %d idle sessions (per session)" % n,
            "%.1f MiB (%.1f KiB)" % (rss1 / 1024.0, per_session),
            "%.1f MiB before" % (rss0 / 1024.0), "—", "≤ %d MiB" % TARGET_RSS_MIB,
            rss1 / 1024.0 <= TARGET_RSS_MIB)
    # Cluster connections pooled during the logins are not the sessions': counted apart.
    added = fds1 - fds0 - (pool1 - pool0)
    per = added / max(1, len(live))
    add_row("descriptors per idle session (%d sessions)" % n,
            "%.2f" % per, "—", "—", "1", len(live) > 0 and round(per, 2) <= 1.0,
            "+%d descriptors, of them %d pooled cluster connections" % (fds1 - fds0,
                                                                        pool1 - pool0))


# --------------------------------------------------------------------------- 10: transfers

def ports_taken(ip, low, high):
    """Ports of low-high a passive listener on `ip` cannot have now: each is bound and listened
    on for an instant, as the gateway does (SO_REUSEADDR)."""
    taken = 0
    for port in range(low, high + 1):
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((ip, port))
            s.listen(1)
        except OSError:
            taken += 1
        finally:
            s.close()
    return taken


def busy_sessions(b, n):
    raise_own_nofile(3 * n + 1024)
    # The passive listeners bind the address the client dialled. 1,000 sessions asking for a
    # port at the same moment need the whole default range (50000-50999, inside the kernel's
    # ephemeral range 32768-60999): on 127.0.0.1 this shared machine's own loopback
    # connections (earlier phases' clients in TIME_WAIT, other users' tests) hold some of those
    # ports, and PASV then gets "425 No passive port free" (README: reserve the range with
    # net.ipv4.ip_local_reserved_ports). The gateway serves on an address of its own,
    # 127.0.1.1, where only its sessions' sockets are; what it avoids is logged.
    log("   ports of 50000-50999 a passive listener cannot have now: %d on 127.0.0.1, %d on %s"
        % (ports_taken("127.0.0.1", *PASSIVE_DEFAULT), ports_taken(BUSY_IP, *PASSIVE_DEFAULT),
           BUSY_IP))
    gw, host, port = start(b, n, "busy", listen=BUSY_IP + ":0")
    disk = os.path.join(b.sim["data"], HOME.lstrip("/"))
    try:
        errors, took, moved, peak_fds = asyncio.run(busy_run(host, port, n, gw.pid))
        peak = gw.status("VmHWM")
    finally:
        gw.stop()
        for f in os.listdir(disk):
            if f.startswith("busy-"):
                os.unlink(os.path.join(disk, f))
    report(errors, "transfer")
    add_row("%d sessions STOR+RETR 1 MiB at once (default passive ports): failures" % n,
            str(len(errors)), "—", "—", "0", not errors)
    add_row("%d sessions at once: aggregate MB/s (wall)" % n,
            "%.1f (%.1f s)" % (moved / took / 1e6, took), "—", "—", "—", None)
    add_row("peak RSS of qftpd, %d sessions transferring" % n, "%.1f MiB" % (peak / 1024.0),
            "—", "—", "—", None)
    add_row("peak descriptors of qftpd, %d sessions transferring" % n, str(peak_fds),
            "—", "—", "—", None)


async def sample_descriptors(pid, peak, done):
    """Keeps the highest descriptor count of `pid` in peak[0] until `done` is set."""
    while not done.is_set():
        try:
            peak[0] = max(peak[0], descriptors(pid))
        except OSError:
            return
        try:
            await asyncio.wait_for(done.wait(), 0.05)
        except asyncio.TimeoutError:
            pass


async def busy_run(host, port, n, pid):
    sessions, errors = await log_in_all(host, port, n)
    live = [(i, s) for i, s in enumerate(sessions) if s]
    for _, s in live:
        await s.cmd("TYPE I", 200)
    # Distinct content per session: its number, then bytes that depend on it.
    block = os.urandom(MIB)
    go = asyncio.Event()
    moved = [0]

    async def one(i, s):
        name = "busy-%05d.bin" % i
        body = i.to_bytes(4, "big") + block[4 + i % 4096:] + block[:i % 4096]
        await go.wait()
        try:
            await s.stor(name, body)
            moved[0] += len(body)
            back = await s.retr(name)
            if back != body:
                raise RuntimeError("RETR returned %d bytes that differ from the %d stored"
                                   % (len(back), len(body)))
            moved[0] += len(back)
        except Exception as e:
            errors.append("session %d (%s): %s" % (i, s.source, e or type(e).__name__))
        await s.quit()

    tasks = [asyncio.ensure_future(one(i, s)) for i, s in live]
    peak, done = [0], asyncio.Event()
    sampler = asyncio.ensure_future(sample_descriptors(pid, peak, done))
    await asyncio.sleep(0)
    t0 = time.time()
    go.set()
    await asyncio.gather(*tasks)
    took = time.time() - t0
    done.set()
    await sampler
    return errors, took, moved[0], peak[0]
