#!/bin/sh
# One simulated machine of the boot storm (scripts/bench-bootstorm.ts), run inside the
# machines' network namespace by launch.ts. It does what a BIOS PXE machine installing
# through uec-provisioning does on the wire, with C clients only:
#   1. DHCP: a real DISCOVER/OFFER/REQUEST/ACK for its own MAC (perfdhcp, relayed from the
#      machine's reserved address as giaddr, so the server answers with the reservation);
#   2. TFTP: its first-stage loader (curl tftp://);
#   3. HTTP: the iPXE bootstrap script, its own boot script (which names the kernel, the
#      initrd and the preseed URL), the kernel, the initrd (from whichever server and port the
#      boot script names), its preseed (which holds its call-back URLs and token), then the
#      installing, installed and deployed call-backs.
# Every HTTP request and the TFTP transfer come from the machine's reserved address.
# Bodies are kept in DIR so the benchmark can compare them and build the static baseline.
#
# usage: machine.sh DIR MAC IPV4 HOSTNAME SERVER PORT LOADER
# env:   LOADER_SIZE KERNEL_SIZE INITRD_SIZE (bytes each transfer must have)
# Prints one line: "ok DHCP_SECONDS TFTP_SECONDS HTTP_SECONDS", or "error STEP: WHAT" (exit 1).
set -u
set -f
dir=$1 mac=$2 ip=$3 host=$4 server=$5 port=$6 loader=$7
base="http://$server:$port"
IFS=:
# shellcheck disable=SC2086
set -- $mac
IFS=' 	
'
hyp="$1-$2-$3-$4-$5-$6"
curlopts="-sS --interface $ip --connect-timeout 60 --max-time 1800"
fmt='%{response_code} %{size_download} %{time_total}\n'
transfers=$dir/transfers

fail() {
	echo "error $1: $2"
	exit 1
}

# 1. DHCP, with option 93 (client architecture 0: BIOS) as a PXE ROM sends it. perfdhcp's
# avalanche scenario: one client, DISCOVER until an OFFER, REQUEST until an ACK, resending
# with back-off as firmware does. Which address the server gave is checked in its lease file.
perfdhcp -4 -g single --scenario avalanche -l "$ip" -b "mac=$mac" -R 1 -o 93,0000 "$server" >"$dir/dhcp" 2>&1
dhcp='' answers=''
while IFS= read -r line; do
	case $line in
	"It took "*" to provision 1 clients"*)
		dhcp=${line#It took }
		dhcp=${dhcp%% *}
		;;
	"Responses received: "*) answers=${line#Responses received: } ;;
	esac
done <"$dir/dhcp"
[ -n "$dhcp" ] && [ "$answers" -ge 2 ] || fail dhcp "no OFFER and ACK (perfdhcp output in $dir/dhcp)"

# 2. TFTP: the loader DHCP names for BIOS clients. Its own, shorter time limit (the later
# --max-time wins): a transfer stuck in the server is this machine's error, not a hung storm.
curl $curlopts --max-time 300 -w "$fmt" -o /dev/null "tftp://$server/$loader" >"$transfers" || fail tftp "curl exit $?"

# 3. HTTP, as iPXE and then the installer would.
curl $curlopts -w "$fmt" \
	-o "$dir/bootstrap.ipxe" "$base/boot/ipxe" \
	-o "$dir/node.ipxe" "$base/boot/ipxe/node?mac=$hyp&buildarch=x86_64&platform=pcbios&manufacturer=QEMU&product=Standard%20PC&serial=&uuid=" \
	>>"$transfers" || fail boot-script "curl exit $?"

kernel='' initrd='' preseed=''
while IFS= read -r line; do
	case $line in
	"kernel "*)
		# shellcheck disable=SC2086
		set -- $line
		kernel=$2
		for arg; do
			case $arg in url=*) preseed=${arg#url=} ;; esac
		done
		;;
	"initrd "*)
		# shellcheck disable=SC2086
		set -- $line
		initrd=$4
		;;
	esac
done <"$dir/node.ipxe"
[ -n "$kernel" ] && [ -n "$initrd" ] && [ -n "$preseed" ] || fail boot-script "no kernel, initrd or preseed URL in $dir/node.ipxe"

curl $curlopts -w "$fmt" -o /dev/null "$kernel" -o /dev/null "$initrd" -o "$dir/preseed" "$preseed" >>"$transfers" || fail install "curl exit $?"

installing='' installed='' mine=''
while IFS= read -r line; do
	case $line in
	*"early_command string wget -q -O /dev/null '"*)
		url=${line#*"early_command string wget -q -O /dev/null '"}
		installing=${url%%"'"*}
		;;
	*"late_command string wget -q -O /dev/null '"*)
		url=${line#*"late_command string wget -q -O /dev/null '"}
		installed=${url%%"'"*}
		;;
	"d-i netcfg/get_hostname string $host") mine=1 ;;
	esac
done <"$dir/preseed"
[ -n "$mine" ] || fail preseed "not the preseed of $host ($dir/preseed)"
[ -n "$installing" ] && [ -n "$installed" ] || fail preseed "no call-back URLs in $dir/preseed"
# The first-boot script's report: the same URL with the status "deployed".
deployed=${installed%%/status/installed*}/status/deployed${installed#*/status/installed}

curl $curlopts -w "$fmt" -o "$dir/installing" "$installing" -o "$dir/installed" "$installed" -o "$dir/deployed" "$deployed" >>"$transfers" || fail call-back "curl exit $?"

# Every transfer's status and size, in order; the TFTP and the HTTP seconds.
exec awk -v dhcp="$dhcp" -v want="0 $LOADER_SIZE|200 -|200 -|200 $KERNEL_SIZE|200 $INITRD_SIZE|200 -|200 -|200 -|200 -" '
BEGIN { n = split(want, w, "|"); split("tftp boot-script boot-script kernel initrd preseed installing installed deployed", step, " ") }
{
	split(w[NR], e, " ")
	if (NR > n || $1 != e[1] || (e[2] != "-" && $2 != e[2])) { printf "error %s: status %s, %s bytes (expected %s)\n", step[NR], $1, $2, w[NR]; bad = 1; exit 1 }
	if (NR == 1) tftp = $3; else http += $3
}
END { if (bad) exit 1; if (NR != n) { printf "error transfers: %d of %d\n", NR, n; exit 1 } split(dhcp, d, ":"); printf "ok %.6f %.6f %.6f\n", d[1] * 3600 + d[2] * 60 + d[3], tftp, http }
' "$transfers"
