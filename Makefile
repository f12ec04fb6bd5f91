# sandbox: build, test and bench entry points.
#
#   make            build bin/sandbox and bin/sandbox-store (static, CGO_ENABLED=0)
#   make test       unit tests as the current user (go test ./...)
#   make lint       gofmt, go vet, staticcheck, shellcheck
#   make ci         as root: setup, build, lint, every package's tests run as
#                   the unprivileged test user with SANDBOX_TEST_STRICT=1
#   make demo       as root (or any user): one sandbox run, shown
#   make bench      as root: hyperfine, sandbox against bwrap, unshare, true
#   make clean

SHELL := /bin/bash
# The Go toolchain lives here on the project's machines; CI's PATH may lack it.
export PATH := $(PATH):/usr/local/go/bin

GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Build tags of the store helper, and of every go command that compiles
# its packages: hack/build-tags, which hack/lint.sh, hack/ci.sh and
# test/image read too. containers_image_openpgp: signatures through a Go
# OpenPGP instead of gpgme (cgo, libgpgme-dev); exclude_graphdriver_btrfs
# and exclude_graphdriver_devicemapper leave out the two graph drivers
# that need C headers (libbtrfs-dev, libdevmapper-dev) for the only one
# the store uses, overlay. The tags change nothing in bin/sandbox.
STORE_TAGS := $(shell cat hack/build-tags)
export GOFLAGS := $(strip $(shell $(GO) env GOFLAGS) -tags=$(STORE_TAGS))

.DEFAULT_GOAL := build
.PHONY: build test lint ci demo bench clean

# Static: a cgo-linked binary starts about 3 ms slower, and start-up is on
# every run's critical path. The store helper is built beside it: the CLI
# finds it in its own directory.
build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/sandbox ./cmd/sandbox
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/sandbox-store ./cmd/sandbox-store

test:
	$(GO) test ./...

lint:
	bash hack/lint.sh

ci:
	bash hack/ci.sh

demo:
	bash hack/demo.sh

bench:
	bash bench/run.sh

clean:
	rm -rf bin bench/out
