# Outpost build and test entry points. `make test` is what CI and the README run.
GO        ?= go
TESTFLAGS ?= -race -count=1 -timeout 20m
BIN       := bin

.PHONY: all build cross test generate check-generated vet fmt-check self-contained bench soak demo

all: build

# -buildvcs=auto stamps the commit into `outpost version` when built from a
# checkout, whatever GOFLAGS says.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -o $(BIN)/ ./cmd/...

# The gateway must build for the Raspberry Pis it runs on: 32-bit
# (Raspberry Pi OS armhf) and 64-bit ARM Linux.
cross:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6 $(GO) build -o /dev/null ./cmd/outpost
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -o /dev/null ./cmd/outpost

# Unit and integration tests. Integration tests use the services named by
# OUTPOST_TEST_MQTT and OUTPOST_TEST_PG when set, else the embedded broker
# and SQLite.
test:
	$(GO) test $(TESTFLAGS) ./...

generate:
	$(GO) generate ./...

# Fails when committed generated code differs from what `go generate` makes.
check-generated:
	$(GO) generate ./...
	git diff --exit-code -- '*_gen.go'

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# A clone with nothing beside it must build and pass its tests: nothing in
# the project may read from outside the repository (a sibling checkout of
# shared data and the like).
self-contained:
	@if git grep -n -E '\.\./(\.\./)*shared/' -- . ':!.ci' ':!Makefile'; then echo "the files above refer to a directory outside the repository"; exit 1; fi

bench:
	scripts/bench

# 30 minutes at 10 000 readings/s; not part of test (docs/benchmarks.md).
soak:
	scripts/soak

demo:
	$(GO) run ./cmd/outpost-demo --duration 30s

.PHONY: release package-check binsize

# Release tarballs, .deb packages and SHA256SUMS in dist/ (docs/deploy.md).
# Refuses a tree with uncommitted changes unless ALLOW_DIRTY=1.
release:
	@if [ -z "$(VERSION)" ]; then echo "usage: make release VERSION=x.y.z [ALLOW_DIRTY=1]"; exit 2; fi
	VERSION=$(VERSION) ALLOW_DIRTY=$(ALLOW_DIRTY) GO=$(GO) scripts/release

# Builds the amd64 .debs, verifies the units with systemd-analyze and
# installs, upgrades and removes the packages in a throwaway root (root
# only: it mounts an overlay of / in a private mount namespace).
package-check:
	GO=$(GO) scripts/package-check

# Binary sizes per target and what each module costs (docs/benchmarks.md).
binsize:
	$(GO) run ./scripts/binsize -go $(GO) -breakdown outpost@armv7,outpost-ingest@amd64
