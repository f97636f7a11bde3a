#!/usr/bin/env bash
# End-to-end test of the .deb and the .rpm in a booted Debian 12 with systemd, used as an
# administrator would: systemd-nspawn boots the cached root file system (tests/e2e/rootfs.sh)
# with a private network and a throw-away overlay, the packages are installed with apt-get
# and rpm, and every check runs inside the booted system with its own tools (systemctl,
# journalctl, systemd-analyze, ps, python3's ftplib, curl). A Qumulo simulator runs inside
# the container as the cluster.
#
# Usage: tests/e2e/packages.sh   (after packaging/build-packages and
#        packaging/build-packages --version 0.1.1 have put both versions in target/packages)
# Skips with a loud message where the machine cannot boot a container (not root, no
# systemd-nspawn). Ends with a line "N passed, M failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."

PKGDIR=$(realpath "${PACKAGES_DIR:-target/packages}")
E2E=$(realpath tests/e2e)
passed=0
failed=0

step() { printf '\n== %s\n' "$*"; }
ok() { passed=$((passed + 1)); printf '  ok: %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf '  FAILED: %s\n' "$*"; }
check() { # check "what" command...
    local what=$1; shift
    if "$@" >/tmp/qftpd-e2e-check.out 2>&1; then ok "$what"; else bad "$what"; sed 's/^/    /' /tmp/qftpd-e2e-check.out | tail -20; fi
}

if [ "$(id -u)" -ne 0 ] || ! command -v systemd-nspawn >/dev/null; then
    echo "!! SKIPPED: the package end-to-end test needs root and systemd-nspawn (apt-get install systemd-container) to boot a container"
    exit 0
fi

shopt -s nullglob
debs=("$PKGDIR"/qftpd_*_amd64.deb)
rpms=("$PKGDIR"/qftpd-*.x86_64.rpm)
shopt -u nullglob
[ ${#debs[@]} -ge 2 ] && [ ${#rpms[@]} -ge 1 ] || {
    echo "packages.sh: need two versions of the .deb and an .rpm in $PKGDIR; run packaging/build-packages (and with --version 0.1.1)" >&2
    exit 1
}
# Oldest and newest .deb by version.
mapfile -t sorted < <(printf '%s\n' "${debs[@]}" | sort -V)
DEB=$(basename "${sorted[0]}")
DEB_NEW=$(basename "${sorted[-1]}")
RPM=$(basename "$(printf '%s\n' "${rpms[@]}" | sort -V | head -1)")

ROOT=$(tests/e2e/rootfs.sh) || { echo "packages.sh: no root file system" >&2; exit 1; }
MACHINE=qftpd-e2e-$$
CONSOLE=$(mktemp)
systemd-nspawn -D "$ROOT" -b --register=no --keep-unit --private-network --volatile=overlay \
    --bind-ro="$PKGDIR":/pkgs --bind-ro="$E2E":/e2e --console=passive -M "$MACHINE" >"$CONSOLE" 2>&1 &
NSPAWN=$!
cleanup() {
    kill -TERM "$NSPAWN" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NSPAWN" 2>/dev/null
    rm -rf /run/systemd/nspawn/propagate/"$MACHINE" "$CONSOLE" /tmp/qftpd-e2e-check.out
}
trap cleanup EXIT

started=$SECONDS
LEADER=
until [ -n "$LEADER" ] && nsenter -t "$LEADER" -a systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded'; do
    LEADER=$(pgrep -P "$NSPAWN" | head -1)
    if [ $((SECONDS - started)) -gt 60 ] || ! kill -0 "$NSPAWN" 2>/dev/null; then
        echo "packages.sh: the container did not boot:"; tail -30 "$CONSOLE"; exit 1
    fi
    sleep 0.2
done
echo "container booted in $((SECONDS - started)) s"
X() { nsenter -t "$LEADER" -a "$@"; }
XS() { nsenter -t "$LEADER" -a sh -c "$1"; }
# Waits (at most $2 seconds) until the shell condition $1 holds inside the container.
wait_for() { local until=$((SECONDS + ${2:-30})); until XS "$1" >/dev/null 2>&1; do [ $SECONDS -lt $until ] || return 1; sleep 0.2; done; }

CONFIG='# edited by the administrator
[ftp]
greeting = "qftpd in the e2e container"
[qumulo]
url = "https://127.0.0.1:8000"
ca-file = "/etc/qumulo-sim/cluster.pem"'

start_cluster() {
    # The simulator runs from its own copy of the binary, so that removing the package
    # removes every process named qftpd.
    XS 'mkdir -p /opt/sim /etc/qumulo-sim && cp /usr/bin/qftpd /opt/sim/qumulo-sim && chmod 0755 /etc/qumulo-sim'
    # (The simulator serves hundreds of sessions at once in the load step: more than the
    # default 1024 open files.)
    X systemd-run --quiet --unit=qumulo-sim -p LimitNOFILE=65536 /opt/sim/qumulo-sim sim --listen 127.0.0.1:8000 \
        --data-dir /srv/qumulo --user admin:adminpw --user alice:alicepw --admin admin \
        --home alice:/home/alice --cert-out /etc/qumulo-sim/cluster.pem
    wait_for 'test -s /etc/qumulo-sim/cluster.pem && chmod 0644 /etc/qumulo-sim/cluster.pem'
}

configure() { XS "cat > /etc/qftpd/qftpd.toml" <<<"$CONFIG"; }

smoke() { X python3 /e2e/ftp_smoke.py smoke alice alicepw; }

# ---------------------------------------------------------------------------------------
step "install $DEB with apt-get"
check "apt-get install" X env DEBIAN_FRONTEND=noninteractive apt-get install -y -q /pkgs/"$DEB"
check "qftpd.socket is enabled and listening on port 21" XS 'systemctl is-enabled qftpd.socket && systemctl is-active qftpd.socket && ss -ltn | grep -q ":21 "'
check "/etc/qftpd/qftpd.toml is a conffile" XS 'dpkg-query -W -f="\${Conffiles}" qftpd | grep -q /etc/qftpd/qftpd.toml'
check "man page qftpd(8) is installed" XS 'test -s /usr/share/man/man8/qftpd.8.gz'
check "the fail2ban filter and jail are there as examples" XS 'test -s /usr/share/doc/qftpd/examples/fail2ban/filter.d/qftpd.conf && test -s /usr/share/doc/qftpd/examples/fail2ban/jail.d/qftpd.conf'

step "no cluster configured: one clear journal line, no restart loop"
check "a client is told 421" XS 'python3 -c "import socket; s=socket.create_connection((\"127.0.0.1\",21),5); s.settimeout(10); r=s.recv(200); print(r); assert r.startswith(b\"421\")"'
check "the service stays up, not restarting" XS 'systemctl is-active qftpd && test "$(systemctl show qftpd -p NRestarts --value)" = 0'
check "its status says it is not configured" XS 'systemctl status qftpd --no-pager | grep -q "NOT CONFIGURED"'
check "the journal says once what to set and where" XS 'test "$(journalctl -u qftpd --no-pager | grep "qumulo.url: missing" | grep -c /etc/qftpd/qftpd.toml)" = 1'
check "the socket still listens" X systemctl is-active qftpd.socket

step "configure the cluster, reload, and use it over FTP on port 21"
start_cluster
configure
X systemctl reload qftpd
check "FTP login, LIST, STOR, RETR on port 21" smoke
check "qftpd.socket listens on IPv6 too, an IPv6-only socket" XS 'ss -ltn | grep -q "\[::\]:21 " && test "$(systemctl show qftpd.socket -p BindIPv6Only --value)" = ipv6-only'
check "an IPv6 client (curl, EPSV) stores and reads back a file over [::1]:21" XS 'head -c 3000000 /dev/urandom >/tmp/v6.bin && curl -sS -g -T /tmp/v6.bin "ftp://alice:alicepw@[::1]/home/alice/v6.bin" && curl -sS -g -o /tmp/v6.back "ftp://alice:alicepw@[::1]/home/alice/v6.bin" && cmp /tmp/v6.bin /tmp/v6.back && journalctl -u qftpd --no-pager -o json | grep "\"MESSAGE\":\"login\"" | grep -q "\"CLIENT\":\"::1\""'
check "qftpd-metrics.socket is shipped but neither enabled nor listening" XS 'systemctl cat qftpd-metrics.socket >/dev/null && ! systemctl is-enabled qftpd-metrics.socket && ! ss -ltn | grep -q ":9121 "'
check "systemctl enable qftpd-metrics.socket, stop qftpd, start the socket: /health says ok on 127.0.0.1:9121" XS 'systemctl enable qftpd-metrics.socket && systemctl stop qftpd && systemctl start qftpd-metrics.socket && curl -sS -i --max-time 10 http://127.0.0.1:9121/health | tee /dev/stderr | tail -1 | grep -qx ok'
check "/ready says ready" XS 'curl -sS -i --max-time 10 http://127.0.0.1:9121/ready | tee /dev/stderr | tail -1 | grep -qx ready'
check "/metrics has the node up and the logins counter" XS 'curl -sS --max-time 10 http://127.0.0.1:9121/metrics | tee /dev/stderr >/tmp/metrics.txt && grep -q "^qftpd_cluster_node_up{node=.*} 1$" /tmp/metrics.txt && grep -q "^# TYPE qftpd_logins counter$" /tmp/metrics.txt'
check "a login afterwards is counted in /metrics" XS 'python3 /e2e/ftp_smoke.py smoke alice alicepw && curl -sS --max-time 10 http://127.0.0.1:9121/metrics | grep -q "^qftpd_logins_total{result=\"success\"} [1-9]"'
check "the service runs as a non-root user without capabilities" XS 'pid=$(systemctl show -p MainPID --value qftpd); test "$pid" -gt 0 && test "$(ps -o user= -p "$pid")" != root && grep -q "^CapEff:\s*0000000000000000" /proc/$pid/status && grep -q "^CapBnd:\s*0000000000000000" /proc/$pid/status'
check "systemctl status shows the STATUS text" wait_for 'systemctl status qftpd --no-pager | grep -q "Status: \".*session(s)"' 20

step "the journal has the login and the transfers with their fields, and no password"
JSON=$(X journalctl -u qftpd -o json --no-pager)
check "a login event with USER and CLIENT" sh -c 'grep "\"MESSAGE\":\"login\"" | grep "\"USER\":\"alice\"" | grep -q "\"CLIENT\":\"127.0.0.1\""' <<<"$JSON"
for direction in upload download; do
    check "a $direction event with USER, PATH, BYTES, DURATION_MS, RESULT" sh -c "grep '\"DIRECTION\":\"$direction\"' | grep '\"USER\":\"alice\"' | grep '\"PATH\":\"/home/alice/smoke-' | grep '\"BYTES\":\"1048576\"' | grep '\"RESULT\":\"ok\"' | grep -q '\"DURATION_MS\"'" <<<"$JSON"
done
# (The simulator's own unit is left out: the test passes it the passwords on its command line.)
check "no password anywhere in the journal" sh -c '! grep -v qumulo-sim | grep -q -e alicepw -e adminpw' <<<"$(X journalctl -o json --no-pager)"

step "500 sessions at once through the installed service, with its default limits"
# (This machine may cap a process's open files below 65536: the service then gets the cap.)
check "the unit sets LimitNOFILE=65536, and the service may open the 2564 files max-connections needs" XS 'test "$(systemctl show -p LimitNOFILE --value qftpd)" = 65536 && pid=$(systemctl show -p MainPID --value qftpd) && grep "^Max open files" /proc/$pid/limits && test "$(awk "/^Max open files/ {print \$4}" /proc/$pid/limits)" -ge 2564'
echo "  $(X sh -c 'grep "^Max open files" /proc/$(systemctl show -p MainPID --value qftpd)/limits')"
check "the journal has no open-file warning" XS '! journalctl -u qftpd --no-pager | grep -q "open files"'
XS 'pid=$(systemctl show -p MainPID --value qftpd); peak=0; while kill -0 $pid 2>/dev/null && test ! -e /tmp/load.done; do n=$(ls /proc/$pid/fd | wc -l); [ $n -gt $peak ] && peak=$n && echo $peak > /tmp/load.peak; sleep 0.05; done' &
SAMPLER=$!
check "500 sessions from 20 addresses log in and transfer 256 KiB each way, 0 failures" \
    X python3 /e2e/ftp_smoke.py load alice alicepw 500 20
XS 'touch /tmp/load.done'
wait "$SAMPLER"
echo "  peak open files of qftpd during the load: $(X cat /tmp/load.peak)"
check "no session was refused or lost in the journal" XS '! journalctl -u qftpd --no-pager | grep -E "accept failed|connection refused|no passive port free|open files"'

step "reload keeps an open session"
X rm -f /tmp/go
X sh -c 'python3 /e2e/ftp_smoke.py hold alice alicepw /tmp/go >/tmp/hold.out 2>&1 &'
wait_for 'grep -q held /tmp/hold.out' 30
X systemctl reload qftpd
XS 'touch /tmp/go'
check "the open session answers after the reload" wait_for 'grep -q "^200" /tmp/hold.out && grep -q "^257" /tmp/hold.out' 30
check "new sessions work after the reload" smoke

step "stop lets a running download finish; the socket starts the service again"
XS 'head -c 67108864 /dev/urandom > /srv/qumulo/home/alice/big.bin && sha256sum /srv/qumulo/home/alice/big.bin | cut -c1-64 > /tmp/big.sum'
X sh -c 'curl -sS --limit-rate 16M -o /tmp/big.bin ftp://alice:alicepw@127.0.0.1/home/alice/big.bin >/tmp/curl.out 2>&1; echo $? > /tmp/curl.exit &'
wait_for 'test -s /tmp/big.bin' 30
X systemctl stop qftpd
check "the download completed intact across the stop" wait_for 'test -s /tmp/curl.exit && test "$(cat /tmp/curl.exit)" = 0 && test "$(sha256sum /tmp/big.bin | cut -c1-64)" = "$(cat /tmp/big.sum)"' 60
check "the service stopped cleanly" XS 'test "$(systemctl show qftpd -p ActiveState --value)" = inactive && test "$(systemctl show qftpd -p Result --value)" = success'
check "the next connection re-activates the service" smoke
check "the service is active again" X systemctl is-active qftpd

step "a frozen daemon is restarted by the watchdog"
XS 'mkdir -p /run/systemd/system/qftpd.service.d && printf "[Service]\nWatchdogSec=3s\n" > /run/systemd/system/qftpd.service.d/watchdog.conf && systemctl daemon-reload && systemctl restart qftpd'
wait_for 'systemctl is-active qftpd' 20
X sh -c 'kill -STOP "$(systemctl show -p MainPID --value qftpd)"'
check "the watchdog restarted the service" wait_for 'test "$(systemctl show qftpd -p NRestarts --value)" -ge 1 && systemctl is-active qftpd' 30
check "the journal names the watchdog" XS 'journalctl -u qftpd --no-pager | grep -qi watchdog'
XS 'rm -rf /run/systemd/system/qftpd.service.d && systemctl daemon-reload'
check "FTP works after the restart" smoke

step "systemd-analyze in the booted system"
check "security exposure 2.0 or lower" XS 'systemd-analyze security qftpd.service --no-pager --threshold=20'
X systemd-analyze security qftpd.service --no-pager | tail -1
check "verify is clean" XS 'out=$(systemd-analyze verify /lib/systemd/system/qftpd.socket /lib/systemd/system/qftpd.service /usr/lib/systemd/system/qftpd.socket /usr/lib/systemd/system/qftpd.service /lib/systemd/system/qftpd-metrics.socket /usr/lib/systemd/system/qftpd-metrics.socket 2>&1 | grep -v "No such file" | grep qftpd); echo "$out"; test -z "$out"'

step "upgrade to $DEB_NEW keeps the edited configuration"
check "apt-get install of the new version" X env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold /pkgs/"$DEB_NEW"
check "the new version is installed" XS "dpkg-query -W -f='\${Version}' qftpd | grep -q '^${DEB_NEW#qftpd_}' || dpkg-query -W -f='\${Version}' qftpd | grep -q \"\$(echo $DEB_NEW | cut -d_ -f2)\""
check "the edited configuration is kept" XS 'grep -q "edited by the administrator" /etc/qftpd/qftpd.toml'
check "the socket kept listening on port 21" X systemctl is-active qftpd.socket
check "FTP works after the upgrade" smoke

step "purge removes everything"
check "apt-get purge" X env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q qftpd
check "no unit left" XS '! systemctl cat qftpd.service qftpd.socket >/dev/null 2>&1 && ! ss -ltn | grep -q ":21 " && ! systemctl cat qftpd-metrics.socket >/dev/null 2>&1 && ! ss -ltn | grep -q ":9121 "'
check "no file left" XS 'test ! -e /usr/bin/qftpd && test ! -e /etc/qftpd && test ! -e /usr/share/doc/qftpd'
check "no qftpd process left" XS '! pgrep -x qftpd'

step "the .rpm with rpm -i in the same booted system (no RPM distribution is reachable here)"
check "rpm -i" X rpm -i --nodeps /pkgs/"$RPM"
check "its scriptlets enabled and started the socket" XS 'systemctl is-enabled qftpd.socket && systemctl is-active qftpd.socket'
check "/etc/qftpd/qftpd.toml is %config(noreplace)" XS 'rpm -qc qftpd | grep -q /etc/qftpd/qftpd.toml'
configure
check "FTP works from the .rpm" smoke
check "rpm -e" X rpm -e qftpd
check "rpm -e removed the units and stopped everything" XS '! systemctl cat qftpd.service >/dev/null 2>&1 && ! pgrep -x qftpd && ! ss -ltn | grep -q ":21 " && test ! -e /usr/bin/qftpd'

printf '\npackages: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
