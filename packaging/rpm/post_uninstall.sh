# %postun of the qftpd .rpm: what %systemd_postun_with_restart does, written out. $1 is the
# number of qftpd packages left: 1 after an upgrade (this is the old package's scriptlet,
# run once the new files are in place), 0 after an erase.
systemctl daemon-reload >/dev/null 2>&1 || :
if [ "$1" -ge 1 ]; then
    # Restart only the service, and only if it runs: qftpd.socket is not touched, so port 21
    # stays open and clients connecting meanwhile wait in its backlog for the new qftpd.
    systemctl try-restart qftpd.service >/dev/null 2>&1 || :
fi
if [ "$1" -eq 0 ]; then
    # rpm has removed /etc/qftpd/qftpd.toml, or kept it as qftpd.toml.rpmsave if it had
    # been edited: remove the directory only when nothing is left in it.
    rmdir /etc/qftpd 2>/dev/null || :
fi
