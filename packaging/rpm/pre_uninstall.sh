# %preun of the qftpd .rpm: what %systemd_preun does, written out. $1 is the number of
# qftpd packages left after this step: 0 when qftpd is being erased, 1 on an upgrade
# (then nothing is stopped here; %postun restarts the service).
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now qftpd.socket qftpd-metrics.socket qftpd.service >/dev/null 2>&1 || :
fi
