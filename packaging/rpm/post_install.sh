# %post of the qftpd .rpm: what %systemd_post does, written out, as cargo-generate-rpm
# does not expand RPM macros. $1 is the number of qftpd packages installed after this
# step: 1 on a first installation, 2 on an upgrade.
systemctl daemon-reload >/dev/null 2>&1 || :
if [ "$1" -eq 1 ]; then
    # %systemd_post would run "systemctl preset qftpd.socket", and the presets of Fedora
    # and EL disable every unit they do not list, so the socket would stay off. Enable and
    # start it explicitly, as the .deb does: port 21 listens at once, and the first
    # connection starts qftpd.service (which exits 78, without restarting, until
    # [qumulo] url is set in /etc/qftpd/qftpd.toml).
    if [ -d /run/systemd/system ]; then
        systemctl enable --now qftpd.socket >/dev/null 2>&1 || :
    else
        # Not booted with systemd (an image build, a chroot): enable only.
        systemctl enable qftpd.socket >/dev/null 2>&1 || :
    fi
fi
