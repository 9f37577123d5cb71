# The two commands of the README:
#   make demo   set up a fresh machine, build everything, run an example script
#   make test   set up, build, and run every test (the engine tests need Docker)
GO ?= go
export CGO_ENABLED = 0

.PHONY: build setup images demo test bench vet

build:
	$(GO) build -trimpath -o bin/ ./cmd/cronium ./cmd/cronium-agent

setup:
	./scripts/setup.sh

images: setup build
	./bin/cronium images build

demo: images
	./bin/cronium run examples/hello.py --input '{"name": "Cronium"}'

vet:
	test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(GO) vet ./...

test: images vet
	$(GO) test -count=1 -timeout 20m ./...
	# Restarts dockerd, so it runs alone, after everything else.
	$(GO) test -count=1 -timeout 5m -tags enginerestart -run TestEngineRestart ./nettest

bench: images
	./bin/cronium bench cold --runs 20
	./bin/cronium bench warm --runs 30
	./bin/cronium bench network --runs 20
