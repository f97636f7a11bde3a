"""The benchmark's harness, the Python counterpart of tests/common (process.rs, sim.rs,
gateway.rs): one child-process wrapper that drains both outputs and takes readiness from the
`listening on ADDR` line (never a sleep) and reads peak RSS from /proc/PID/status, and the
starters of `qftpd sim` and `qftpd serve` built on it (python3 standard library only).
"""

import json
import os
import re
import socket
import subprocess
import threading

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


def start_sim(binary, work, name, plain):
    data = os.path.join(work, name + "-data")
    os.makedirs(data, exist_ok=True)
    cert = os.path.join(work, name + "-cert.pem")
    argv = [binary, "sim", "--listen", "127.0.0.1:0", "--data-dir", data,
            "--user", "%s:%s" % (USER, PASSWORD), "--home", "%s:%s" % (USER, HOME)]
    argv += ["--plain-http"] if plain else ["--cert-out", cert]
    p = Proc("sim " + name, argv, env=clean_env())
    url = p.wait_ready()
    os.makedirs(os.path.join(data, HOME.lstrip("/")), exist_ok=True)
    return {"proc": p, "url": url.rstrip("/"), "data": data,
            "cert": None if plain else cert, "name": name}


def start_gateway(binary, work, sim):
    cfg = os.path.join(work, "qftpd-%s.toml" % sim["name"])
    lines = ["[ftp]", 'listen = "127.0.0.1:0"', 'passive-ports = "%s"' % QFTPD_PASV,
             "max-connections = 1000", "max-connections-per-ip = 1000",
             "[qumulo]", "url = %s" % json.dumps(sim["url"])]
    if sim["cert"]:
        lines.append("ca-file = %s" % json.dumps(sim["cert"]))
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    p = Proc("qftpd serve (%s)" % sim["name"], [binary, "serve", "--config", cfg],
             env=clean_env())
    addr = p.wait_ready()
    host, port = addr.rsplit(":", 1)
    return p, host.strip("[]"), int(port)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
