#!/usr/bin/env bash
# hack/ci.sh: the whole CI run. Run as root, no stdin needed (`make ci`).
#
#   1 hack/setup.sh       packages, the test user and its subordinate ranges
#   2 make build          bin/sandbox, bin/sandbox-store
#   3 make lint           gofmt, go vet, staticcheck, shellcheck
#   4 compile tests       every package with tests, as root, into a temp tree
#                         (-race except test/integration and test/image,
#                         which drive the built binaries instead)
#   5 run tests           each test binary AS the unprivileged test user, with
#                         SANDBOX_TEST_STRICT=1 and SANDBOX_BIN set, from its
#                         package's directory in a copy of the source tree
#   6 summary             per package, then "N passed, N failed, N skipped"
#
# Namespace behaviour differs for root, so no test runs as root. A failing
# step (build, lint, a package that does not compile, a test binary that dies
# without a "--- FAIL" line) counts as one failure; the exit code is non-zero
# if anything failed. KEEP=1 keeps the temp tree (logs, binaries) for a look.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
export PATH=$PATH:/usr/local/go/bin
TEST_USER=${TEST_USER:-sandbox-test}
TEST_TIMEOUT=${TEST_TIMEOUT:-20m}
# The suites that drive the built binaries: no -race (nothing of theirs
# runs in the test binary worth racing), CGO_ENABLED=1 all the same.
NORACE_PKGS=" sandbox/test/integration sandbox/test/image "
# Build tags of the store packages (image, cmd/sandbox-store): see the
# Makefile. Every go command below compiles with them. With them, those
# packages build with cgo and -race as well: what stays cgo is
# containers/storage's pkg/unshare, drivers/quota and drivers/copy,
# mattn/go-sqlite3 and miekg/pkcs11, all of which link with gcc and libc.
GOFLAGS="$(go env GOFLAGS) -tags=$(cat hack/build-tags)"
export GOFLAGS

say() { printf '\nci: === %s\n' "$*"; }

if [[ $EUID -ne 0 ]]; then
	echo "ci: must run as root (it installs packages, creates $TEST_USER and runs the tests as that user)" >&2
	echo "ci: for unit tests as yourself: make test" >&2
	exit 2
fi

say "setup"
bash hack/setup.sh || { echo "ci: setup failed"; echo "0 passed, 1 failed"; exit 1; }
TEST_GROUP=$(id -gn "$TEST_USER")
TEST_HOME=$(getent passwd "$TEST_USER" | cut -d: -f6)
go version

failed_steps=()

say "build"
make --no-print-directory build || failed_steps+=(build)

say "lint"
make --no-print-directory lint || failed_steps+=(lint)

# The temp tree belongs to the test user: it must read the binaries and
# source, and write where its tests run.
TMP=$(mktemp -d /var/tmp/sandbox-ci.XXXX)
if [[ -z ${KEEP:-} ]]; then
	trap 'rm -rf "$TMP"' EXIT
fi
mkdir -p "$TMP/bin" "$TMP/tests" "$TMP/logs" "$TMP/src"
# The source tree, so each test runs from its package directory as under
# `go test` (testdata/, ../../testdata, golden files all resolve).
tar -C "$REPO" --exclude=./.git --exclude=./bin --exclude=./bench/out -cf - . | tar -C "$TMP/src" -xf -
# sandbox finds its store helper in its own directory.
for b in sandbox sandbox-store; do
	if [[ -x bin/$b ]]; then
		cp "bin/$b" "$TMP/bin/$b"
	fi
done
SANDBOX_BIN=$TMP/bin/sandbox

say "compile tests"
# ImportPath|Dir|number of test files
mapfile -t pkgs < <(go list -e -f '{{.ImportPath}}|{{.Dir}}|{{len .TestGoFiles}}{{len .XTestGoFiles}}' ./... |
	awk -F'|' '$3 != "00"')
declare -A pkg_result=()
compiled=()
for line in "${pkgs[@]}"; do
	IFS='|' read -r ip dir _ <<<"$line"
	slug=${ip//\//_}
	race=-race
	[[ $NORACE_PKGS == *" $ip "* ]] && race=
	echo "ci: go test -c $race $ip"
	# shellcheck disable=SC2086 # $race is empty or one flag
	if CGO_ENABLED=1 go test -c $race -o "$TMP/tests/$slug.test" "$ip" >"$TMP/logs/$slug.build" 2>&1; then
		if [[ -x $TMP/tests/$slug.test ]]; then
			compiled+=("$ip|$dir|$slug")
		fi
	else
		cat "$TMP/logs/$slug.build"
		pkg_result[$ip]="FAIL (does not compile)"
	fi
done

chown -R "$TEST_USER:$TEST_GROUP" "$TMP"
chmod 0755 "$TMP"

say "run tests as $TEST_USER (SANDBOX_TEST_STRICT=1, SANDBOX_BIN=$SANDBOX_BIN)"
pass=0 fail=0 skip=0 died=0
for entry in "${compiled[@]}"; do
	IFS='|' read -r ip dir slug <<<"$entry"
	rel=${dir#"$REPO"}
	rundir=$TMP/src$rel
	log=$TMP/logs/$slug.log
	echo
	echo "ci: --- $ip (as $TEST_USER, in ${rundir})"
	(
		cd "$rundir" &&
			runuser -u "$TEST_USER" -- env -i \
				HOME="$TEST_HOME" PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/go/bin \
				USER="$TEST_USER" LOGNAME="$TEST_USER" \
				SANDBOX_TEST_STRICT=1 SANDBOX_BIN="$SANDBOX_BIN" \
				"$TMP/tests/$slug.test" -test.v -test.timeout "$TEST_TIMEOUT" </dev/null
	) 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	p=$(grep -cE '^[[:space:]]*--- PASS' "$log")
	f=$(grep -cE '^[[:space:]]*--- FAIL' "$log")
	s=$(grep -cE '^[[:space:]]*--- SKIP' "$log")
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
	if [[ $rc -eq 0 ]]; then
		pkg_result[$ip]="ok   ($p passed, $s skipped)"
	elif [[ $f -gt 0 ]]; then
		pkg_result[$ip]="FAIL ($p passed, $f failed, $s skipped)"
	else
		# Panic, timeout, TestMain exit: no --- FAIL line to count.
		died=$((died + 1))
		pkg_result[$ip]="FAIL (test binary exited $rc without a --- FAIL line)"
	fi
done

say "summary"
for ip in $(printf '%s\n' "${!pkg_result[@]}" | sort); do
	printf '  %-40s %s\n' "$ip" "${pkg_result[$ip]}"
	[[ ${pkg_result[$ip]} == "FAIL (does not compile)" ]] && failed_steps+=("compile $ip")
done
[[ ${#pkgs[@]} -eq 0 ]] && echo "  (no package has tests)"
for s in "${failed_steps[@]}"; do
	echo "  FAILED STEP: $s"
done
[[ -n ${KEEP:-} ]] && echo "  logs and binaries kept in $TMP"

total_fail=$((fail + died + ${#failed_steps[@]}))
echo
echo "$pass passed, $total_fail failed, $skip skipped"
[[ $total_fail -eq 0 ]]
