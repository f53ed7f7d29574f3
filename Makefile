# agentsecrets — see README.md. `make test` is the whole suite (what CI runs).
GO      ?= go
BIN     ?= bin/agentsecrets

.PHONY: build install test demo schema man lint bench clean

build:
	$(GO) build -o $(BIN) .

install:
	$(GO) install .

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

clean:
	rm -rf bin
