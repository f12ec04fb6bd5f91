#!/usr/bin/env bash
# bench/run.sh: start-up cost of `sandbox run -- /bin/true` against the tools
# a user would pick instead, measured side by side in one hyperfine run
# (`make bench`):
#
#   sandbox   bin/sandbox run -- /bin/true, taking a pre-spawned sandbox
#             (the first run starts the pre-spawner; the warm-up covers it)
#   direct    bin/sandbox run --prespawn=off -- /bin/true: cloned by the CLI
#   bwrap     bubblewrap with the same set: all namespaces but the network
#             kept off, host /usr and /etc read-only, cwd writable, private
#             /tmp /proc /dev
#   unshare   unshare -Urmpf --mount-proc: the floor (namespaces + one exec)
#   true      /bin/true alone: process start-up
#
# Two passes: "latency", each run after a 100 ms pause (a user typing a
# command, a build starting a tool now and then: the pre-spawner has its
# next sandbox ready), and "back-to-back", runs as fast as they go (the
# pre-spawner spawns the next sandbox while the run it served ends).
# Then a few `sandbox run --debug` runs with their stage= timestamp lines.
#
# As root it runs hack/setup.sh, builds, and re-runs itself as the
# unprivileged test user (rootless is what is measured); as any other user it
# measures as that user. The hyperfine JSON lands in bench/out/.
# Then images: `sandbox run --rm IMAGE /bin/true` (pre-spawned, direct,
# and with --overlay=fuse) against podman (native overlay and
# fuse-overlayfs) and runc, latency and back-to-back. Then the file-system
# cost inside the root (bench/fsbench: stat and read of a 20k-file tree
# from the image, creating 20k small files, a 1 GiB sequential write with
# fsync) on a host directory, a kernel overlay root and a fuse-overlayfs
# root, as ratios to the host directory.
# Knobs: RUNS (200, back-to-back), LAT_RUNS (60, latency), IMG_RUNS (20,
# images), WARMUP (20), FS_MIB (1024, the sequential write),
# SANDBOX=/path/to/binary (skip the build).
# If sandbox fails to run /bin/true, the error is shown and the peers are
# measured without it.
set -uo pipefail

RUNS=${RUNS:-200}
LAT_RUNS=${LAT_RUNS:-60}
IMG_RUNS=${IMG_RUNS:-20}
FS_MIB=${FS_MIB:-1024}
WARMUP=${WARMUP:-20}
TEST_USER=${TEST_USER:-sandbox-test}

# measure DIR: run the bench in DIR (which holds ./sandbox), as whoever we
# are. The bench's pre-spawner keeps its socket below DIR and is stopped at
# the end.
measure() {
	mkdir -m 0700 "$1/xdg-run" "$1/data" || return 1
	XDG_RUNTIME_DIR=$1/xdg-run measure_in "$1"
	local rc=$?
	XDG_RUNTIME_DIR=$1/xdg-run XDG_DATA_HOME=$1/data measure_images "$1" || rc=1
	XDG_RUNTIME_DIR=$1/xdg-run XDG_DATA_HOME=$1/data measure_fs "$1" || rc=1
	stop_prespawners "$1/xdg-run"
	# Rootless podman's pause processes, started for this bench: their pid
	# files are read before the removal below takes pfuse/run with it.
	local pause run pauses=()
	for run in "$1/xdg-run" "$1/pfuse/run"; do
		if pause=$(cat "$run/libpod/tmp/pause.pid" 2>/dev/null) && [[ $pause =~ ^[0-9]+$ ]] &&
			grep -q podman "/proc/$pause/cmdline" 2>/dev/null; then
			pauses+=("$pause")
		fi
	done
	# The stores hold files of subordinate ids: removed from inside.
	XDG_RUNTIME_DIR=$1/xdg-run XDG_DATA_HOME=$1/data podman unshare rm -rf "$1/data" "$1/bundle" "$1/pfuse" 2>/dev/null
	if pause=$(cat "$1/xdg-run/libpod/tmp/pause.pid" 2>/dev/null) && [[ $pause =~ ^[0-9]+$ ]] &&
		grep -q podman "/proc/$pause/cmdline" 2>/dev/null; then
		pauses+=("$pause")
	fi
	((${#pauses[@]})) && kill "${pauses[@]}" 2>/dev/null
	return "$rc"
}

# measure_images DIR: `sandbox run --rm IMAGE /bin/true` against podman
# (--runtime runc: crun refuses rootless runs on a hybrid cgroup layout)
# and runc on an unpacked bundle, the same busybox root in each, made
# here without network and imported into both stores.
measure_images() {
	local dir=$1 sb=$1/sandbox bb root=$1/imgroot a
	echo
	echo "bench: images: sandbox, podman $(podman --version 2>/dev/null | awk '{print $3}'), runc $(runc --version 2>/dev/null | awk 'NR==1{print $3}')"
	bb=$(command -v busybox) || { echo "bench: images: no busybox, skipped"; return 0; }
	mkdir -p "$root/bin" "$root/etc" "$root/proc" "$root/dev" "$root/sys" "$root/tmp" || return 1
	cp "$bb" "$root/bin/busybox"
	for a in sh true ls cat id; do ln -s busybox "$root/bin/$a"; done
	echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
	tar -C "$root" -cf "$dir/root.tar" . || return 1
	"$sb" import "$dir/root.tar" localhost/bench >/dev/null || { echo "bench: sandbox import FAILED"; return 1; }
	local args=(-n "sandbox" "$sb run --rm localhost/bench /bin/true"
		-n "direct" "$sb run --rm --prespawn=off localhost/bench /bin/true")
	if "$sb" run --rm --overlay=fuse localhost/bench /bin/true; then
		args+=(-n "fuse" "$sb run --rm --overlay=fuse localhost/bench /bin/true")
	else
		echo "bench: sandbox --overlay=fuse FAILED; left out"
	fi
	if podman import "$dir/root.tar" localhost/bench >/dev/null 2>&1 &&
		podman --runtime runc run --rm --network=none localhost/bench /bin/true >/dev/null 2>&1; then
		args+=(-n podman "podman --runtime runc run --rm --network=none localhost/bench /bin/true")
	else
		echo "bench: podman did not run the image; left out"
	fi
	# podman with fuse-overlayfs needs a store (and state) of its own.
	local pf=(env XDG_DATA_HOME="$dir/pfuse/data" XDG_CONFIG_HOME="$dir/pfuse/config" XDG_RUNTIME_DIR="$dir/pfuse/run"
		podman --storage-driver overlay --storage-opt overlay.mount_program="$(command -v fuse-overlayfs)" --runtime runc)
	mkdir -p "$dir/pfuse" && mkdir -m 0700 "$dir/pfuse/data" "$dir/pfuse/config" "$dir/pfuse/run"
	if "${pf[@]}" import "$dir/root.tar" localhost/bench >/dev/null 2>&1 &&
		"${pf[@]}" run --rm --network=none localhost/bench /bin/true >/dev/null 2>&1; then
		args+=(-n podman-fuse "${pf[*]} run --rm --network=none localhost/bench /bin/true")
	else
		echo "bench: podman with fuse-overlayfs did not run the image; left out"
	fi
	mkdir -p "$dir/bundle" && cp -a "$root" "$dir/bundle/rootfs" &&
		(cd "$dir/bundle" && runc spec --rootless) &&
		sed -i 's/"terminal": true/"terminal": false/; s#"sh"#"/bin/true"#' "$dir/bundle/config.json"
	if runc --root "$dir/runc" run --bundle "$dir/bundle" bench >/dev/null 2>&1; then
		args+=(-n runc "runc --root $dir/runc run --bundle $dir/bundle bench")
	else
		echo "bench: runc did not run the bundle; left out"
	fi
	echo "bench: images, latency: each run after a 100 ms pause ($IMG_RUNS runs)"
	hyperfine -N --prepare 'sleep 0.1' --warmup 3 --runs "$IMG_RUNS" --time-unit millisecond \
		--export-json "$dir/images-latency.json" "${args[@]}" </dev/null || return 1
	image_ratios "$dir/images-latency.json"
	echo "bench: images, back-to-back ($IMG_RUNS runs)"
	hyperfine -N --warmup 3 --runs "$IMG_RUNS" --time-unit millisecond \
		--export-json "$dir/images.json" "${args[@]}" </dev/null || return 1
	image_ratios "$dir/images.json"
}

# image_ratios FILE: medians, and how many times faster sandbox is.
image_ratios() {
	python3 - "$1" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
for name, r in res.items():
    print(f"  {name:<8} median {r['median'] * 1000:8.2f} ms")
for peer, own in [("podman", "sandbox"), ("podman", "direct"), ("runc", "sandbox"), ("runc", "direct"),
                  ("podman-fuse", "fuse"), ("podman", "fuse"), ("runc", "fuse")]:
    if peer in res and own in res:
        print(f"  {peer + '/' + own:<18} {res[peer]['median'] / res[own]['median']:6.2f}x (sandbox faster above 1)")
PY
}

# measure_fs DIR: bench/fsbench (built beside the binary) inside an image
# holding a 20k-file tree, on the tree bound in from the host, on the
# image's root through kernel overlayfs and through fuse-overlayfs. The
# runs keep a storage container (--name, removed after) so that the
# writable layer is on the same disk as the host directory, not a tmpfs.
measure_fs() {
	local dir=$1 sb=$1/sandbox root=$1/fsroot mode out
	[[ -x $dir/fsbench ]] || { echo "bench: fs: no fsbench binary, skipped"; return 0; }
	echo
	echo "bench: file-system cost inside the root (20k files of 512 B, ${FS_MIB} MiB written)"
	mkdir -p "$root/bin" "$root/etc" "$root/proc" "$root/dev" "$root/sys" "$root/tmp" "$root/w" "$dir/hostw" || return 1
	cp "$dir/fsbench" "$root/bin/fsbench"
	python3 - "$root/tree" <<'PY' || return 1
import os, sys
for d in range(100):
    p = os.path.join(sys.argv[1], str(d))
    os.makedirs(p)
    for f in range(200):
        with open(os.path.join(p, str(f)), "wb") as fh:
            fh.write(os.urandom(512))
PY
	cp -a "$root/tree" "$dir/hosttree"
	tar -C "$root" -cf "$dir/fsroot.tar" . || return 1
	"$sb" import "$dir/fsroot.tar" localhost/fsbench >/dev/null || { echo "bench: fs: import FAILED"; return 1; }
	for mode in host kernel fuse; do
		if [[ $mode == host ]]; then
			out=$("$sb" run --rm -v "$dir/hosttree:/hosttree:ro" -v "$dir/hostw:/hostw" localhost/fsbench \
				/bin/fsbench /hosttree /hostw "$FS_MIB") || { echo "bench: fs: $mode FAILED"; continue; }
		else
			out=$("$sb" run --name "fsbench-$mode" --overlay="$mode" localhost/fsbench /bin/fsbench /tree /w "$FS_MIB") ||
				{ echo "bench: fs: $mode FAILED"; "$sb" rm "fsbench-$mode" >/dev/null 2>&1; continue; }
			"$sb" rm "fsbench-$mode" >/dev/null
		fi
		echo "{\"mode\": \"$mode\", \"result\": $out}"
	done >"$dir/fs.jsonl"
	python3 - "$dir/fs.jsonl" <<'PY'
import json, sys
rows = {r["mode"]: r["result"] for r in map(json.loads, open(sys.argv[1]))}
ops = ["stat_ms", "read_ms", "create_ms", "write_ms"]
print(f"  {'root':<8}" + "".join(f"{o[:-3] + ' ms':>12}" for o in ops))
for mode, r in rows.items():
    print(f"  {mode:<8}" + "".join(f"{r[o]:>12.1f}" for o in ops))
if "host" in rows:
    for mode in ("kernel", "fuse"):
        if mode in rows:
            print(f"  {mode + '/host':<12}" + "".join(f"{rows[mode][o] / rows['host'][o]:>10.2f}x" for o in ops))
PY
}

measure_in() {
	local dir=$1 sb=$1/sandbox
	cd "$dir" || return 1
	echo "bench: as $(id -un) (uid $(id -u)) in $dir; $(nproc) cpus, kernel $(uname -r)"
	echo "bench: $(hyperfine --version), bwrap $(bwrap --version | awk '{print $2}'), $(unshare --version)"

	# bwrap's view of the system directories mirrors the host's: on a
	# merged-/usr host /bin, /lib, ... are symlinks into /usr.
	local bw=(bwrap --unshare-user --unshare-pid --unshare-uts --unshare-ipc --unshare-net --unshare-cgroup
		--ro-bind /usr /usr)
	local d
	for d in bin lib lib64 sbin; do
		if [[ -L /$d ]]; then
			bw+=(--symlink "$(readlink "/$d")" "/$d")
		elif [[ -d /$d ]]; then
			bw+=(--ro-bind "/$d" "/$d")
		fi
	done
	bw+=(--ro-bind /etc /etc --bind "$dir" "$dir" --tmpfs /tmp --proc /proc --dev /dev
		--die-with-parent --new-session /bin/true)

	# name|command, in hyperfine's words (-N: no shell; paths have no spaces)
	local cands=(
		"sandbox|$sb run -- /bin/true"
		"direct|$sb run --prespawn=off -- /bin/true"
		"bwrap|${bw[*]}"
		"unshare|unshare -Urmpf --mount-proc /bin/true"
		"true|/bin/true"
	)
	local args=() c name cmd out
	for c in "${cands[@]}"; do
		name=${c%%|*} cmd=${c#*|}
		# shellcheck disable=SC2086 # cmd is split into words, as hyperfine -N does
		if out=$($cmd 2>&1 </dev/null); then
			args+=(-n "$name" "$cmd")
		else
			echo "bench: $name FAILED, left out of the timing (exit $?): $cmd"
			printf '%s\n' "$out" | sed 's/^/  | /'
		fi
	done
	echo "bench: bwrap command: ${bw[*]}"
	if [[ ${#args[@]} -eq 0 ]]; then
		echo "bench: nothing ran" >&2
		return 1
	fi

	echo
	echo "bench: latency: each run after a 100 ms pause ($LAT_RUNS runs)"
	hyperfine -N --prepare 'sleep 0.1' --warmup 5 --runs "$LAT_RUNS" --time-unit millisecond \
		--export-json "$dir/latency.json" "${args[@]}" </dev/null || return 1
	ratios "$dir/latency.json"
	echo
	echo "bench: back-to-back ($RUNS runs)"
	hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --time-unit millisecond \
		--export-json "$dir/bench.json" "${args[@]}" </dev/null || return 1
	ratios "$dir/bench.json"

	echo
	echo "bench: stages of sandbox run --debug -- /bin/true (3 runs each, after a pause):"
	local i rc mode
	for mode in --prespawn=1m --prespawn=off; do
		for i in 1 2 3; do
			sleep 0.1
			out=$("$sb" run --debug "$mode" -- /bin/true </dev/null 2>&1)
			rc=$?
			echo "  $mode run $i (exit $rc):"
			if grep -q 'stage=' <<<"$out"; then
				grep -E 'stage=|msg=prespawn' <<<"$out" | sed -E 's/^time=[^ ]+ level=DEBUG //; s/^/    /'
			else
				echo "    (no stage= lines; its output:)"
				printf '%s\n' "$out" | head -n 5 | sed 's/^/    | /'
			fi
		done
	done
	return 0
}

# stop_prespawners DIR: end (by pid, SIGTERM) the pre-spawners whose socket
# directory (their fd 3) is below DIR: the ones this bench started.
stop_prespawners() {
	local p cmd
	for p in /proc/[0-9]*; do
		cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
		[[ $cmd == *" __prespawn "* ]] || continue
		[[ $(readlink "$p/fd/3" 2>/dev/null) == "$1"* ]] || continue
		kill -TERM "${p#/proc/}" 2>/dev/null
	done
}

# ratios FILE: medians and their ratios from hyperfine's JSON.
ratios() {
	python3 - "$1" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
ms = lambda s: s * 1000.0
print(f"{'command':<10} {'median ms':>10} {'mean ms':>9} {'± ms':>7} {'min ms':>8}")
for name, r in res.items():
    print(f"{name:<10} {ms(r['median']):>10.2f} {ms(r['mean']):>9.2f} {ms(r['stddev'] or 0):>7.2f} {ms(r['min']):>8.2f}")
print()
print("ratios of medians:")
for a, b in [("sandbox", "bwrap"), ("direct", "bwrap"), ("sandbox", "unshare"),
             ("bwrap", "true"), ("unshare", "true"), ("sandbox", "true")]:
    if a in res and b in res:
        print(f"  {a+'/'+b:<16} {res[a]['median'] / res[b]['median']:6.2f}x")
    else:
        missing = " and ".join(n for n in (a, b) if n not in res)
        print(f"  {a+'/'+b:<16}    n/a  ({missing} did not run)")
PY
}

if [[ ${1:-} == --measure ]]; then
	measure "$2"
	exit
fi

cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
export PATH=$PATH:/usr/local/go/bin

if [[ $EUID -eq 0 ]]; then
	bash hack/setup.sh || exit 1
fi
bin=${SANDBOX:-}
if [[ -z $bin ]]; then
	# A failed build is reported; the peers are still measured.
	make --no-print-directory build || echo "bench: build FAILED; measuring the peers only"
	bin=bin/sandbox
fi

dir=$(mktemp -d /var/tmp/sandbox-bench.XXXX)
trap 'rm -rf "$dir"' EXIT
if [[ -e $bin ]]; then
	cp "$bin" "$dir/sandbox"
	[[ -e $(dirname "$bin")/sandbox-store ]] && cp "$(dirname "$bin")/sandbox-store" "$dir/sandbox-store"
	CGO_ENABLED=0 go build -o "$dir/fsbench" ./bench/fsbench || echo "bench: fsbench build FAILED; no file-system figures"
else
	printf '#!/bin/sh\necho "%s: not built" >&2\nexit 127\n' "$bin" >"$dir/sandbox"
	chmod 0755 "$dir/sandbox"
fi
cp "$0" "$dir/run.sh"

if [[ $EUID -eq 0 ]]; then
	chown -R "$TEST_USER:$(id -gn "$TEST_USER")" "$dir"
	chmod 0755 "$dir"
	runuser -u "$TEST_USER" -- env -i HOME="$(getent passwd "$TEST_USER" | cut -d: -f6)" \
		PATH=/usr/local/bin:/usr/bin:/bin USER="$TEST_USER" LOGNAME="$TEST_USER" \
		RUNS="$RUNS" LAT_RUNS="$LAT_RUNS" IMG_RUNS="$IMG_RUNS" WARMUP="$WARMUP" FS_MIB="$FS_MIB" bash "$dir/run.sh" --measure "$dir" </dev/null
	rc=$?
else
	bash "$dir/run.sh" --measure "$dir" </dev/null
	rc=$?
fi

if [[ -s $dir/bench.json ]]; then
	out=$REPO/bench/out
	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	for f in images images-latency fs; do
		[[ -s $dir/$f.json ]] && mkdir -p "$out" && cp "$dir/$f.json" "$out/latest-$f.json"
		[[ -s $dir/$f.jsonl ]] && mkdir -p "$out" && cp "$dir/$f.jsonl" "$out/latest-$f.jsonl"
	done
	if mkdir -p "$out" 2>/dev/null && cp "$dir/bench.json" "$out/bench-$stamp.json" &&
		cp "$dir/bench.json" "$out/latest.json" && cp "$dir/latency.json" "$out/latency-$stamp.json" &&
		cp "$dir/latency.json" "$out/latest-latency.json"; then
		echo "bench: hyperfine JSON in bench/out/latest.json and latest-latency.json"
	fi
fi
exit "$rc"
