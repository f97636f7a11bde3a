#!/usr/bin/env python3
"""Benchmark driver for benches/run (python3 standard library only).

Starts `qftpd sim` over HTTPS and over plain HTTP, a `qftpd serve` gateway in front of each
(restarted per phase, so the gateway's peak RSS is per phase), and vsftpd as a reference FTP
server; measures each figure next to its baseline and prints one table. The children are
started and watched through benches/harness.py, the benchmark's counterpart of tests/common.

Exit status: 1 when a correctness check fails (a transfer fails, bytes differ, a listing is
incomplete); in a full run also when a target is missed (never with --quick).
"""

import argparse
import io
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time

import latency
import relay
import sessions
from harness import (FAILURES, HOME, MIB, PASSWORD, ROWS, USER, Rest, add_row, curl_w, fail,
                     fmt, ftp_login, ftp_url, log,
                     make_file, proc_cpu, ref, render, rss_mib, start_gateway, start_sim,
                     start_vsftpd, stop_all)

# --------------------------------------------------------------------------- phases

# Wall-clock ratios of one large transfer against a direct REST client: shown, not a target.
# On a machine whose cores the FTP client, the gateway and the simulator share they measure
# CPU contention more than the relay; its cost is the relay rows' CPU seconds per GiB.
WALL_CLOCK = "info"

class Bench:
    def __init__(self, args):
        self.a = args
        self.quick = args.quick
        env = os.environ.get
        self.file_mib = int(env("BENCH_FILE_MIB", 64 if self.quick else 1024))
        self.list_n = int(env("BENCH_LIST_ENTRIES", 2000 if self.quick else 100000))
        self.sessions = int(env("BENCH_SESSIONS", 20 if self.quick else 200))
        self.sess_mib = int(env("BENCH_SESSION_MIB", 1 if self.quick else 16))
        self.rss_sessions = int(env("BENCH_RSS_SESSIONS", 10 if self.quick else 100))
        self.n_logins = int(env("BENCH_LOGINS", 100 if self.quick else 1000))
        self.n_small = int(env("BENCH_SMALL_FILES", 30 if self.quick else 300))
        self.repeat = int(env("BENCH_REPEAT", 1 if self.quick else 5))
        self.work = tempfile.mkdtemp(prefix="qftpd-bench-",
                                     dir=env("BENCH_WORKDIR") or self.memory_dir())
        self.durations = []

    def memory_dir(self):
        """/dev/shm when it has room for the files (the big file, two stored copies, the
        listing): the simulator's disk then costs the same in every run, where page-cache
        write-back to a real disk would stall some runs and not others. None otherwise (the
        system's temporary directory)."""
        need = 4 * self.file_mib * MIB + 2 * self.sessions * self.sess_mib * MIB + 512 * MIB
        try:
            st = os.statvfs("/dev/shm")
        except OSError:
            return None
        return "/dev/shm" if st.f_bavail * st.f_frsize > need else None

    # ---- setup
    def setup(self):
        b = self.a.binary
        self.sim = start_sim(b, self.work, "https", plain=False)
        self.simp = start_sim(b, self.work, "http", plain=True)
        log("   simulator (HTTPS): %s  simulator (HTTP): %s" % (self.sim["url"], self.simp["url"]))
        self.rest = Rest(self.sim)
        self.restp = Rest(self.simp)
        self.size = self.file_mib * MIB
        self.big = os.path.join(self.work, "big.bin")
        make_file(self.big, self.size)
        for s in (self.sim, self.simp):
            os.link(self.big, os.path.join(s["data"], HOME.lstrip("/"), "big.bin"))
            with open(os.path.join(s["data"], HOME.lstrip("/"), "one.bin"), "wb") as f:
                f.write(b"x")
        self.vs = start_vsftpd(self.work)
        if self.vs:
            os.link(self.big, os.path.join(self.vs["root"], "big.bin"))
            with open(os.path.join(self.vs["root"], "one.bin"), "wb") as f:
                f.write(b"x")
            log("   vsftpd on port %d" % self.vs["port"])
        else:
            log("   vsftpd not available: no reference column")

    def disk(self, sim, api_path):
        return os.path.join(sim["data"], api_path.lstrip("/"))

    def phase(self, name, fn):
        log("== " + name)
        t0 = time.time()
        try:
            fn()
        except Exception as e:  # a phase that cannot run is a correctness failure
            fail("%s: %s: %s" % (name, type(e).__name__, e))
        d = time.time() - t0
        self.durations.append((name, d))
        log("   (%s: %.1f s)" % (name, d))

    # ---- 1 and 2: large transfers
    def retr_once(self, host, port, path, user=True, size=None):
        """One RETR of the big file (or of a file of `size` bytes): curl's figures, or None
        (a correctness failure)."""
        size = self.size if size is None else size
        args = [ftp_url(host, port, path), "-o", "/dev/null"]
        if user:
            args += ["--user", "%s:%s" % (USER, PASSWORD)]
        r, err = curl_w(args, ["speed_download", "size_download"])
        if r is None:
            fail("RETR %s: %s" % (path, err))
        elif int(r["size_download"]) != size:
            fail("RETR %s: %d bytes, expected %d" % (path, r["size_download"], size))
            r = None
        return r

    def get_once(self, rest):
        """One direct GET of the big file."""
        url = "%s/v1/files/%s/data" % (rest.sim["url"], ref(HOME + "/big.bin"))
        r, err = curl_w([url, "-o", "/dev/null", "--fail"] + rest.curl_auth(),
                        ["speed_download", "size_download"])
        if r is None or int(r["size_download"]) != self.size:
            fail("direct GET: %s" % (err or "%d bytes" % r["size_download"]))
            return None
        return r

    def stor_once(self, host, port, path, disk, user=True, src=None):
        """One STOR of the big file (or of `src`); the stored size is checked (the bytes by
        the caller)."""
        src = src or self.big
        args = ["-T", src, ftp_url(host, port, path)]
        if user:
            args += ["--user", "%s:%s" % (USER, PASSWORD)]
        r, err = curl_w(args, ["speed_upload", "size_upload"])
        if r is None:
            fail("STOR %s: %s" % (path, err))
        elif os.path.getsize(disk) != os.path.getsize(src):
            fail("STOR %s: stored %d bytes" % (path, os.path.getsize(disk)))
            r = None
        return r

    def stor_new(self, host, port, path, disk, user=True):
        """A STOR of the big file as a new file, as each direct PUT makes one: replacing the
        previous upload would add its deletion to the server's work on this side only."""
        if os.path.exists(disk):
            os.unlink(disk)
        return self.stor_once(host, port, path, disk, user)

    def put_once(self, rest, name):
        """One direct chunked PUT of the big file into a new file `name`."""
        rest.request("POST", "/v1/files/%s/entries/" % ref(HOME),
                     {"name": name, "action": "CREATE_FILE"})
        url = "%s/v1/files/%s/data" % (rest.sim["url"], ref(HOME + "/" + name))
        r, err = curl_w(["-T", self.big, "-X", "PUT", "--fail", "-o", "/dev/null",
                         "-H", "Transfer-Encoding: chunked",
                         "-H", "Content-Type: application/octet-stream", url]
                        + rest.curl_auth(), ["speed_upload", "size_upload"])
        disk = self.disk(rest.sim, HOME + "/" + name)
        if r is None or os.path.getsize(disk) != self.size:
            fail("direct PUT: %s" % (err or "stored %d bytes" % os.path.getsize(disk)))
            r = None
        os.unlink(disk)
        return r

    def best_of(self, once, key):
        best = None
        for _ in range(self.repeat):
            r = once()
            if r is None:
                return None
            best = max(best or 0, r[key])
        return best

    def side_by_side(self, key, via_qftpd, direct, gw, sim):
        """`repeat` rounds of one transfer through qftpd then one direct, alternated so that
        both meet the same machine: the best throughput of each, and the CPU seconds per GiB
        that qftpd, the client and the simulator spent (means over the rounds)."""
        best = {"ftp": None, "rest": None}
        cpu = {"ftp": [0.0, 0.0, 0.0], "rest": [0.0, 0.0, 0.0]}
        for _ in range(self.repeat):
            for side, once in (("ftp", via_qftpd), ("rest", direct)):
                g0, s0 = proc_cpu(gw.pid), proc_cpu(sim["proc"].pid)
                r = once()
                if r is None:
                    return None, None
                g1, s1 = proc_cpu(gw.pid), proc_cpu(sim["proc"].pid)
                best[side] = max(best[side] or 0, r[key])
                for i, v in enumerate((g1 - g0 if side == "ftp" else 0.0, r["cpu"], s1 - s0)):
                    cpu[side][i] += v
        gib = self.repeat * self.size / float(1 << 30)
        per_gib = {k: [v / gib for v in vs] for k, vs in cpu.items()}
        return best, per_gib

    def cpu_row(self, measure, per_gib, client):
        """CPU seconds per GiB through qftpd (qftpd + FTP client + simulator) and direct
        (client + simulator); the ratio of the totals bounds the throughput ratio on a machine
        whose cores all processes share."""
        if per_gib is None:
            return
        q, c, s = per_gib["ftp"]
        _, dc, ds = per_gib["rest"]
        add_row(measure, "%.2f + %.2f + %.2f = %.2f" % (q, c, s, q + c + s),
                "%.2f + %.2f = %.2f (%s + simulator)" % (dc, ds, dc + ds, client),
                fmt((dc + ds) / (q + c + s), prec=2), "—", None)

    def big_transfers(self, sim, rest, label, with_ref):
        """RETR and STOR through a gateway in front of `sim` (a fresh gateway for each, for
        its peak RSS), alternated with the direct transfers."""
        gb = self.size / float(1 << 30)
        size_label = ("%g GiB" % gb) if gb >= 1 else ("%d MiB" % self.file_mib)
        # RETR
        gw, host, port = start_gateway(self.a.binary, self.work, sim)
        best, cpu = self.side_by_side(
            "speed_download", lambda: self.retr_once(host, port, HOME + "/big.bin"),
            lambda: self.get_once(rest), gw.p, sim)
        rss_retr = gw.status("VmHWM")
        gw.stop()
        ref_v = None
        if with_ref and self.vs:
            ref_v = self.best_of(lambda: self.retr_once(self.vs["host"], self.vs["port"],
                                                        "/big.bin", user=False),
                                 "speed_download")
        best = best or {"ftp": None, "rest": None}
        self.ratio_row("RETR %s, %s (MB/s)" % (size_label, label), best["ftp"], best["rest"],
                       ref_v, None, WALL_CLOCK, "direct GET")
        self.cpu_row("CPU s/GiB, RETR, %s: qftpd + FTP client + simulator" % label, cpu,
                     "curl GET")
        # STOR
        gw, host, port = start_gateway(self.a.binary, self.work, sim)
        up = self.disk(sim, HOME + "/up.bin")
        puts = iter(range(1 << 30))
        best, cpu = self.side_by_side(
            "speed_upload", lambda: self.stor_new(host, port, HOME + "/up.bin", up),
            lambda: self.put_once(rest, "put-%s-%d.bin" % (label, next(puts))), gw.p, sim)
        rss_stor = gw.status("VmHWM")
        gw.stop()
        if best and not same_file(up, self.big):
            fail("STOR %s: stored bytes differ" % up)
        if os.path.exists(up):
            os.unlink(up)
        ref_v = None
        if with_ref and self.vs:
            vs_up = os.path.join(self.vs["up"], "up.bin")
            ref_v = self.best_of(lambda: self.stor_new(self.vs["host"], self.vs["port"],
                                                       "/up/up.bin", vs_up, user=False),
                                 "speed_upload")
            if ref_v and not same_file(vs_up, self.big):
                fail("vsftpd STOR: stored bytes differ")
        best = best or {"ftp": None, "rest": None}
        self.ratio_row("STOR %s, %s (MB/s)" % (size_label, label), best["ftp"], best["rest"],
                       ref_v, None, WALL_CLOCK, "direct chunked PUT")
        self.cpu_row("CPU s/GiB, STOR, %s: qftpd + FTP client + simulator" % label, cpu,
                     "curl PUT")
        for what, kib in (("RETR", rss_retr), ("STOR", rss_stor)):
            ok = kib / 1024.0 <= 64
            add_row("peak RSS of qftpd, %s %s, %s" % (what, size_label, label),
                    fmt(rss_mib(kib), "MiB"), "—", "—", "≤ 64 MiB", ok)
        if with_ref:
            self.rss_growth(sim, size_label, label, max(rss_retr, rss_stor))

    def rss_growth(self, sim, size_label, label, big_kib):
        """The same RETR and STOR (a fresh gateway each) of a file a sixteenth the size:
        memory must not grow with the file's size."""
        small = max(self.size // 16, MIB)
        src = os.path.join(self.work, "small.bin")
        make_file(src, small)
        os.link(src, self.disk(sim, HOME + "/small.bin"))
        peak = 0
        for what in ("RETR", "STOR"):
            gw, host, port = start_gateway(self.a.binary, self.work, sim)
            up = self.disk(sim, HOME + "/small-up.bin")
            r = self.retr_once(host, port, HOME + "/small.bin", size=small) if what == "RETR" \
                else self.stor_once(host, port, HOME + "/small-up.bin", up, src=src)
            peak = max(peak, gw.status("VmHWM"))
            gw.stop()
            if r is None:
                return
        if not same_file(up, src):
            fail("STOR small.bin: stored bytes differ")
        grown = (big_kib - peak) / 1024.0
        add_row("peak RSS of qftpd, %d MiB against %s, %s" % (small // MIB, size_label, label),
                "%s → %s (%+.1f MiB)" % (fmt(rss_mib(peak), "MiB"), fmt(rss_mib(big_kib), "MiB"),
                                         grown),
                "—", "—", "growth ≤ 8 MiB", grown <= 8)

    def ratio_row(self, measure, q, base, ref_v, target, target_s, base_name, higher=True):
        ratio = (q / base) if (q and base) else None
        ok = None
        if ratio is not None and target is not None:
            ok = ratio >= target if higher else ratio <= target
        mb = lambda v: None if v is None else v / 1e6
        add_row(measure, fmt(mb(q)), "%s (%s)" % (fmt(mb(base)), base_name),
                fmt(ratio, prec=3), target_s, ok, fmt(mb(ref_v)) if ref_v else "")

    # ---- 4: large listing
    def listing(self):
        d = HOME + "/list%d" % self.list_n
        disk = self.disk(self.sim, d)
        os.makedirs(disk, exist_ok=True)
        for i in range(self.list_n):
            open(os.path.join(disk, "f%07d" % i), "wb").close()
        gw, host, port = start_gateway(self.a.binary, self.work, self.sim)
        out = os.path.join(self.work, "list.txt")
        r, err = curl_w([ftp_url(host, port, d + "/"), "--user", "%s:%s" % (USER, PASSWORD),
                         "-o", out], ["time_starttransfer", "time_total"])
        first_byte = self.list_first_byte(host, port, d)
        rss = gw.status("VmHWM")
        gw.stop()
        if r is None:
            fail("LIST: " + err)
            return
        with open(out, "rb") as f:
            lines = sum(1 for _ in f)
        if lines != self.list_n:
            fail("LIST: %d lines, expected %d" % (lines, self.list_n))
        # Direct paged listing (token obtained beforehand, as the gateway holds one too).
        conn = self.rest.conn()
        t0 = time.time()
        first = None
        count = 0
        nxt = "/v1/files/%s/entries/?limit=1000" % ref(d)
        while nxt:
            page = self.rest.request("GET", nxt, conn=conn)
            if first is None:
                first = time.time() - t0
            count += len(page["files"])
            nxt = page["paging"]["next"]
        total = time.time() - t0
        # The first page alone, as the first byte is measured: the best of three.
        for _ in range(3):
            t0 = time.perf_counter()
            self.rest.request("GET", "/v1/files/%s/entries/?limit=1000" % ref(d), conn=conn)
            first = min(first, time.perf_counter() - t0)
        conn.close()
        if count != self.list_n:
            fail("REST listing: %d entries, expected %d" % (count, self.list_n))
        ratio = r["time_total"] / total
        # The first line goes out once the first page is in: what qftpd adds to it is its own.
        if first_byte is not None:
            added = first_byte - first
            add_row("LIST %d entries: LIST to first byte (s)" % self.list_n,
                    fmt(first_byte, prec=3), "%s (first REST page, best of 3)" % fmt(first, prec=3),
                    "%+.3f" % added, "≤ +0.050", added <= 0.050)
        add_row("LIST %d entries: curl's first byte (s), with login and CWD" % self.list_n,
                fmt(r["time_starttransfer"], prec=3), "—", "—", "—", None)
        add_row("LIST %d entries: total (s), %d lines" % (self.list_n, lines),
                fmt(r["time_total"], prec=3),
                "%s (paged REST, %d entries)" % (fmt(total, prec=3), count),
                fmt(ratio, prec=2), "≤ 1.3", ratio <= 1.3)
        add_row("peak RSS of qftpd, LIST %d" % self.list_n, fmt(rss_mib(rss), "MiB"),
                "—", "—", "—", None)
        shutil.rmtree(disk, ignore_errors=True)

    def list_first_byte(self, host, port, d):
        """Seconds from EPSV and LIST to the first byte of the listing, in a logged-in session
        (the 150 goes out once the first page is in): the best of three (the simulator's first page of a large
        directory sorts all its names each time)."""
        best = None
        try:
            ftp = ftp_login(host, port, True, timeout=120)
            for _ in range(3):
                ftp.sendcmd("TYPE A")
                t0 = time.perf_counter()
                conn = ftp.transfercmd("LIST " + d)
                first = conn.recv(1)
                t = time.perf_counter() - t0
                while conn.recv(1 << 16):
                    pass
                conn.close()
                ftp.voidresp()
                if not first:
                    raise RuntimeError("empty listing")
                best = t if best is None else min(best, t)
            ftp.quit()
        except Exception as e:
            fail("LIST first byte: %s" % e)
        return best

    # ---- 3b and 5: concurrent sessions
    def sessions_run(self, host, port, n, size, prefix, user, upload_dir):
        """n concurrent ftplib sessions, each STOR then RETR (verified) of `size` bytes.
        Returns (failures, wall seconds, bytes moved)."""
        pool = os.urandom(size + 4096)
        errors = []
        barrier = threading.Barrier(n + 1)
        ramp = threading.Semaphore(8)

        def one(i):
            off = (i * 4099) % 4096
            data = memoryview(pool)[off:off + size]
            name = "%s/%s-%d.bin" % (upload_dir, prefix, i)
            try:
                # Sessions log in a few at a time (untimed), then all transfer at once.
                with ramp:
                    ftp = ftp_login(host, port, user, timeout=120)
            except Exception as e:
                errors.append("session %d connect/login: %s" % (i, e))
                barrier.wait(300)
                return
            barrier.wait(300)
            try:
                class Src:
                    pos = 0

                    def read(self, k):
                        chunk = data[self.pos:self.pos + k]
                        self.pos += len(chunk)
                        return chunk
                ftp.storbinary("STOR " + name, Src(), blocksize=256 * 1024)
                got = [0, True]

                def sink(chunk):
                    p = got[0]
                    if data[p:p + len(chunk)] != chunk:
                        got[1] = False
                    got[0] = p + len(chunk)
                ftp.retrbinary("RETR " + name, sink, blocksize=256 * 1024)
                if got[0] != size or not got[1]:
                    errors.append("session %d: read %d bytes, %s" % (
                        i, got[0], "same" if got[1] else "bytes differ"))
                ftp.quit()
            except Exception as e:
                errors.append("session %d: %s: %s" % (i, type(e).__name__, e))
                try:
                    ftp.close()
                except Exception:
                    pass

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        barrier.wait(300)
        t0 = time.time()
        for t in threads:
            t.join()
        wall = time.time() - t0
        return errors, wall, 2 * n * size

    def concurrency(self, sim, n, size, prefix, rss_target=None, with_ref=False):
        gw, host, port = start_gateway(self.a.binary, self.work, sim)
        errs, wall, moved = self.sessions_run(host, port, n, size, prefix, True, HOME)
        rss = gw.status("VmHWM")
        errs1, wall1, moved1 = self.sessions_run(host, port, 1, size, prefix + "-one", True,
                                                 HOME)
        gw.stop()
        for e in (errs + errs1)[:10]:
            fail(e)
        if len(errs) > 10:
            fail("... %d session failures in all" % len(errs))
        for f in os.listdir(self.disk(sim, HOME)):
            if f.startswith(prefix):
                os.unlink(os.path.join(self.disk(sim, HOME), f))
        agg, single = moved / wall, moved1 / wall1
        ref = ""
        if with_ref and self.vs:
            verrs, vwall, vmoved = self.sessions_run(self.vs["host"], self.vs["port"], n, size,
                                                     prefix, False, "/up")
            for e in verrs[:5]:
                fail("vsftpd: " + e)
            ref = fmt((vmoved / vwall) / 1e6) + " (%d failures)" % len(verrs)
            for f in os.listdir(self.vs["up"]):
                os.unlink(os.path.join(self.vs["up"], f))
        return errs, agg, single, rss, ref

    def concurrent_rss(self):
        n, size = self.rss_sessions, self.sess_mib * MIB
        errs, agg, single, rss, _ = self.concurrency(self.sim, n, size, "rss")
        add_row("peak RSS of qftpd, %d sessions STOR+RETR %d MiB" % (n, self.sess_mib),
                fmt(rss_mib(rss), "MiB"), "—", "—", "≤ 256 MiB", rss / 1024.0 <= 256)

    def concurrent(self):
        n, size = self.sessions, self.sess_mib * MIB
        errs, agg, single, rss, ref = self.concurrency(self.sim, n, size, "conc", with_ref=True)
        add_row("%d sessions STOR+RETR %d MiB: failures" % (n, self.sess_mib),
                str(len(errs)), "—", "—", "0", len(errs) == 0)
        ratio = agg / single
        add_row("%d sessions: aggregate (MB/s) vs 1 session" % n, fmt(agg / 1e6),
                "%s (1 session)" % fmt(single / 1e6), fmt(ratio, prec=2), "≥ 0.8",
                ratio >= 0.8, ref)
        add_row("peak RSS of qftpd, %d sessions" % n, fmt(rss_mib(rss), "MiB"), "—", "—",
                "—", None)

    # ---- 6: login to first byte
    def logins_run(self, host, port, n, path, user):
        times = []
        errors = 0
        for i in range(n):
            t0 = time.perf_counter()
            try:
                ftp = ftp_login(host, port, user, timeout=60)
                ftp.voidcmd("TYPE I")
                conn = ftp.transfercmd("RETR " + path)
                b = conn.recv(1)
                t1 = time.perf_counter()
                while b and conn.recv(65536):
                    pass
                conn.close()
                ftp.voidresp()
                ftp.quit()
                if b != b"x":
                    raise RuntimeError("first byte %r" % b)
                times.append(t1 - t0)
            except Exception as e:
                errors += 1
                if errors <= 5:
                    fail("login/RETR %d on port %d: %s" % (i, port, e))
        return times, errors

    def rest_first_byte(self, n):
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            c = self.rest.conn()
            tok = self.rest.login(conn=c)
            c.request("GET", "/v1/files/%s/data" % ref(HOME + "/one.bin"),
                      headers={"Authorization": "Bearer " + tok})
            r = c.getresponse()
            b = r.read(1)
            t1 = time.perf_counter()
            r.read()
            c.close()
            if b == b"x":
                times.append(t1 - t0)
        return times

    def logins(self):
        gw, host, port = start_gateway(self.a.binary, self.work, self.sim)
        times, errors = self.logins_run(host, port, self.n_logins, HOME + "/one.bin", True)
        gw.stop()
        rest = self.rest_first_byte(self.n_logins)
        ref = None
        if self.vs:
            ref, verr = self.logins_run(self.vs["host"], self.vs["port"], self.n_logins,
                                        "/one.bin", False)

        def pct(ts, p):
            if not ts:
                return None
            s = sorted(ts)
            return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))] * 1000

        add_row("%d sequential logins to first byte: failures" % self.n_logins, str(errors),
                "—", "—", "0", errors == 0)
        for p in (50, 99):
            q, b = pct(times, p), pct(rest, p)
            add_row("login to first byte of 1-byte RETR, p%d (ms)" % p, fmt(q, prec=2),
                    "%s (REST login+GET, new TLS conn)" % fmt(b, prec=2),
                    fmt(q / b, prec=2) if (q and b) else "—", "—", None,
                    fmt(pct(ref, p), prec=2) if ref else "")

    # ---- 7: small files, one session
    def small_run(self, host, port, user, d, n):
        """STOR, RETR and LIST of `n` 8 KiB files in `d` through one ftplib session: the
        seconds each command took, by command."""
        times = {"STOR": [], "RETR": [], "LIST": []}
        data = bytes(range(256)) * 32
        ftp = ftp_login(host, port, user, timeout=60)
        try:
            for i in range(n):
                name = "%s/small-%d.bin" % (d, i)
                t0 = time.perf_counter()
                ftp.storbinary("STOR " + name, io.BytesIO(data))
                times["STOR"].append(time.perf_counter() - t0)
                got = bytearray()
                t0 = time.perf_counter()
                ftp.retrbinary("RETR " + name, got.extend)
                times["RETR"].append(time.perf_counter() - t0)
                if bytes(got) != data:
                    fail("small file %s on port %d came back different" % (name, port))
                t0 = time.perf_counter()
                ftp.retrlines("LIST " + d, lambda line: None)
                times["LIST"].append(time.perf_counter() - t0)
            ftp.quit()
        except Exception as e:
            fail("small files on port %d: %s" % (port, e))
        return times

    def small_files(self):
        n = self.n_small
        gw, host, port = start_gateway(self.a.binary, self.work, self.sim)
        os.makedirs(self.disk(self.sim, HOME + "/small"), exist_ok=True)
        q = self.small_run(host, port, True, HOME + "/small", n)
        gw.stop()
        shutil.rmtree(self.disk(self.sim, HOME + "/small"), ignore_errors=True)
        ref = None
        if self.vs:
            ref = self.small_run(self.vs["host"], self.vs["port"], False, "/up", n)
            for f in os.listdir(self.vs["up"]):
                os.unlink(os.path.join(self.vs["up"], f))
        if q["STOR"] and len(q["STOR"]) == len(q["RETR"]):
            rate = len(q["STOR"]) / (sum(q["STOR"]) + sum(q["RETR"]))
            ref_rate = ""
            if ref and ref["STOR"] and len(ref["STOR"]) == len(ref["RETR"]):
                ref_rate = "%.0f" % (len(ref["STOR"]) / (sum(ref["STOR"]) + sum(ref["RETR"])))
            add_row("8 KiB files stored then read back, one session (files/s)", "%.0f" % rate,
                    "—", "—", "≥ 300", rate >= 300, ref_rate)
        for cmd in ("STOR", "RETR", "LIST"):
            p50 = statistics.median(q[cmd]) * 1000 if q[cmd] else None
            r50 = statistics.median(ref[cmd]) * 1000 if ref and ref[cmd] else None
            add_row("8 KiB %s, one session, p50 of %d (ms)" % (cmd, n), fmt(p50, prec=2), "—",
                    "—", "≤ 3", p50 is not None and p50 <= 3,
                    fmt(r50, prec=2) if r50 is not None else "")

    # ---- 8: cluster requests per FTP command
    def sim_requests(self):
        """API requests the simulator's nodes have received so far."""
        return sum(n["requests"] for n in self.rest.request("GET", "/sim/nodes")["nodes"])

    def calls_per_command(self):
        """REST calls each FTP command costs, counted at the simulator: one session, one
        command (or pair) at a time, after the gateway has learnt what it keeps."""
        gw, host, port = start_gateway(self.a.binary, self.work, self.sim)
        d = HOME + "/calls"
        os.makedirs(self.disk(self.sim, d), exist_ok=True)
        with open(self.disk(self.sim, d + "/old.bin"), "wb") as f:
            f.write(b"old" * 1000)
        for i in range(999):
            open(self.disk(self.sim, d + "/e%04d" % i), "wb").close()
        data = b"n" * 8192
        # A first session, so that what the gateway learns once (the cluster's name) is known.
        ftp_login(host, port, True, timeout=60).quit()
        counts = []
        try:
            before = self.sim_requests()
            ftp = ftp_login(host, port, True, timeout=60)
            counts.append(("login", self.sim_requests() - before, 2))

            def count(what, target, fn):
                b = self.sim_requests()
                fn()
                counts.append((what, self.sim_requests() - b, target))

            count("CWD", 1, lambda: ftp.cwd(d))
            count("LIST of 1,000 entries", 1, lambda: ftp.retrlines("LIST", lambda l: None))
            count("NLST of 1,000 entries", 1, lambda: ftp.nlst())
            count("MLSD of 1,000 entries", 1, lambda: list(ftp.mlsd()))
            count("STOR (new)", 3, lambda: ftp.storbinary("STOR new.bin", io.BytesIO(data)))
            count("STOR (overwrite)", 3,
                  lambda: ftp.storbinary("STOR old.bin", io.BytesIO(data)))
            count("APPE", 2, lambda: ftp.storbinary("APPE old.bin", io.BytesIO(data)))
            count("RETR", 1, lambda: ftp.retrbinary("RETR old.bin", lambda b: None))
            count("SIZE", 1, lambda: ftp.size("old.bin"))
            count("MDTM", 1, lambda: ftp.voidcmd("MDTM old.bin"))
            count("MLST", 1, lambda: ftp.voidcmd("MLST old.bin"))
            count("RNFR+RNTO", 2, lambda: ftp.rename("new.bin", "moved.bin"))
            count("DELE", 1, lambda: ftp.delete("moved.bin"))
            count("MKD", 1, lambda: ftp.mkd("sub"))
            count("RMD", 1, lambda: ftp.rmd("sub"))
            ftp.quit()
        except Exception as e:
            fail("REST calls per command: %s" % e)
        gw.stop()
        shutil.rmtree(self.disk(self.sim, d), ignore_errors=True)
        for what, n, target in counts:
            add_row("REST calls: %s" % what, str(n), "—", "—", "≤ %d" % target, n <= target)

    # ---- all
    def run(self):
        t_all = time.time()
        log("== setup (%d MiB file, %d-entry listing, %d x %d MiB sessions, %d RSS sessions, "
            "%d logins, repeat %d)" % (self.file_mib, self.list_n, self.sessions,
                                      self.sess_mib, self.rss_sessions, self.n_logins,
                                      self.repeat))
        t0 = time.time()
        self.setup()
        self.durations.append(("setup", time.time() - t0))
        self.phase("1-2 RETR/STOR over HTTPS",
                   lambda: self.big_transfers(self.sim, self.rest, "HTTPS", True))
        self.phase("1-2 RETR/STOR over plain HTTP",
                   lambda: self.big_transfers(self.simp, self.restp, "HTTP", False))
        self.phase("4 LIST", self.listing)
        self.phase("3 RSS with %d sessions" % self.rss_sessions, self.concurrent_rss)
        self.phase("5 %d concurrent sessions" % self.sessions, self.concurrent)
        self.phase("6 %d logins" % self.n_logins, self.logins)
        self.phase("7 %d small files" % self.n_small, self.small_files)
        self.phase("8 REST calls per FTP command", self.calls_per_command)
        for module in (latency, relay, sessions):
            for name, fn in module.phases(self):
                self.phase(name, fn)
        total = time.time() - t_all

        cpu = "unknown"
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        cpu = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        header = ["qftpd benchmark%s" % (" (--quick)" if self.quick else ""),
                  "date: " + time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                  "nproc: %d" % os.cpu_count(), "cpu: " + cpu,
                  "kernel: " + platform.release(),
                  "sizes: file %d MiB, listing %d, sessions %d x %d MiB, RSS sessions %d, "
                  "logins %d; best of %d alternated runs for 1 and 2" % (
                      self.file_mib, self.list_n, self.sessions, self.sess_mib,
                      self.rss_sessions, self.n_logins, self.repeat),
                  "work directory (simulator's disk): " + os.path.dirname(self.work),
                  "phases: " + ", ".join("%s %.1f s" % d for d in self.durations)
                  + "; total %.1f s" % total]
        log("")
        log(render(header, markdown=False))
        os.makedirs(self.a.out, exist_ok=True)
        md = render(["# " + header[0], ""] + ["- " + h for h in header[1:]], markdown=True)
        if FAILURES:
            md += "\n## Correctness failures\n\n" + "".join("- %s\n" % f for f in FAILURES)
        with open(os.path.join(self.a.out, "results.md"), "w") as f:
            f.write(md)
        log("written: %s" % os.path.join(self.a.out, "results.md"))
        if FAILURES:
            log("correctness failures: %d" % len(FAILURES))
            for f in FAILURES:
                log("  - " + f)
            return 1
        missed = [r["measure"] for r in ROWS if r["ok"] is False]
        if missed:
            log("targets missed: " + "; ".join(missed))
            return 0 if self.quick else 1
        return 0


def same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(8 * MIB), fb.read(8 * MIB)
            if x != y:
                return False
            if not x:
                return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(143)))
    b = Bench(args)
    try:
        rc = b.run()
    finally:
        stop_all()
        if not args.keep:
            shutil.rmtree(b.work, ignore_errors=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()
