# Shared by the DEP-8 tests (sourced from the source tree's root, autopkgtest's working
# directory). The tests run as root on a disposable machine or container with systemd as
# PID 1; every DHCP and TFTP client runs in a network namespace of its own ($CLIENT_NS)
# joined to this machine by two veth pairs, so nothing is ever sent on a real network:
#   lan0   10.77.0.1/24  <->  c-lan0   (the provisioning interface)
#   other0 10.78.0.1/24  <->  c-other0 (a second interface, never served)
set -eu

CLIENT_NS=uec-client
CONF=/etc/uec-provisioning
BOOT=/var/lib/uec-provisioning/boot
DHCPD=uec-provisioning-dhcpd.service
TMP=${AUTOPKGTEST_TMP:-$(mktemp -d)}

say() { echo "$(date +%T) $*"; }
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# wait_until SECONDS CMD...: runs CMD every 0.2 s until it succeeds; false on timeout.
wait_until() {
	_deadline=$(($(date +%s) + $1))
	shift
	until "$@"; do
		[ "$(date +%s)" -lt "$_deadline" ] || return 1
		sleep 0.2
	done
}

# The two links and the client namespace (idempotent).
setup_network() {
	ip netns list | grep -qx "$CLIENT_NS\( .*\)\?" || {
		ip netns add "$CLIENT_NS"
		ip -n "$CLIENT_NS" link set lo up
	}
	_link lan0 10.77.0.1/24 10.77.0.50/24
	_link other0 10.78.0.1/24 10.78.0.50/24
}
_link() {
	ip link show "$1" >/dev/null 2>&1 && return 0
	ip link add "$1" type veth peer name "c-$1" netns "$CLIENT_NS"
	# No IPv6 chatter (router solicitations, DAD) on the test links.
	sysctl -q -w "net.ipv6.conf.$1.disable_ipv6=1" 2>/dev/null || true
	ip addr add "$2" dev "$1"
	ip link set "$1" up
	ip -n "$CLIENT_NS" addr add "$3" dev "c-$1"
	ip -n "$CLIENT_NS" link set "c-$1" up
}

# Choose lan0 as a sysadmin who automates with debconf would: preseeded answers and
# dpkg-reconfigure, nothing else. Reconfiguring common also moves TFTP (already configured)
# to lan0; reconfiguring dhcpd turns full DHCP on there.
configure_lan0() {
	debconf-set-selections <<-EOF
	uec-provisioning-common uec-provisioning-common/interface select lan0
	uec-provisioning-dhcpd uec-provisioning-dhcpd/mode select full
	uec-provisioning-dhcpd uec-provisioning-dhcpd/interface select lan0
	uec-provisioning-dhcpd uec-provisioning-dhcpd/range string 10.77.0.100-10.77.0.150
	EOF
	dpkg-reconfigure -fnoninteractive uec-provisioning-common
	[ "$(uec-provisioning config get server.interface)" = lan0 ] || fail "server.interface is not lan0 after dpkg-reconfigure"
	grep -qx 'interface=lan0' "$CONF/dnsmasq-tftpd.conf" || fail "dpkg-reconfigure uec-provisioning-common did not move TFTP to lan0"
	dpkg-reconfigure -fnoninteractive uec-provisioning-dhcpd
	[ "$(uec-provisioning config get dhcp.mode)" = full ] || fail "dhcp.mode is $(uec-provisioning config get dhcp.mode) after dpkg-reconfigure, not full"
	[ "$(uec-provisioning config get dhcp.interface)" = lan0 ] || fail "dhcp.interface is not lan0 after dpkg-reconfigure"
}

# dhcp_client IF [udhcpc options...]: one DISCOVER/REQUEST round from the client namespace
# (3 tries, 2 s apart). Prints "ip=... siaddr=... boot_file=..." of the lease and succeeds,
# or fails when no server answered.
dhcp_client() {
	_if=$1
	shift
	cat > "$TMP/udhcpc-script" <<'SCRIPT'
#!/bin/sh
[ "$1" = bound ] && echo "ip=$ip siaddr=$siaddr boot_file=$boot_file serverid=$serverid"
exit 0
SCRIPT
	chmod +x "$TMP/udhcpc-script"
	ip netns exec "$CLIENT_NS" busybox udhcpc -f -q -n -t 3 -T 2 -i "c-$_if" -s "$TMP/udhcpc-script" "$@" 2>"$TMP/udhcpc.err" | grep '^ip=' || {
		sed 's/^/  udhcpc: /' "$TMP/udhcpc.err" >&2
		return 1
	}
}

# tftp_get SERVER FILE DEST: fetches FILE from the client namespace (fails within ~6 s).
tftp_get() {
	rm -f "$3"
	ip netns exec "$CLIENT_NS" timeout 6 busybox tftp -g -r "$2" -l "$3" "$1" 2>/dev/null
}

main_pid() { systemctl show -P MainPID "$1"; }
