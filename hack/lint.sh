#!/usr/bin/env bash
# hack/lint.sh: gofmt, go vet, staticcheck and shellcheck; runs every check
# and fails at the end if any failed.
#
# staticcheck is installed into bin/tools at a pinned version (checked to
# resolve through the module proxy); STATICCHECK_VERSION=latest to try newer.
# If it cannot be installed, lint says so and goes on with the other checks.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
PATH=$PATH:/usr/local/go/bin
STATICCHECK_VERSION=${STATICCHECK_VERSION:-v0.8.2}   # staticcheck 2026.2.2
TOOLS=$PWD/bin/tools

failed=()
say() { printf 'lint: %s\n' "$*"; }

# The store packages build only with their tags (see the Makefile).
GOFLAGS="$(go env GOFLAGS) -tags=$(cat hack/build-tags)"
export GOFLAGS

# gofmt: every Go file outside bin/, .git/ and testdata/.
mapfile -t gofiles < <(find . \( -path ./bin -o -path ./.git -o -name testdata -o -path ./bench/out \) -prune \
	-o -name '*.go' -type f -print)
if [[ ${#gofiles[@]} -gt 0 ]]; then
	unformatted=$(gofmt -l "${gofiles[@]}")
	if [[ -n $unformatted ]]; then
		say "gofmt: these files need gofmt -w:"
		printf '%s\n' "$unformatted" | sed 's/^/  /'
		failed+=(gofmt)
	else
		say "gofmt: ok (${#gofiles[@]} files)"
	fi
fi

if go vet ./...; then
	say "go vet: ok"
else
	failed+=("go vet")
fi

sc=$TOOLS/staticcheck
want="honnef.co/go/tools@$STATICCHECK_VERSION"
if [[ -x $sc && $STATICCHECK_VERSION != latest ]] &&
	! go version -m "$sc" 2>/dev/null | grep -q "mod[[:space:]]*honnef.co/go/tools[[:space:]]*$STATICCHECK_VERSION"; then
	rm -f "$sc"   # another version: reinstall the pinned one
fi
if [[ ! -x $sc || $STATICCHECK_VERSION == latest ]]; then
	say "installing staticcheck $want into bin/tools"
	if ! GOBIN=$TOOLS go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"; then
		say "WARNING: staticcheck could not be installed (module proxy?); ran gofmt and go vet only"
	fi
fi
if [[ -x $sc ]]; then
	if "$sc" ./...; then
		say "staticcheck: ok"
	else
		failed+=(staticcheck)
	fi
fi

# Shell scripts: the ones we own.
mapfile -t scripts < <(ls hack/*.sh bench/*.sh .ci/run 2>/dev/null)
if command -v shellcheck >/dev/null; then
	if shellcheck "${scripts[@]}"; then
		say "shellcheck: ok (${#scripts[@]} scripts)"
	else
		failed+=(shellcheck)
	fi
else
	say "WARNING: shellcheck not installed (hack/setup.sh installs it); shell scripts not checked"
fi

if [[ ${#failed[@]} -gt 0 ]]; then
	say "FAILED: ${failed[*]}"
	exit 1
fi
say "all checks passed"
