# The two commands of the README:
#   make demo   set up a fresh machine, build everything, run an example script
#   make test   set up, build, and run every test (the engine tests need Docker)
GO ?= go
export CGO_ENABLED = 0

.PHONY: build setup images k8s demo test bench vet fuzz soak

build:
	$(GO) build -trimpath -o bin/ ./cmd/cronium ./cmd/cronium-agent

setup:
	./scripts/setup.sh

# The runtime images' references (not the builder's).
RUNTIME_IMAGES = $$(./bin/cronium images list -o json | python3 -c 'import json,sys; print(" ".join(i["image"] for i in json.load(sys.stdin)["items"] if i["language"] != "(builder)"))')

images: setup build
	./bin/cronium images build
	# The podman engine's tests use the same images, copied into Podman.
	./scripts/podman-images.sh $(RUNTIME_IMAGES)

# The single-node Kubernetes cluster the kubernetes engine's tests run on
# (binaries built once into /var/cache/cronium/k8s, ~14 min), with the
# runtime images imported into its node. `./scripts/k8s-cluster.sh down`
# stops it and undoes its host changes.
k8s: images
	./scripts/k8s-cluster.sh up
	./scripts/k8s-cluster.sh import $(RUNTIME_IMAGES)

demo: images
	./bin/cronium run examples/hello.py --input '{"name": "Cronium"}'

vet:
	test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(GO) vet ./...

test: images vet k8s
	$(GO) test -count=1 -timeout 25m ./... || { ./scripts/k8s-cluster.sh down; exit 1; }
	# The network policies again, on Kubernetes Pods.
	CRONIUM_NETTEST_ENGINE=kubernetes $(GO) test -count=1 -timeout 10m ./nettest || { ./scripts/k8s-cluster.sh down; exit 1; }
	./scripts/k8s-cluster.sh down
	# Restarts dockerd, so it runs alone, after everything else.
	$(GO) test -count=1 -timeout 8m -tags enginerestart -run TestEngineRestart ./nettest
	$(MAKE) fuzz FUZZTIME=20000x FUZZTIME_SLOW=1000x

# Every fuzz target for a bounded time or number of inputs (their seeds also
# run in `go test`). CI counts inputs: a time limit can end a worker mid-input
# ("context deadline exceeded") on a loaded machine.
FUZZTIME ?= 30s
FUZZTIME_SLOW ?= $(FUZZTIME)
FUZZ_TARGETS = .:FuzzParseSize .:FuzzSizeString .:FuzzParseDuration .:FuzzParseBandwidth \
	.:FuzzParseNames .:FuzzLimitsBudget .:FuzzEventNormalize ./schedule:FuzzParse \
	./schedule:FuzzNextFarFutureRegression ./schedule:FuzzNextLikeCronie ./agent:FuzzReadFrame ./agent:FuzzFrameRoundTrip \
	./agent:FuzzOutput ./redact:FuzzRedactor ./redact:FuzzRedactorStream ./strictjson:FuzzDecode
FUZZ_SLOW_TARGETS = ./cmd/cronium:FuzzReadEvents
fuzz:
	@set -e; for t in $(FUZZ_TARGETS) $(FUZZ_SLOW_TARGETS:%=slow:%); do \
		ft=$(FUZZTIME); case $$t in slow:*) t=$${t#slow:}; ft=$(FUZZTIME_SLOW);; esac; \
		pkg=$${t%%:*}; name=$${t##*:}; echo "== fuzz $$pkg $$name ($$ft)"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$$ft -parallel 2 $$pkg; done

# The long soak: 10,000 executions through cronium serve (CI runs 1,000).
soak: images
	CRONIUM_SOAK=10000 $(GO) test -count=1 -timeout 3h -run '^TestSoak$$' -v ./cmd/cronium

bench: images
	./bin/cronium bench cold --runs 20
	./bin/cronium bench warm --runs 30
	./bin/cronium bench network --runs 20
