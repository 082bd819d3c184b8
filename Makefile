# The two commands a new user needs: `make demo` and `make test`. Each installs what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CONFIG ?= Release
# `make build TORCH=cuda` builds against TorchSharp's CUDA package on a GPU machine.
TORCH ?= cpu
TORCH_PACKAGE := $(if $(filter cuda,$(TORCH)),TorchSharp-cuda-linux,TorchSharp-cpu)
DOTNET_FLAGS := -c $(CONFIG) -p:TorchPackage=$(TORCH_PACKAGE) --nologo
export DOTNET_CLI_TELEMETRY_OPTOUT := 1
export DOTNET_NOLOGO := 1
# Test filter, e.g. `make test FILTER=FullyQualifiedName~Objectives`.
FILTER ?=

.PHONY: help setup prerequisites build sample-data test demo bench certs images clean

help:
	@echo "make demo   - set up, build, and pretrain the quickstart encoder-decoder on the sample data"
	@echo "make test   - set up, build, and run the whole test suite"
	@echo "make bench  - interleaved A/B ratios with spread and load: training MFU vs matmul rate (and RSS start/middle/end), cl100k decoder tokens/s full vs chunked loss, all-reduce busBW vs loopback, data-parallel step, enc-dec vs dec-only generation, checkpoint blocking and upload vs disk on Azurite, Azurite shard reads vs trainer tokens/s, scheduling 10,000 trials on 1,000 simulated workers, kill -9 to next step -> bench/results/"
	@echo "make setup  - only the set-up (C++ runtime, npm packages, sample shards)"
	@echo "make images - worker, orchestrator and Azurite container images with podman (debootstrap base, cached); TORCH=cuda for GPU"
	@echo "make certs  - a development CA and node certificates for a TLS cluster, in certs/ (CERTS=orchestrator worker ...)"

prerequisites:
	@bash infra/install/prerequisites.sh

build: prerequisites
	dotnet build Training.sln $(DOTNET_FLAGS) -v q

sample-data: build
	@bash infra/install/sample-data.sh

setup: prerequisites sample-data

test: setup
	@rm -rf tests/TestResults
	set -o pipefail; dotnet test tests/Tests.csproj $(DOTNET_FLAGS) --no-build \
	  --logger "trx;LogFileName=results.trx" --logger "console;verbosity=normal" \
	  $(if $(FILTER),--filter "$(FILTER)") ; status=$$?; \
	  bash infra/install/test-summary.sh tests/TestResults/results.trx; exit $$status

demo: setup
	bin/orchestrator submit experiments/quickstart.yaml
	@echo "see this run in the dashboard: bin/orchestrator dashboard --runs runs   (then open http://127.0.0.1:8090/dashboard/)"

bench: setup
	dotnet run --project bench/Bench.csproj $(DOTNET_FLAGS) -- --out bench/results

images: prerequisites
	TORCH=$(TORCH) CONFIG=$(CONFIG) bash infra/containers/build-images.sh

# Development TLS material (never for production): certs/ca.crt and certs/NODE.crt + .key per node.
CERTS ?= orchestrator worker
certs:
	@bash infra/install/certs.sh certs $(CERTS)

clean:
	dotnet clean Training.sln -c $(CONFIG) -v q
	rm -rf data/sample tests/TestResults
