#!/usr/bin/env python3
"""FTP checks run inside the booted test container with Python's ftplib.

    ftp_smoke.py smoke USER PASSWORD     login, LIST, STOR, RETR (byte equality), DELE
    ftp_smoke.py hold USER PASSWORD FLAG login, print "held", wait for FLAG to exist, then NOOP
                                         and PWD on the same session; print their replies
Exit status 0 when every step worked; the failing step is printed otherwise.
"""

import ftplib
import io
import os
import sys
import time


def smoke(user, password):
    ftp = ftplib.FTP()
    print(ftp.connect("127.0.0.1", 21, timeout=30).strip())
    print(ftp.login(user, password).strip())
    lines = []
    ftp.retrlines("LIST /", lines.append)
    print(f"LIST: {len(lines)} entries")
    data = bytes(range(256)) * 4096
    name = f"/home/{user}/smoke-{os.getpid()}.bin"
    print(ftp.storbinary(f"STOR {name}", io.BytesIO(data)).strip())
    got = io.BytesIO()
    print(ftp.retrbinary(f"RETR {name}", got.write).strip())
    if got.getvalue() != data:
        print("RETR returned other bytes than STOR sent")
        return 1
    print(ftp.delete(name).strip())
    ftp.quit()
    print("smoke ok")
    return 0


def hold(user, password, flag):
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", 21, timeout=60)
    ftp.login(user, password)
    print("held", flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(flag):
        if time.monotonic() > deadline:
            print("no flag")
            return 1
        time.sleep(0.1)
    print(ftp.sendcmd("NOOP").strip())
    print(ftp.sendcmd("PWD").strip())
    ftp.quit()
    return 0


if __name__ == "__main__":
    try:
        if sys.argv[1] == "smoke":
            sys.exit(smoke(sys.argv[2], sys.argv[3]))
        sys.exit(hold(sys.argv[2], sys.argv[3], sys.argv[4]))
    except (ftplib.all_errors) as e:
        print(f"FTP failure: {e}")
        sys.exit(1)
