"""Small files at a real cluster's latency against a direct REST client.

Phases of benches/bench.py: `phases(b)` returns (name, function) pairs, run in order with the
Bench `b` (its simulators, sizes and `quick` flag); rows go to the table with add_row.

Small files at 2 ms (issue 16, point 3): a simulator over HTTPS adding 2 ms to every API
request and a `qftpd serve` in front of it. 500 files of 8 KiB (60 with --quick), each with
its own contents, are stored then read back and checked, through one FTP session and through
16 parallel ones (each its share of the files), against a direct REST client doing the same
work in the fewest calls (CREATE_FILE, PUT of the bytes; GET) over as many keep-alive HTTPS
connections. Logins are not timed. The FTP client sends TYPE I once per session, then per file
PASV + STOR (or RETR) on a new data connection, as ftplib's transfercmd does. qftpd and the
direct client run alternately, 3 rounds (1 with --quick); the best round of each counts.
Alongside: the REST calls per file that the gateway made (counted by the simulator), and the
per-file STOR and RETR p50 through qftpd (over all rounds) next to the direct client's
CREATE+PUT and GET. BENCH_LATENCY_FILES overrides the number of files.
"""

import json
import os
import shutil
import statistics
import threading
import time

from harness import (HOME, Rest, add_row, fail, fmt, ftp_login, log, ref, start_gateway,
                     start_sim)

LATENCY_MS = 2
SIZE = 8 * 1024
PARALLEL = 16
TARGET = 0.8


def phases(b):
    n = int(os.environ.get("BENCH_LATENCY_FILES", 60 if b.quick else 500))
    return [("9 %d small files at %d ms latency" % (n, LATENCY_MS),
             lambda: SmallAtLatency(b, n).run())]


class SmallAtLatency:
    def __init__(self, b, n):
        self.b = b
        self.n = n
        self.rounds = 1 if b.quick else 3
        # Distinct contents: each file its own random bytes.
        self.files = [("f%04d.bin" % i, os.urandom(SIZE)) for i in range(n)]

    # ---- set-up
    def run(self):
        b = self.b
        self.sim = start_sim(b.a.binary, b.work, "latency", plain=False,
                             extra_args=["--latency-ms", str(LATENCY_MS)])
        self.rest = Rest(self.sim)
        gw, self.host, self.port = start_gateway(b.a.binary, b.work, self.sim)
        log("   simulator %s (+%d ms per request), gateway on port %d"
            % (self.sim["url"], LATENCY_MS, self.port))
        try:
            results = self.measure()
        finally:
            gw.stop()
            self.sim["proc"].stop()
        self.report(results)

    def sim_requests(self):
        """API requests the simulator's nodes have received so far (`/sim/…` is not counted
        and not delayed)."""
        return sum(n["requests"] for n in self.rest.request("GET", "/sim/nodes")["nodes"])

    def fresh_dir(self, name):
        d = HOME + "/" + name
        disk = os.path.join(self.sim["data"], d.lstrip("/"))
        shutil.rmtree(disk, ignore_errors=True)
        os.makedirs(disk)
        return d, disk

    def measure(self):
        """Rounds of qftpd then direct, for 1 then 16 sessions: {(side, k): [run, ...]}."""
        results = {}
        for r in range(self.rounds):
            for k in (1, PARALLEL):
                for side, fn in (("qftpd", self.via_qftpd), ("direct", self.direct)):
                    d, disk = self.fresh_dir("lat-%s-%d-%d" % (side, k, r))
                    res = fn(d, k)
                    shutil.rmtree(disk, ignore_errors=True)
                    if res is None:
                        return results
                    results.setdefault((side, k), []).append(res)
                    calls = ""
                    if "calls" in res:
                        calls = ", %.2f REST calls per file" % res["calls"]
                    if "calls_stor" in res:
                        calls += " (STOR %.2f, RETR %.2f)" % (res["calls_stor"],
                                                             res["calls_retr"])
                    log("   round %d, %s, %2d session(s): %.1f files/s%s"
                        % (r + 1, side, k, res["rate"], calls))
        return results

    def shares(self, k):
        return [self.files[i::k] for i in range(k)]

    def parallel(self, k, prepare, work):
        """Runs `work(i, state, mid)` in k threads after `prepare(i)` (untimed, in this thread)
        made each one's state; the wall time from the common start to the last one's end. With
        one thread, `mid` (the request count between storing and reading) is called untimed."""
        states = [prepare(i) for i in range(k)]
        ends = [None] * k
        errors = []
        barrier = threading.Barrier(k + 1)
        counts = {}

        def mid():
            if k == 1:
                t = time.perf_counter()
                counts["mid"] = self.sim_requests()
                return time.perf_counter() - t
            return 0.0

        def one(i):
            try:
                barrier.wait(60)
                untimed = work(i, states[i], mid)
                ends[i] = time.perf_counter() - untimed
            except Exception as e:
                errors.append("session %d: %s: %s" % (i, type(e).__name__, e))
                ends[i] = time.perf_counter()

        threads = [threading.Thread(target=one, args=(i,)) for i in range(k)]
        for t in threads:
            t.start()
        counts["before"] = self.sim_requests()
        barrier.wait(60)
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = max(ends) - t0
        counts["after"] = self.sim_requests()
        return states, errors, wall, counts

    # ---- through qftpd
    def via_qftpd(self, d, k):
        shares = self.shares(k)
        times = {"STOR": [], "RETR": []}
        lock = threading.Lock()

        def prepare(i):
            ftp = ftp_login(self.host, self.port, True, timeout=60)
            ftp.voidcmd("TYPE I")
            ftp.cwd(d)
            return ftp

        def work(i, ftp, mid):
            mine = {"STOR": [], "RETR": []}
            for name, data in shares[i]:
                t = time.perf_counter()
                conn = ftp.transfercmd("STOR " + name)
                conn.sendall(data)
                conn.close()
                ftp.voidresp()
                mine["STOR"].append(time.perf_counter() - t)
            untimed = mid()
            for name, data in shares[i]:
                t = time.perf_counter()
                conn = ftp.transfercmd("RETR " + name)
                got = bytearray()
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                conn.close()
                ftp.voidresp()
                mine["RETR"].append(time.perf_counter() - t)
                if bytes(got) != data:
                    raise RuntimeError("%s/%s came back different (%d bytes)"
                                       % (d, name, len(got)))
            with lock:
                for c in mine:
                    times[c] += mine[c]
            return untimed

        states, errors, wall, counts = self.parallel(k, prepare, work)
        for ftp in states:
            try:
                ftp.quit()
            except Exception:
                ftp.close()
        if errors:
            for e in errors[:5]:
                fail("%d small files at %d ms through qftpd, %d sessions: %s"
                     % (self.n, LATENCY_MS, k, e))
            return None
        res = {"rate": self.n / wall, "times": times,
               "calls": (counts["after"] - counts["before"]) / float(self.n)}
        if "mid" in counts:
            res["calls_stor"] = (counts["mid"] - counts["before"]) / float(self.n)
            res["calls_retr"] = (counts["after"] - counts["mid"]) / float(self.n)
        return res

    # ---- direct REST client
    def direct(self, d, k):
        shares = self.shares(k)
        times = {"STOR": [], "RETR": []}
        lock = threading.Lock()
        entries = "/v1/files/%s/entries/" % ref(d)

        def prepare(i):
            c = self.rest.conn()
            token = self.rest.login(conn=c)
            return c, {"Authorization": "Bearer " + token}

        def call(c, method, path, body, headers):
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            if r.status >= 300:
                raise RuntimeError("%s %s: HTTP %d %s" % (method, path, r.status, data[:200]))
            return data

        def work(i, state, mid):
            c, auth = state
            js = dict(auth, **{"Content-Type": "application/json"})
            octets = dict(auth, **{"Content-Type": "application/octet-stream"})
            mine = {"STOR": [], "RETR": []}
            ids = []
            for name, data in shares[i]:
                t = time.perf_counter()
                attr = json.loads(call(c, "POST", entries,
                                       json.dumps({"name": name, "action": "CREATE_FILE"}), js))
                call(c, "PUT", "/v1/files/%s/data" % attr["id"], data, octets)
                mine["STOR"].append(time.perf_counter() - t)
                ids.append(attr["id"])
            untimed = mid()
            for (name, data), fid in zip(shares[i], ids):
                t = time.perf_counter()
                got = call(c, "GET", "/v1/files/%s/data" % fid, None, auth)
                mine["RETR"].append(time.perf_counter() - t)
                if got != data:
                    raise RuntimeError("%s/%s came back different (%d bytes)"
                                       % (d, name, len(got)))
            with lock:
                for cmd in mine:
                    times[cmd] += mine[cmd]
            return untimed

        states, errors, wall, _ = self.parallel(k, prepare, work)
        for c, _ in states:
            c.close()
        if errors:
            for e in errors[:5]:
                fail("%d small files at %d ms, direct, %d connections: %s"
                     % (self.n, LATENCY_MS, k, e))
            return None
        return {"rate": self.n / wall, "times": times}

    # ---- rows
    def report(self, results):
        """Rows: files/s, the best round of each side; calls per file, of that round; the
        p50s, over every file of every round."""
        best = {key: max(runs, key=lambda r: r["rate"]) for key, runs in results.items()}
        pooled = {key: {cmd: [t for r in runs for t in r["times"][cmd]]
                        for cmd in ("STOR", "RETR")}
                  for key, runs in results.items()}
        of = "best of %d alternated" % self.rounds if self.rounds > 1 else "1 run"
        for k in (1, PARALLEL):
            q, d = best.get(("qftpd", k)), best.get(("direct", k))
            if not q or not d:
                continue
            ratio = q["rate"] / d["rate"]
            what = "1 session" if k == 1 else "%d sessions" % k
            add_row("%d files of 8 KiB at %d ms, %s (files/s)" % (self.n, LATENCY_MS, what),
                    fmt(q["rate"]), "%s (direct REST, %d conn%s; %s)" % (
                        fmt(d["rate"]), k, "" if k == 1 else "s", of),
                    fmt(ratio, prec=3), "≥ %.1f" % TARGET, ratio >= TARGET)
        q1 = best.get(("qftpd", 1))
        if q1:
            add_row("REST calls per 8 KiB file stored + read at %d ms, 1 session" % LATENCY_MS,
                    "%.2f (STOR %.2f + RETR %.2f)" % (q1["calls"], q1["calls_stor"],
                                                     q1["calls_retr"]),
                    "3 (CREATE_FILE + PUT, GET)", "—", "—", None)
        qk = best.get(("qftpd", PARALLEL))
        if qk:
            add_row("REST calls per 8 KiB file stored + read at %d ms, %d sessions"
                    % (LATENCY_MS, PARALLEL), "%.2f" % qk["calls"], "3", "—", "—", None)
        for k in (1, PARALLEL):
            q, d = pooled.get(("qftpd", k)), pooled.get(("direct", k))
            if not q or not d:
                continue
            for cmd, base in (("STOR", "CREATE_FILE + PUT"), ("RETR", "GET")):
                qp = statistics.median(q[cmd]) * 1000
                dp = statistics.median(d[cmd]) * 1000
                add_row("8 KiB %s p50 at %d ms, %d session%s (ms)" % (
                    cmd, LATENCY_MS, k, "" if k == 1 else "s"),
                    fmt(qp, prec=2), "%s (direct %s)" % (fmt(dp, prec=2), base),
                    fmt(qp / dp, prec=2), "—", None)
