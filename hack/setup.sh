#!/usr/bin/env bash
# hack/setup.sh: prepare this machine for building and testing sandbox.
#
# Run as root, non-interactively; safe to run again (each step checks first
# and says what it did). It
#   - installs the Debian packages the build, the tests and `make bench` need
#     (apt-get is skipped when all of them are already installed; FORCE_APT=1
#     runs it anyway);
#   - creates the unprivileged test user (TEST_USER, default sandbox-test)
#     with subordinate uid/gid ranges, since rootless behaviour must be tested
#     as a user that is not root;
#   - checks that newuidmap/newgidmap can raise privileges (setuid or file
#     capabilities) and makes /dev/fuse usable by unprivileged users, as the
#     udev rule on an ordinary Debian host does.
set -euo pipefail

TEST_USER=${TEST_USER:-sandbox-test}
TEST_HOME=/home/$TEST_USER
SUBID_RANGE=${SUBID_RANGE:-200000:65536}   # start:count

# Packages for the build, the unit and namespace tests, and the bench peers.
PACKAGES=(
	uidmap           # setuid newuidmap/newgidmap (idmap)
	fuse-overlayfs   # FUSE overlay fallback (fuse-overlay)
	fuse3            # fusermount3
	passt            # pasta (slirp, preferred)
	slirp4netns      # slirp (fallback)
	libseccomp-dev   # building the seccomp package
	pkg-config
	bubblewrap       # bench peer
	crun             # bench peer
	podman           # bench peer for image runs (--runtime runc here)
	runc             # bench peer for image runs
	hyperfine        # make bench
	busybox-static   # test rootfs fixtures
	docker-registry  # a real OCI distribution registry on loopback (image tests)
	skopeo           # reads and pushes test images as an independent tool
	umoci            # unpacks test images as an independent tool
	iperf3           # network bench
	tmux             # driving interactive runs in tests
	util-linux       # unshare, runuser, nsenter
	procps
	iproute2
	psmisc
	ca-certificates
	git
	make
	gcc              # cgo, for go test -race
	shellcheck       # make lint on the shell scripts
)
# Left out until the issue that needs them (the cgroup v2 guest); add them
# to PACKAGES then:
#   qemu-system-x86 debootstrap   the systemd + cgroup v2 guest

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "must run as root (it installs packages and creates user $TEST_USER); try: sudo bash $0"

# --- packages ---------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [[ ${#missing[@]} -eq 0 && -z ${FORCE_APT:-} ]]; then
	say "packages: all ${#PACKAGES[@]} already installed, apt-get skipped (FORCE_APT=1 to run it anyway)"
else
	say "packages: installing ${missing[*]:-(forced) ${PACKAGES[*]}}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q </dev/null
	apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" </dev/null
	say "packages: installed"
fi

# --- test user --------------------------------------------------------------
if id -u "$TEST_USER" >/dev/null 2>&1; then
	say "user: $TEST_USER exists (uid $(id -u "$TEST_USER"))"
else
	# SUB_*_COUNT=0: useradd would otherwise pick a range of its own; we add
	# the documented one below.
	useradd --create-home --home-dir "$TEST_HOME" --shell /bin/bash \
		-K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$TEST_USER"
	say "user: created $TEST_USER (uid $(id -u "$TEST_USER"), home $TEST_HOME)"
fi
if [[ ! -d $TEST_HOME ]]; then
	install -d -m 0755 -o "$TEST_USER" -g "$(id -gn "$TEST_USER")" "$TEST_HOME"
	say "user: created missing home $TEST_HOME"
fi

start=${SUBID_RANGE%%:*}
count=${SUBID_RANGE##*:}
last=$((start + count - 1))
for kind in uid gid; do
	file=/etc/sub$kind
	[[ -e $file ]] || { : >"$file"; chmod 0644 "$file"; }
	if grep -q "^$TEST_USER:" "$file"; then
		say "sub${kind}s: $TEST_USER already has $(grep "^$TEST_USER:" "$file" | cut -d: -f2- | paste -sd' ')"
	else
		usermod "--add-sub${kind}s" "$start-$last" "$TEST_USER"
		say "sub${kind}s: added $TEST_USER:$start:$count to $file"
	fi
done

# --- helpers and devices ----------------------------------------------------
for h in newuidmap newgidmap; do
	path=$(command -v "$h" || true)
	[[ -n $path ]] || die "$h not found; install Debian package uidmap"
	if [[ -u $path ]]; then
		say "helper: $path is setuid root"
	elif command -v getcap >/dev/null && getcap "$path" | grep -q "cap_set[ug]id"; then
		say "helper: $path has file capabilities: $(getcap "$path")"
	else
		die "$path is neither setuid nor has cap_setuid/cap_setgid; fix: chmod u+s $path (or reinstall uidmap)"
	fi
done

if [[ -c /dev/fuse ]]; then
	mode=$(stat -c %a /dev/fuse)
	if [[ $mode != 666 ]]; then
		chmod 0666 /dev/fuse
		say "fuse: /dev/fuse was mode $mode, set to 0666 (as Debian's udev rule does)"
	else
		say "fuse: /dev/fuse is mode 0666"
	fi
else
	say "fuse: warning: no /dev/fuse; the fuse-overlayfs fallback cannot work here"
fi

# Facts the rootless tests depend on; reported, not changed.
say "kernel: $(uname -r), user.max_user_namespaces=$(sysctl -n user.max_user_namespaces 2>/dev/null || echo '?')"
if [[ -r /proc/sys/kernel/apparmor_restrict_unprivileged_userns ]]; then
	say "kernel: kernel.apparmor_restrict_unprivileged_userns=$(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns)"
fi
say "done"
