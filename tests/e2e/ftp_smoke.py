#!/usr/bin/env python3
"""FTP checks run inside the booted test container with Python's ftplib.

    ftp_smoke.py smoke USER PASSWORD     login, LIST, STOR, RETR (byte equality), DELE
    ftp_smoke.py hold USER PASSWORD FLAG login, print "held", wait for FLAG to exist, then NOOP
                                         and PWD on the same session; print their replies
    ftp_smoke.py load USER PASSWORD SESSIONS ADDRESSES
                                         SESSIONS sessions at once from ADDRESSES loopback
                                         addresses (127.0.0.2, ...): all log in, then each
                                         uploads and downloads its own file (byte equality)
                                         while all are open; print the failures and a summary
Exit status 0 when every step worked; the failing step is printed otherwise.
"""

import ftplib
import io
import os
import sys
import threading
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


def load(user, password, sessions, addresses):
    logged_in = threading.Barrier(sessions, timeout=300)
    transferred = threading.Barrier(sessions, timeout=300)
    failures = []
    lock = threading.Lock()

    def session(i):
        source = f"127.0.0.{2 + i % addresses}"
        step = "connect"
        barriers = [logged_in, transferred]
        ftp = ftplib.FTP(source_address=(source, 0), timeout=120)
        try:
            ftp.connect("127.0.0.1", int(os.environ.get("FTP_PORT", "21")))
            step = "login"
            ftp.login(user, password)
            step = "wait for every session to log in"
            barriers.pop(0).wait()
            data = os.urandom(256 * 1024)
            name = f"/home/{user}/load-{i}.bin"
            step = "STOR"
            ftp.storbinary(f"STOR {name}", io.BytesIO(data))
            got = io.BytesIO()
            step = "RETR"
            ftp.retrbinary(f"RETR {name}", got.write)
            if got.getvalue() != data:
                raise ValueError("RETR returned other bytes than STOR sent")
            step = "DELE"
            ftp.delete(name)
            step = "wait for every session to transfer"
            barriers.pop(0).wait()
            step = "QUIT"
            ftp.quit()
        except Exception as e:  # every failure counts, whatever its kind
            with lock:
                failures.append(f"session {i} from {source}: {step}: {type(e).__name__}: {e}")
            ftp.close()
            # The other sessions still meet at the barriers this one has not passed.
            for barrier in barriers:
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    pass

    started = time.monotonic()
    threads = [threading.Thread(target=session, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for f in sorted(failures)[:20]:
        print(f)
    print(
        f"{sessions} sessions from {addresses} addresses: {sessions - len(failures)} ok, "
        f"{len(failures)} failed, {time.monotonic() - started:.1f} s"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        if sys.argv[1] == "smoke":
            sys.exit(smoke(sys.argv[2], sys.argv[3]))
        if sys.argv[1] == "load":
            sys.exit(load(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
        sys.exit(hold(sys.argv[2], sys.argv[3], sys.argv[4]))
    except (ftplib.all_errors) as e:
        print(f"FTP failure: {e}")
        sys.exit(1)
