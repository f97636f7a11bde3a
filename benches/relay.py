"""Relay cost: CPU seconds per GiB of qftpd against nginx as the reference byte relay.

Phases of benches/bench.py: `phases(b)` returns (name, function) pairs, run in order with the
Bench `b` (its simulators, sizes and `quick` flag); rows go to the table with add_row.

Both relays sit in front of the HTTPS simulator and move the big file in both directions, to
a plain and to a TLS 1.3 client: qftpd to curl over FTP and over explicit FTPS (PROT P), nginx
(Debian's, one worker, a buffering reverse proxy with 256 KiB buffers) to curl over HTTP and
HTTPS. The figure is the CPU time of the relaying process (qftpd; nginx's worker) per GiB,
the best of `b.repeat` rounds, qftpd and nginx alternated in each round.
"""

import filecmp
import json
import os
import shutil
import socket
import subprocess
import time

from harness import (HOME, PASSWORD, USER, Proc, add_row, curl_w, fail, fmt, ftp_url, log,
                     proc_cpu, ref, start_gateway)

# (direction, TLS downstream): the four paths, in the order of the table.
PATHS = [("RETR", False), ("STOR", False), ("RETR", True), ("STOR", True)]
TARGET = 0.8

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client-body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream sim {{
        server {upstream};
        keepalive 4;
    }}
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        client_max_body_size 0;
        client_body_buffer_size 256k;
        location / {{
            proxy_pass https://sim;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_protocols TLSv1.3;
            proxy_ssl_session_reuse on;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {sim_cert};
            proxy_ssl_name localhost;
            proxy_buffering on;
            proxy_buffer_size 256k;
            proxy_buffers 8 256k;
            proxy_busy_buffers_size 512k;
            proxy_max_temp_file_size 0;
            proxy_request_buffering off;
            proxy_read_timeout 600s;
            proxy_send_timeout 600s;
        }}
    }}
}}
"""


def nginx_exe():
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                     else None)


def make_cert(d):
    """A self-signed TLS certificate and key for 127.0.0.1 (openssl), shared by both relays."""
    cert, key = os.path.join(d, "relay.pem"), os.path.join(d, "relay.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return cert, key


def wait_ports(proc, ports, timeout=15):
    """True when every port accepts a connection (before `timeout` or the process's end)."""
    deadline = time.time() + timeout
    left = list(ports)
    while left and time.time() < deadline and proc.p.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", left[0]), 1).close()
            left.pop(0)
        except OSError:
            time.sleep(0.05)
    return not left


def children(pid):
    """The pids of `pid`'s child processes (from /proc)."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p))
        except (OSError, ValueError, IndexError):
            pass
    return out


class Nginx:
    """nginx in the foreground (master and one worker) with its own configuration, pid file
    and temporary paths under `dir`, on free ports: HTTP and HTTPS (TLS 1.3) in front of the
    HTTPS simulator."""

    def __init__(self, exe, work, sim, cert, key):
        self.dir = os.path.join(work, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        upstream = sim["url"].split("://", 1)[1]
        self.conf = os.path.join(self.dir, "nginx.conf")
        for _ in range(5):
            self.http_port, self.https_port = free_ports(2)
            with open(self.conf, "w") as f:
                f.write(NGINX_CONF.format(dir=self.dir, upstream=upstream,
                                          http_port=self.http_port, https_port=self.https_port,
                                          cert=cert, key=key, sim_cert=sim["cert"]))
            self.proc = Proc("nginx", [exe, "-p", self.dir, "-c", self.conf,
                                       "-e", os.path.join(self.dir, "error.log")])
            if wait_ports(self.proc, (self.http_port, self.https_port)):
                break
            self.proc.stop()   # a port taken in between: again, on others
        else:
            raise RuntimeError("nginx did not start: %s" % self.errors())
        workers = children(self.proc.pid)
        if len(workers) != 1:
            self.proc.stop()
            raise RuntimeError("nginx: %d worker processes, expected 1" % len(workers))
        self.worker = workers[0]

    def errors(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return "\n".join(self.proc.lines[-20:])

    def stop(self):
        self.proc.stop()


def free_ports(n):
    """`n` distinct free ports (held together while chosen)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Relay:
    def __init__(self, b):
        self.b = b
        self.dir = os.path.join(b.work, "relay")
        os.makedirs(self.dir, exist_ok=True)
        self.cert, self.key = make_cert(self.dir)
        self.n = 0
        self.gw = self.nginx = None

    def start(self, exe):
        b = self.b
        tls = ["[ftp.tls]", "certificate = %s" % json.dumps(self.cert),
               "key = %s" % json.dumps(self.key)]
        self.gw, self.host, self.port = start_gateway(b.a.binary, b.work, b.sim, extra=tls)
        self.nginx = Nginx(exe, b.work, b.sim, self.cert, self.key)
        log("   nginx %s (worker %d): HTTP port %d, HTTPS port %d; qftpd FTP(S) port %d"
            % (nginx_version(exe), self.nginx.worker, self.nginx.http_port,
               self.nginx.https_port, self.port))

    def stop(self):
        for p in (self.gw, self.nginx):
            if p:
                p.stop()

    def disk(self, name):
        return os.path.join(self.b.sim["data"], HOME.lstrip("/"), name)

    def tls_args(self, tls):
        return ["--tlsv1.3", "--cacert", self.cert] if tls else []

    def measured(self, pid, fn):
        """CPU seconds `pid` spent while `fn` ran, or None when `fn` failed (reported)."""
        c0 = proc_cpu(pid)
        ok = fn()
        return proc_cpu(pid) - c0 if ok else None

    # ---- qftpd
    def qftpd(self, what, tls):
        args = ["--user", "%s:%s" % (USER, PASSWORD)] + self.tls_args(tls)
        if tls:
            args += ["--ssl-reqd"]
        label = "qftpd %s %s" % (what, "FTPS" if tls else "FTP")
        if what == "RETR":
            url = ftp_url(self.host, self.port, HOME + "/big.bin")
            return self.measured(self.gw.pid, lambda: self.get(label, args + [url]))
        disk = self.disk("relay-up.bin")
        if os.path.exists(disk):
            os.unlink(disk)   # a new file each time, as each nginx PUT makes one
        url = ftp_url(self.host, self.port, HOME + "/relay-up.bin")
        return self.measured(self.gw.pid,
                             lambda: self.put(label, args + ["-T", self.b.big, url], disk))

    # ---- nginx
    def via_nginx(self, what, tls):
        ng = self.nginx
        base = ("https://127.0.0.1:%d" % ng.https_port) if tls else \
            ("http://127.0.0.1:%d" % ng.http_port)
        args = ["--fail", "-H", "Authorization: Bearer " + self.b.rest.token] \
            + self.tls_args(tls)
        label = "nginx %s %s" % ("GET" if what == "RETR" else "PUT", "HTTPS" if tls else "HTTP")
        if what == "RETR":
            url = "%s/v1/files/%s/data" % (base, ref(HOME + "/big.bin"))
            return self.measured(ng.worker, lambda: self.get(label, args + [url]))
        self.n += 1
        name = "relay-put-%d.bin" % self.n
        self.b.rest.request("POST", "/v1/files/%s/entries/" % ref(HOME),
                            {"name": name, "action": "CREATE_FILE"})
        url = "%s/v1/files/%s/data" % (base, ref(HOME + "/" + name))
        args += ["-T", self.b.big, "-X", "PUT", "-H", "Transfer-Encoding: chunked",
                 "-H", "Content-Type: application/octet-stream", url]
        return self.measured(ng.worker, lambda: self.put(label, args, self.disk(name)))

    # ---- transfers, checked
    def get(self, label, args):
        r, err = curl_w(args + ["-o", "/dev/null"], ["size_download"])
        if r is None:
            fail("relay, %s: %s" % (label, err))
            return False
        if int(r["size_download"]) != self.b.size:
            fail("relay, %s: %d bytes, expected %d" % (label, r["size_download"], self.b.size))
            return False
        return True

    def put(self, label, args, disk):
        r, err = curl_w(args + ["-o", "/dev/null"], ["size_upload"])
        try:
            if r is None:
                fail("relay, %s: %s" % (label, err))
                return False
            got = os.path.getsize(disk) if os.path.exists(disk) else -1
            if got != self.b.size:
                fail("relay, %s: stored %d bytes, expected %d" % (label, got, self.b.size))
                return False
            if not filecmp.cmp(disk, self.b.big, shallow=False):
                fail("relay, %s: stored bytes differ" % label)
                return False
            return True
        finally:
            if os.path.exists(disk):
                os.unlink(disk)

    def run(self):
        exe = nginx_exe()
        if not exe:
            log("   nginx not installed: no relay rows (benches/run installs it)")
            return
        self.start(exe)
        best = {p: {"qftpd": None, "nginx": None} for p in PATHS}
        try:
            for _ in range(max(1, self.b.repeat)):
                for path in PATHS:
                    for side, once in (("qftpd", self.qftpd), ("nginx", self.via_nginx)):
                        cpu = once(*path)
                        if cpu is None:
                            return
                        prev = best[path][side]
                        best[path][side] = cpu if prev is None else min(prev, cpu)
        finally:
            self.stop()
        gib = self.b.size / float(1 << 30)
        for (what, tls) in PATHS:
            q, n = (best[(what, tls)][s] / gib for s in ("qftpd", "nginx"))
            ratio = q / n if n > 0 else None
            ftp, http = ("FTPS", "HTTPS") if tls else ("FTP", "HTTP")
            arrow = "HTTPS→%s" % http if what == "RETR" else "%s→HTTPS" % http
            add_row("relay CPU s/GiB, %s, %s vs %s%s" % (what, ftp, http,
                                                         " (TLS 1.3)" if tls else ""),
                    fmt(q, prec=2), "%s (nginx %s)" % (fmt(n, prec=2), arrow),
                    fmt(ratio, prec=2), "≤ %.1f" % TARGET,
                    None if ratio is None else ratio <= TARGET)


def nginx_version(exe):
    r = subprocess.run([exe, "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return r.stdout.decode("utf-8", "replace").strip().rsplit("/", 1)[-1]


def phases(b):
    return [("relay cost: qftpd against nginx", lambda: Relay(b).run())]
