#!/usr/bin/env python3
"""Runs a list of FTP operations with Python's ftplib and reports each outcome as JSON.

Used by tests/ftp_clients.rs: ftplib is an independent FTP client, so the gateway is checked
against a real peer rather than against itself.

Input (stdin), one JSON object:
    {"host": "127.0.0.1", "port": 2121, "timeout": 60, "ops": [[NAME, ARG...], ...]}
Optional keys: "source": "127.0.0.2" (the client address to connect from); "tls": {"cafile":
PATH, "min": "1.2"|"1.3", "max": "1.2"|"1.3"} (use FTP_TLS; AUTH TLS is sent by "auth" or by
"login").

Operations (all on one control connection, opened by "connect"):
    ["connect"]                        value: the 220 greeting
    ["login", USER, PASSWORD]          reply: the final reply (230 ...)
    ["cmd", LINE]                      reply: the whole reply, lines joined by "\n"
    ["stor", "STOR x"|"APPE x", SOURCE, REST|null]
                                       SOURCE is "file:PATH", "text:TEXT" or "hex:HEX"
    ["retr", "RETR x", TARGET|null, REST|null]
                                       TARGET "file:PATH" writes there; null returns the data
                                       as hex in value
    ["lines", "LIST x"|"NLST x"|...]   value: the lines of the data connection
    ["nlst", PATH|null]                value: ftplib's nlst()
    ["mlsd", PATH|null]                value: [[NAME, {FACT: VALUE}], ...]
    ["pwd"]                            value: ftplib's pwd()
    ["post", URL]                      POSTs to URL (e.g. the simulator's control endpoint,
                                       certificate not checked) between FTP operations
    ["auth"]                           AUTH TLS; value: {"version", "cert_sha256"}
    ["prot_p"]                         PBSZ 0 and PROT P
    ["quit"]

Output (stdout), one JSON object {"results": [...]}, one result per operation:
    {"op": NAME, "ok": true, "reply": TEXT|null, "value": ANY, "secs": SECONDS}
    {"op": NAME, "ok": false, "error": TEXT, "error_type": CLASS, "secs": SECONDS}
A failed operation does not stop the list. When a data transfer breaks (the server closed the
data connection early), the final reply is still read and reported as "error", and the socket
error as "data_error".
"""

import ftplib
import io
import json
import sys
import time


def source_bytes(spec):
    kind, _, rest = spec.partition(":")
    if kind == "file":
        return open(rest, "rb")
    if kind == "text":
        return io.BytesIO(rest.encode("utf-8"))
    if kind == "hex":
        return io.BytesIO(bytes.fromhex(rest))
    raise ValueError(f"bad source {spec!r}")


def after_broken_transfer(ftp, err):
    """The final reply after a data connection that broke under us."""
    try:
        reply = ftp.getresp()
        return {"ok": False, "error": reply, "error_type": "reply_after_broken_data",
                "data_error": str(err)}
    except ftplib.all_errors as e2:
        return {"ok": False, "error": str(e2), "error_type": type(e2).__name__,
                "data_error": str(err)}


def run_op(ftp, args, host, port, timeout):
    name = args[0]
    if name == "connect":
        return {"value": ftp.connect(host, port, timeout=timeout)}
    if name == "login":
        return {"reply": ftp.login(args[1], args[2])}
    if name == "auth":
        import hashlib
        reply = ftp.auth()
        der = ftp.sock.getpeercert(binary_form=True)
        return {"reply": reply, "value": {"version": ftp.sock.version(),
                                          "cert_sha256": hashlib.sha256(der).hexdigest()}}
    if name == "prot_p":
        return {"reply": ftp.prot_p()}
    if name == "cmd":
        return {"reply": ftp.sendcmd(args[1])}
    if name == "stor":
        cmd, source, rest = args[1], args[2], args[3] if len(args) > 3 else None
        with source_bytes(source) as f:
            try:
                return {"reply": ftp.storbinary(cmd, f, blocksize=256 * 1024, rest=rest)}
            except (ConnectionError, BrokenPipeError) as e:
                return after_broken_transfer(ftp, e)
    if name == "retr":
        cmd, target, rest = args[1], args[2], args[3] if len(args) > 3 else None
        if target is None:
            chunks = []
            reply = ftp.retrbinary(cmd, chunks.append, blocksize=256 * 1024, rest=rest)
            return {"reply": reply, "value": b"".join(chunks).hex()}
        kind, _, path = target.partition(":")
        if kind != "file":
            raise ValueError(f"bad target {target!r}")
        with open(path, "wb") as f:
            reply = ftp.retrbinary(cmd, f.write, blocksize=256 * 1024, rest=rest)
        return {"reply": reply}
    if name == "lines":
        lines = []
        reply = ftp.retrlines(args[1], lines.append)
        return {"reply": reply, "value": lines}
    if name == "nlst":
        path = args[1] if len(args) > 1 else None
        return {"value": ftp.nlst(path) if path is not None else ftp.nlst()}
    if name == "mlsd":
        path = args[1] if len(args) > 1 and args[1] is not None else ""
        return {"value": [[n, facts] for n, facts in ftp.mlsd(path)]}
    if name == "pwd":
        return {"value": ftp.pwd()}
    if name == "post":
        import ssl
        import urllib.request
        context = ssl._create_unverified_context()
        with urllib.request.urlopen(urllib.request.Request(args[1], method="POST"),
                                    context=context, timeout=timeout) as resp:
            return {"value": resp.read().decode("utf-8")}
    if name == "quit":
        return {"reply": ftp.quit()}
    raise ValueError(f"unknown operation {name!r}")


def main():
    spec = json.load(sys.stdin)
    host, port = spec["host"], spec["port"]
    timeout = spec.get("timeout", 60)
    source = (spec["source"], 0) if spec.get("source") else None
    tls = spec.get("tls")
    if tls:
        import ssl
        versions = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
        context = ssl.create_default_context(cafile=tls["cafile"])
        if tls.get("min"):
            context.minimum_version = versions[tls["min"]]
        if tls.get("max"):
            context.maximum_version = versions[tls["max"]]
        ftp = ftplib.FTP_TLS(context=context, timeout=timeout, encoding="utf-8",
                             source_address=source)
    else:
        ftp = ftplib.FTP(timeout=timeout, encoding="utf-8", source_address=source)
    results = []
    for args in spec["ops"]:
        started = time.monotonic()
        try:
            result = {"ok": True, "reply": None, "value": None}
            result.update(run_op(ftp, args, host, port, timeout))
        except (ftplib.all_errors + (ValueError,)) as e:
            result = {"ok": False, "error": str(e), "error_type": type(e).__name__}
        result["op"] = args[0]
        result["secs"] = time.monotonic() - started
        results.append(result)
    try:
        ftp.close()
    except OSError:
        pass
    json.dump({"results": results}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
