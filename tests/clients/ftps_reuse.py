#!/usr/bin/env python3
"""FTPS downloads whose data connections resume a TLS session, or not.

Usage: ftps_reuse.py HOST PORT CAFILE VERSION USER PASSWORD PATH

VERSION is 1.2 or 1.3. Three downloads of PATH, each in a session of its own, with one TLS
context:
  fresh  - ftplib as it is: each data connection makes a new TLS session;
  own    - each data connection resumes the TLS session of its own control connection
           (as curl, lftp and FileZilla do);
  other  - the data connection resumes the TLS session of another FTP session's control
           connection (that session stays logged in meanwhile).
Prints one JSON object: case -> {"ok", "bytes", "reused", "error", "reply"}, where "reply"
is the server's reply when the data connection failed before it was read.
"""

import ftplib
import json
import ssl
import sys


class Resuming(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the TLS session of `source`'s control
    connection (its own when None)."""

    source = None
    reused = None

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            session = (self.source or self).sock.session
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
            self.reused = conn.session_reused
        return conn, size


def main():
    host, port, cafile, version, user, password, path = sys.argv[1:8]
    tls = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[version]
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = tls
    context.maximum_version = tls

    def session(cls):
        ftp = cls(context=context, timeout=60)
        ftp.connect(host, int(port))
        ftp.auth()
        ftp.login(user, password)
        ftp.prot_p()
        return ftp

    def download(ftp):
        chunks = []
        try:
            ftp.retrbinary("RETR " + path, chunks.append)
            return {"ok": True, "bytes": sum(map(len, chunks)), "reused": getattr(ftp, "reused", None)}
        except ftplib.all_errors as e:
            failed = {"ok": False, "error": str(e), "reused": getattr(ftp, "reused", None)}
        if not failed["error"][:3].isdigit():
            # The data connection failed first; the reply that says why is still to be read.
            try:
                failed["reply"] = ftp.getresp()
            except ftplib.all_errors as e:
                failed["reply"] = str(e)
        return failed

    results = {}
    ftp = session(ftplib.FTP_TLS)
    results["fresh"] = download(ftp)
    ftp.close()
    ftp = session(Resuming)
    results["own"] = download(ftp)
    ftp.close()
    owner, thief = session(Resuming), session(Resuming)
    # The owner's TLS session on the control connection has seen its tickets by now (TLS 1.3
    # sends them after the handshake; they arrive with the replies).
    thief.source = owner
    results["other"] = download(thief)
    thief.close()
    owner.close()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
