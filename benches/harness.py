"""The benchmark's harness, the Python counterpart of tests/common (process.rs, sim.rs,
gateway.rs): one child-process wrapper that drains both outputs and takes readiness from the
`listening on ADDR` line (never a sleep) and reads peak RSS from /proc/PID/status, and the
starters of `qftpd sim` and `qftpd serve` built on it; vsftpd as the reference server; the
helpers the phases share (curl, ftplib, the direct REST client) and the results table, which
every phase module (bench.py and the modules it imports) fills (python3 standard library only).
"""

import ftplib
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

USER, PASSWORD = "bench", "benchpw"
HOME = "/home/bench"
LISTEN_RE = re.compile(r"listening on (\S+)")
QFTPD_PASV = "30000-32767"

PROCS = []


class Proc:
    """A child process whose output is drained; `addr` is its first `listening on X`."""

    def __init__(self, name, argv, env=None):
        self.name = name
        self.lines = []
        self.addr = None
        self.ready = threading.Event()
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        PROCS.append(self)
        for stream in (self.p.stdout, self.p.stderr):
            threading.Thread(target=self._drain, args=(stream,), daemon=True).start()

    def _drain(self, stream):
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if len(self.lines) < 2000:
                self.lines.append(line)
            m = LISTEN_RE.search(line)
            if m and self.addr is None:
                self.addr = m.group(1).rstrip(",;")
                self.ready.set()

    def wait_ready(self, timeout=60):
        if not self.ready.wait(timeout):
            self.stop()
            raise RuntimeError("%s did not print `listening on`:\n%s"
                               % (self.name, "\n".join(self.lines[-30:])))
        return self.addr

    @property
    def pid(self):
        return self.p.pid

    def status(self, key):
        """A KiB figure from /proc/PID/status (VmHWM, VmRSS)."""
        try:
            with open("/proc/%d/status" % self.p.pid) as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self in PROCS:
            PROCS.remove(self)


def stop_procs():
    """Stops every child started through Proc that is still running."""
    for p in list(PROCS):
        try:
            p.stop()
        except Exception:
            pass


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("QFTPD_")}


def start_sim(binary, work, name, plain, extra_args=()):
    """`qftpd sim` on a free port; `extra_args` go at the end of its command line (e.g.
    `--latency-ms 2`)."""
    data = os.path.join(work, name + "-data")
    os.makedirs(data, exist_ok=True)
    cert = os.path.join(work, name + "-cert.pem")
    argv = [binary, "sim", "--listen", "127.0.0.1:0", "--data-dir", data,
            "--user", "%s:%s" % (USER, PASSWORD), "--home", "%s:%s" % (USER, HOME)]
    argv += ["--plain-http"] if plain else ["--cert-out", cert]
    argv += list(extra_args)
    p = Proc("sim " + name, argv, env=clean_env())
    url = p.wait_ready()
    os.makedirs(os.path.join(data, HOME.lstrip("/")), exist_ok=True)
    return {"proc": p, "url": url.rstrip("/"), "data": data,
            "cert": None if plain else cert, "name": name}


def start_gateway(binary, work, sim, extra=(), ftp_lines=None, nofile=None, tag=None,
                  listen="127.0.0.1:0"):
    """`qftpd serve` in front of `sim`, on `listen`. `extra` configuration lines go at the end
    (e.g. an `[ftp.tls]` table); `ftp_lines` replace the benchmark's own [ftp] keys (passive
    ports, connection caps) when given; `nofile` runs it under `prlimit` with that open-file
    limit (soft and hard); `tag` names its configuration file."""
    name = sim["name"] + ("-" + tag if tag else "")
    cfg = os.path.join(work, "qftpd-%s.toml" % name)
    if ftp_lines is None:
        ftp_lines = ['passive-ports = "%s"' % QFTPD_PASV,
                     "max-connections = 1000", "max-connections-per-ip = 1000"]
    lines = ["[ftp]", "listen = %s" % json.dumps(listen)] + list(ftp_lines) + [
        "[qumulo]", "url = %s" % json.dumps(sim["url"])]
    if sim["cert"]:
        lines.append("ca-file = %s" % json.dumps(sim["cert"]))
    lines += list(extra)
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    argv = [binary, "serve", "--config", cfg]
    if nofile:
        argv = ["prlimit", "--nofile=%d" % nofile, "--"] + argv
    p = Proc("qftpd serve (%s)" % name, argv, env=clean_env())
    addr = p.wait_ready()
    host, port = addr.rsplit(":", 1)
    return p, host.strip("[]"), int(port)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


MIB = 1024 * 1024
VSFTPD_PASV = (33000, 35999)
VSFTPD_CONFS = []
FAILURES = []   # correctness failures
ROWS = []       # table rows


def log(msg):
    print(msg, flush=True)


def fail(msg):
    FAILURES.append(msg)
    log("   FAIL: " + msg)


# --------------------------------------------------------------------------- processes

def stop_all(*_):
    stop_procs()
    # vsftpd's per-session processes leave its process group: end those started with our
    # own configuration file (by pid).
    for conf in VSFTPD_CONFS:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if conf.encode() in argv:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass


def start_vsftpd(work):
    exe = shutil.which("vsftpd") or ("/usr/sbin/vsftpd" if os.path.exists("/usr/sbin/vsftpd")
                                      else None)
    if not exe or os.geteuid() != 0:
        return None
    import pwd
    try:
        ftp_pw = pwd.getpwnam("ftp")
    except KeyError:
        return None
    root = os.path.join(work, "vsftpd-root")
    up = os.path.join(root, "up")
    os.makedirs(up, exist_ok=True)
    os.chmod(root, 0o755)
    os.chown(up, ftp_pw.pw_uid, ftp_pw.pw_gid)
    os.chmod(up, 0o777)
    os.makedirs("/var/run/vsftpd/empty", exist_ok=True)
    port = free_port()
    conf = os.path.join(work, "vsftpd.conf")
    with open(conf, "w") as f:
        f.write("\n".join([
            "listen=YES", "listen_ipv6=NO", "listen_address=127.0.0.1",
            "listen_port=%d" % port, "background=NO",
            "anonymous_enable=YES", "no_anon_password=YES", "anon_root=" + root,
            "local_enable=NO", "write_enable=YES", "anon_upload_enable=YES",
            "anon_mkdir_write_enable=YES", "anon_other_write_enable=YES",
            "anon_world_readable_only=NO", "anon_umask=022",
            "pasv_enable=YES", "pasv_min_port=%d" % VSFTPD_PASV[0],
            "pasv_max_port=%d" % VSFTPD_PASV[1], "pasv_address=127.0.0.1",
            "max_clients=2000", "max_per_ip=2000", "seccomp_sandbox=NO",
            "secure_chroot_dir=/var/run/vsftpd/empty", "xferlog_enable=NO",
            "dirmessage_enable=NO", "use_localtime=NO", "connect_from_port_20=NO",
            "idle_session_timeout=600", "data_connection_timeout=600",
            "ftpd_banner=vsftpd bench", ""]))
    VSFTPD_CONFS.append(conf)
    p = Proc("vsftpd", [exe, conf])
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return {"proc": p, "host": "127.0.0.1", "port": port, "root": root, "up": up}
        except OSError:
            if p.p.poll() is not None:
                break
            time.sleep(0.1)
    log("   vsftpd did not start:\n" + "\n".join(p.lines[-20:]))
    p.stop()
    return None


# --------------------------------------------------------------------------- helpers

def make_file(path, size):
    """A file of `size` pseudo-random bytes (a 16 MiB random block repeated)."""
    block = os.urandom(min(size, 16 * MIB)) if size else b""
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def curl(args, timeout=900):
    """Runs curl; returns its exit status, output and error output (its CPU time shows in
    children_cpu(), see curl_w)."""
    r = subprocess.run(["curl", "-sS", "--max-time", str(timeout)] + args,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def children_cpu():
    """CPU seconds of all reaped children so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_cpu(pid):
    """CPU seconds (user + system, all threads) a running process has used."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))
    except OSError:
        return 0.0


def curl_w(args, what):
    """Runs curl with -w; returns a dict of the written variables (and `cpu`, curl's own CPU
    seconds), or None on failure."""
    fmt = " ".join("%%{%s}" % w for w in what)
    before = children_cpu()
    rc, out, err = curl(args + ["-w", fmt])
    cpu = children_cpu() - before
    if rc != 0:
        return None, "curl exit %d: %s" % (rc, err.strip()[:300])
    vals = out.strip().split()[-len(what):]
    r = dict(zip(what, (float(v) for v in vals)))
    r["cpu"] = cpu
    return r, None


def ftp_login(host, port, user, timeout):
    """An ftplib session logged in as the benchmark user (`user`) or anonymously."""
    ftp = ftplib.FTP()
    ftp.connect(host, port, timeout=timeout)
    if user:
        ftp.login(USER, PASSWORD)
    else:
        ftp.login()
    return ftp


def ftp_url(host, port, path):
    return "ftp://%s:%d%s" % (host, port, urllib.parse.quote(path))


def ref(path):
    return urllib.parse.quote(path, safe="")


class Rest:
    def __init__(self, sim):
        self.sim = sim
        u = urllib.parse.urlsplit(sim["url"])
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname, u.port
        self.ctx = ssl.create_default_context(cafile=sim["cert"]) if self.https else None
        if self.ctx:
            self.ctx.check_hostname = False
        self.token = None
        self.token = self.login()

    def conn(self):
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, context=self.ctx,
                                               timeout=600)
        return http.client.HTTPConnection(self.host, self.port, timeout=600)

    def request(self, method, path, body=None, conn=None):
        c = conn or self.conn()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers=headers)
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        if r.status >= 300:
            raise RuntimeError("%s %s: HTTP %d %s" % (method, path, r.status, data[:300]))
        return json.loads(data) if data else None

    def login(self, conn=None):
        return self.request("POST", "/v1/session/login",
                            {"username": USER, "password": PASSWORD}, conn)["bearer_token"]

    def curl_auth(self):
        a = ["-H", "Authorization: Bearer " + self.token]
        if self.sim["cert"]:
            a += ["--cacert", self.sim["cert"]]
        return a


def rss_mib(kib):
    return kib / 1024.0


# --------------------------------------------------------------------------- table

def add_row(measure, qftpd, baseline, ratio, target, ok, reference="", unit=""):
    ROWS.append({"measure": measure, "qftpd": qftpd, "baseline": baseline,
                 "ratio": ratio, "target": target, "ok": ok, "ref": reference})


def fmt(v, unit="", prec=1):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    return ("%.*f %s" % (prec, v, unit)).strip()


def verdict(ok):
    return "—" if ok is None else ("pass" if ok else "FAIL")


def render(header, markdown):
    cols = ["measure", "qftpd", "baseline", "ratio", "target", "pass/fail", "vsftpd (ref)"]
    rows = [[r["measure"], r["qftpd"], r["baseline"], r["ratio"], r["target"], verdict(r["ok"]),
             r["ref"] or "—"] for r in ROWS]
    if markdown:
        out = header + ["", "| " + " | ".join(cols) + " |",
                        "|" + "|".join("---" for _ in cols) + "|"]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return "\n".join(out) + "\n"
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
              for i, c in enumerate(cols)]
    line = lambda cells: "  ".join(c.ljust(widths[i]) for i, c in enumerate(cells))
    out = header + ["", line(cols), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out) + "\n"
