#!/usr/bin/env bash
# hack/demo.sh: build sandbox and show one run (`make demo`).
#
# As root: hack/setup.sh first, then the run happens as the unprivileged test
# user in a directory it owns, since that is who sandbox is for. As any other
# user: no setup; build and run as yourself. SANDBOX=/path/to/binary skips the
# build and shows that binary instead.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
export PATH=$PATH:/usr/local/go/bin
TEST_USER=${TEST_USER:-sandbox-test}
# Runs inside the sandbox; $(...) is expanded there, not here.
# shellcheck disable=SC2016
DEMO_CMD='echo "hello from $(hostname) as $(id -un) ($(id -u))"; ls /; cat /proc/self/uid_map'

if [[ $EUID -eq 0 ]]; then
	bash hack/setup.sh || exit 1
fi
bin=${SANDBOX:-}
if [[ -z $bin ]]; then
	make --no-print-directory build || exit 1
	bin=bin/sandbox
fi

dir=$(mktemp -d /var/tmp/sandbox-demo.XXXX)
trap 'rm -rf "$dir"' EXIT
cp "$bin" "$dir/sandbox"
cd "$dir" || exit 1

if [[ $EUID -eq 0 ]]; then
	chown -R "$TEST_USER:$(id -gn "$TEST_USER")" "$dir"
	home=$(getent passwd "$TEST_USER" | cut -d: -f6)
	run=(runuser -u "$TEST_USER" -- env -i HOME="$home" PATH=/usr/local/bin:/usr/bin:/bin
		USER="$TEST_USER" LOGNAME="$TEST_USER" TERM="${TERM:-dumb}")
	who=$TEST_USER
else
	run=()
	who=$(id -un)
fi

echo "demo: as $who (uid $(id -u "$who")) in $dir:"
echo "demo: \$ sandbox run -- sh -c '$DEMO_CMD'"
echo
"${run[@]}" "$dir/sandbox" run -- sh -c "$DEMO_CMD" </dev/null
rc=$?
echo
echo "demo: exit code $rc"
exit "$rc"
