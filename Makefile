# agentsecrets — see README.md. `make test` is the whole suite (what CI runs).
GO      ?= go
BIN     ?= bin/agentsecrets

.PHONY: build install test demo schema man lint bench clean release-snapshot release-check

# Built without cgo, as the release binaries are: a cgo binary loads the C
# library and starts about a millisecond later, which every one-shot
# command pays (internal/osuser keeps user lookups right without it).
# agentsecrets-server (the sync server, which `agentsecrets server` hands
# over to) is built and installed beside it.
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) .
	CGO_ENABLED=0 $(GO) build -o $(dir $(BIN))agentsecrets-server ./cmd/agentsecrets-server

install:
	CGO_ENABLED=0 $(GO) install . ./cmd/agentsecrets-server

test:
	scripts/test

demo: build
	scripts/demo $(BIN)

schema:
	$(GO) test ./commands -run '^TestSchemaFiles(Server)?$$' -count=1 -update-schema

man:
	$(GO) test ./commands -run '^TestManPage$$' -count=1 -update-man

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

bench:
	scripts/bench

# The release artifacts for all five platforms into dist/, never published;
# AGENTSECRETS_SIGNING_KEY=path signs checksums.txt (docs/release.md).
release-snapshot:
	scripts/release

# Builds the release twice into temp dirs and checks it (e2e/release_test.go).
release-check:
	AGENTSECRETS_TEST_RELEASE=1 $(GO) test ./e2e -run '^TestReleaseSnapshot$$' -count=1 -timeout 30m -v

clean:
	rm -rf bin
