# Trustee — see README.md. `make help` lists the targets.

GO      ?= go
# The Go release that builds, tests and checks Trustee: the newest patch of
# Go 1.26, whose standard library has no known vulnerability in code
# Trustee calls (govulncheck, `make lint`). A go command of another version
# fetches it once from the module proxy.
GOTOOLCHAIN ?= go1.26.11
export GOTOOLCHAIN
BIN     := bin
KTS     := $(BIN)/kts
# The benchmark build of kts (make bench, docs/PERFORMANCE.md).
KTS_BENCH := $(BIN)/kts-bench
PKGS    := ./...
# Fuzz time per target for `make fuzz`.
FUZZTIME ?= 30s
# The API types, and where their CRDs are generated (`make generate manifests`).
API_PKGS := ./api/...
CRD_DIR  := config/crd/bases
# Where the operator's ClusterRole (role.yaml) is generated from the RBAC
# markers in controllers/.
RBAC_DIR := config/rbac
# The chart's copies of the CRDs and of the operator's rules (hack/sync-chart.sh),
# and the copies of the alerting rules and dashboard (hack/sync-monitoring.sh).
CHART_GENERATED := charts/trustee-operator/charts/crds/crds charts/trustee-operator/templates/_rules.tpl \
	charts/trustee-operator/files config/monitoring/prometheusrule.yaml
GENERATED_SUMS := find api $(CRD_DIR) docs/CRD-REFERENCE.md $(RBAC_DIR)/role.yaml $(CHART_GENERATED) -type f -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 sha256sum

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/kts and its tool links (keytrustee-orgtool, ktadmin, ktbackup.sh, kubectl-trustee)
	@mkdir -p $(BIN)
	$(GO) build -o $(KTS) .
	@ln -sf kts $(BIN)/keytrustee-orgtool
	@ln -sf kts $(BIN)/ktadmin
	@ln -sf kts $(BIN)/ktbackup.sh
	@ln -sf kts $(BIN)/kubectl-trustee

.PHONY: run
run: build ## Run Trustee locally (kts dev): the pair, a demo organization, mailpit for its mail
	@# mailpit is built once into a cache (a few minutes the first time); without it the demo runs without mail.
	$(KTS) dev --dir .kts-dev --mailpit "$$(bash hack/build-mailpit.sh 2>/dev/null || true)"

.PHONY: deps
deps: ## Install the Debian packages the tests need (when missing)
	bash hack/install-test-deps.sh

.PHONY: test
test: deps verify build ## Install missing packages, check what `make verify` checks, then run every test
	$(GO) test -count=1 -timeout 30m $(PKGS)
	@# A build without cgo has no PKCS#11 and must say so.
	CGO_ENABLED=0 $(GO) build -o /dev/null .
	CGO_ENABLED=0 $(GO) test -count=1 ./server/hsm/

.PHONY: test-e2e
test-e2e: deps build ## Run the operator's end-to-end tests only: the pair from the operator's objects, deployment artifacts, a whole simulated cluster
	$(GO) test -count=1 -timeout 30m ./test/operator/ ./test/deploy/ ./test/controlplane/ ./test/cluster/

.PHONY: generate
generate: ## Generate the deepcopy code of api/ (controller-gen, built once into a cache)
	@cg=$$(bash hack/build-controller-gen.sh) && echo "controller-gen object paths=$(API_PKGS)" && \
	  "$$cg" object paths=$(API_PKGS)

.PHONY: manifests
manifests: ## Generate the CRDs (config/crd/bases) from api/, the operator's ClusterRole (config/rbac/role.yaml) from controllers/' RBAC markers, the chart's copies of both, the copies of the alerting rules and dashboard (config/monitoring), and docs/CRD-REFERENCE.md
	@cg=$$(bash hack/build-controller-gen.sh) && echo "controller-gen crd paths=$(API_PKGS) output:crd:dir=$(CRD_DIR)" && \
	  rm -f $(CRD_DIR)/*.yaml && "$$cg" crd paths=$(API_PKGS) output:crd:dir=$(CRD_DIR) && \
	  echo "controller-gen rbac:roleName=trustee-operator paths=./controllers/... output:rbac:dir=$(RBAC_DIR)" && \
	  "$$cg" rbac:roleName=trustee-operator paths=./controllers/... output:rbac:dir=$(RBAC_DIR)
	bash hack/sync-chart.sh
	bash hack/sync-monitoring.sh
	$(GO) run ./hack/crdref $(CRD_DIR) docs/CRD-REFERENCE.md

.PHONY: verify
verify: ## Check formatting, vet, module tidiness, and that generated code, CRDs, ClusterRole and chart copies are up to date
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'run gofmt -w on the files above'; exit 1; }
	$(GO) vet $(PKGS)
	@# The benchmark build (make bench) compiles files kts leaves out.
	$(GO) vet -tags benchunaudited ./cmd/... ./bench/... ./server/daemon/...
	$(GO) mod verify
	@# Regenerate and compare: works on a clean clone (CI) and on a work tree with changes alike.
	@sums=$$(mktemp); trap 'rm -f "$$sums"' EXIT; $(GENERATED_SUMS) >"$$sums"; \
	$(MAKE) --no-print-directory generate manifests || exit 1; \
	changed=$$($(GENERATED_SUMS) | diff "$$sums" - | awk '/^[<>]/ { print $$3 }' | sort -u); \
	test -z "$$changed" || { echo "$$changed"; \
	  echo 'make generate manifests changed the files above: the generated code, CRDs, ClusterRole or chart copies were stale; commit the regenerated files'; exit 1; }

.PHONY: lint
lint: verify ## Static checks (those of verify) and known vulnerabilities in what the code calls (govulncheck)
	@# govulncheck from the Go module proxy; its database is vuln.go.dev, or a copy from the proxy (hack/govulncheck.sh).
	bash hack/govulncheck.sh

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

.PHONY: bench
bench: deps ## Build bin/kts-bench (kts with the benchmark and its audit-off listener, tag benchunaudited) and measure put/get against the bare TLS and raw PostgreSQL limits, backup/restore, the HSM, and the operator's memory with the cluster's Secrets (docs/PERFORMANCE.md)
	@mkdir -p $(BIN)
	$(GO) build -tags benchunaudited -o $(KTS_BENCH) .
	$(KTS_BENCH) bench --scratch
	$(KTS_BENCH) bench backup
	$(KTS_BENCH) bench hsm
	$(GO) test -run '^$$' -bench OperatorMemory -benchtime 1x ./test/deploy/

.PHONY: clean
clean: ## Remove build output (not .kts-dev state)
	rm -rf $(BIN)
