#!/usr/bin/env python3
"""A session as a script using Python's ftplib would run it, over FTP or FTPS (FTP_TLS).

Used by tests/interop.rs. Each step's outcome is reported, and a failed step does not stop the
session, so one run shows every problem (e.g. an SSLEOFError after each FTPS upload).

Input (stdin), one JSON object:
    {"host": "127.0.0.1", "port": 2121, "user": "alice", "password": "alicepw",
     "tls": null | {"cafile": PATH, "max": "1.2"|"1.3"|null},
     "dir": "py",                        created, then the working directory
     "uploads": [[NAME, LOCAL_PATH], ...],  stored with storbinary, in this order
     "subdir_file": [NAME, LOCAL_PATH],  stored as DIR/sub/NAME, then listed with nlst("sub")
     "download_dir": PATH,               each upload is fetched back with retrbinary into it
     "mfmt": [TIME, NAME]}               sendcmd("MFMT TIME NAME"), then mlsd again

Output (stdout), one JSON object {"steps": [...]}, one entry per step:
    {"step": TEXT, "ok": true, "reply": TEXT|null, "value": ANY}
    {"step": TEXT, "ok": false, "error": TEXT, "error_type": CLASS}
"""

import ftplib
import json
import os
import ssl
import sys

FACTS = ["type", "size", "modify"]


def main():
    spec = json.load(sys.stdin)
    tls = spec.get("tls")
    if tls:
        context = ssl.create_default_context(cafile=tls["cafile"])
        if tls.get("max") == "1.2":
            context.maximum_version = ssl.TLSVersion.TLSv1_2
        elif tls.get("max") == "1.3":
            context.minimum_version = ssl.TLSVersion.TLSv1_3
        ftp = ftplib.FTP_TLS(context=context, timeout=60, encoding="utf-8")
    else:
        ftp = ftplib.FTP(timeout=60, encoding="utf-8")
    steps = []

    def step(name, fn):
        try:
            result = fn()
            entry = {"step": name, "ok": True, "reply": None, "value": None}
            if isinstance(result, str):
                entry["reply"] = result
            else:
                entry["value"] = result
        except (ftplib.all_errors + (ValueError,)) as e:
            entry = {"step": name, "ok": False, "error": str(e), "error_type": type(e).__name__}
        steps.append(entry)
        return entry["ok"]

    def store(cmd, path):
        with open(path, "rb") as f:
            return ftp.storbinary(cmd, f, blocksize=256 * 1024)

    def fetch(name, path):
        with open(path, "wb") as f:
            return ftp.retrbinary(f"RETR {name}", f.write, blocksize=256 * 1024)

    def mlsd():
        return [[name, facts] for name, facts in ftp.mlsd(facts=FACTS)]

    if not step("connect", lambda: ftp.connect(spec["host"], spec["port"])):
        json.dump({"steps": steps}, sys.stdout, ensure_ascii=False)
        return
    step("login", lambda: ftp.login(spec["user"], spec["password"]))
    if tls:
        step("prot_p", ftp.prot_p)
        step("tls_version", lambda: ftp.sock.version())
    step("mkd", lambda: ftp.mkd(spec["dir"]))
    step("cwd", lambda: ftp.cwd(spec["dir"]))
    for name, path in spec["uploads"]:
        step(f"storbinary {name}", lambda: store(f"STOR {name}", path))
    step("mkd sub", lambda: ftp.mkd("sub"))
    sub_name, sub_path = spec["subdir_file"]
    step(f"storbinary sub/{sub_name}", lambda: store(f"STOR sub/{sub_name}", sub_path))
    step("nlst", ftp.nlst)
    step("nlst sub", lambda: ftp.nlst("sub"))
    step("mlsd facts", mlsd)
    for name, _ in spec["uploads"]:
        target = os.path.join(spec["download_dir"], name)
        step(f"retrbinary {name}", lambda: fetch(name, target))
    time, name = spec["mfmt"]
    step("MFMT", lambda: ftp.sendcmd(f"MFMT {time} {name}"))
    step("mlsd facts after MFMT", mlsd)
    step("quit", ftp.quit)
    json.dump({"steps": steps}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
