# Shared by scripts/install-from-checkout and scripts/run-tests (sourced, not run).

need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "$0: run as root (sudo $0): it installs Debian packages" >&2
		exit 2
	fi
}

# apt-get install without starting services: a policy-rc.d refusing starts is put in place
# for the install when the machine has none, and only that one is removed afterwards.
# Tools for the tests and the build come without Recommends (apt_install_quietly); the
# packages themselves are installed as `apt install` does by default, with Recommends
# (apt_install_debs).
apt_install_refusing_starts() {
	local added=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\n# added by uec-provisioning scripts for an install\nexit 101\n' > /usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		added=yes
	fi
	local rc=0
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" || rc=$?
	[ -z "$added" ] || rm -f /usr/sbin/policy-rc.d
	return $rc
}
apt_install_quietly() { apt_install_refusing_starts --no-install-recommends "$@"; }
apt_install_debs() { apt_install_refusing_starts "$@"; }

apt_update_once() {
	if [ -z "${UEC_APT_UPDATED:-}" ]; then
		DEBIAN_FRONTEND=noninteractive apt-get update -q
		export UEC_APT_UPDATED=yes
	fi
}

# Node.js 18 or later: Debian's nodejs when the machine has none.
ensure_node() {
	if ! command -v node >/dev/null 2>&1; then
		apt_install_quietly nodejs
	fi
	local major
	major=$(node -p 'process.versions.node.split(".")[0]')
	if [ "$major" -lt 18 ]; then
		echo "$0: Node.js $major is too old; 18 or later is needed" >&2
		exit 1
	fi
}

# Copy the checkout (tracked and new files, not ignored ones) to DEST.
copy_checkout() {
	local dest=$1
	mkdir -p "$dest"
	git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$dest"
}
