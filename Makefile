# make demo : set up the machine, build, install into ./lib, run a demonstration
# make test : set up the machine, then Rust checks and tests, R CMD check on R 4.2 and
#             on R 4.5 (a Debian 13 chroot), both offline from the vendored crates and
#             each with a private single-node Slurm and Grid Engine (tools/slurm.sh,
#             tools/sge.sh), every example of man/ run as a user would, a tiny benchmark run
# make bench: build, install, run the Rust load generator, then the R benchmarks (bench/RESULTS.md)
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
export MIRAI_TARGET_DIR := $(CURDIR)/target/rpkg
export R_LIBS := $(CURDIR)/lib
export NOT_CRAN := true
VERSION := $(shell sed -n 's/^Version: //p' DESCRIPTION)
TARBALL := mirai_$(VERSION).tar.gz
CHECK_DIR := target/rcheck
CHECK45_DIR := target/rcheck45
VENDOR := src/rust/vendor.tar.xz
# R CMD check as CRAN runs it, but for what needs the internet (CRAN's
# incoming checks, the clock, URLs): the checks run with no network.
CRAN_OFFLINE := _R_CHECK_CRAN_INCOMING_REMOTE_=false _R_CHECK_SYSTEM_CLOCK_=0

.PHONY: setup install demo test rust-test fuzz tarball r-check r45-check examples document bench bench-smoke clean

setup:
	bash tools/setup.sh

lib:
	mkdir -p lib

install: setup lib $(VENDOR)
	R CMD INSTALL --no-multiarch --library=lib .

demo: install
	Rscript demo/local.R

rust-test: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

$(CHECK_DIR) $(CHECK45_DIR):
	mkdir -p $@

# The crates' sources for an offline, locked build from the package tarball.
$(VENDOR): Cargo.lock src/rust/binding/Cargo.toml src/rust/core/Cargo.toml tools/vendor.sh
	bash tools/vendor.sh

tarball: setup $(VENDOR) $(CHECK_DIR)
	cd $(CHECK_DIR) && R CMD build --no-manual $(CURDIR)

# R 4.2 (this machine's): install from the tarball and check, with no network.
# A private single-node Slurm and Grid Engine run in the same network
# namespace as the check, so that their jobs' daemons reach the tests' hosts
# on loopback; they are stopped when the check ends, whatever its outcome.
SCHEDULERS := bash $(CURDIR)/tools/slurm.sh run bash $(CURDIR)/tools/sge.sh run
r-check: tarball lib
	bash tools/slurm.sh install
	bash tools/sge.sh install
	cd $(CHECK_DIR) && $(CURDIR)/tools/offline.sh $(SCHEDULERS) \
	  env _R_CHECK_FORCE_SUGGESTS_=false R CMD check --no-manual $(TARBALL)
	bash tools/check-status.sh $(CHECK_DIR)/mirai.Rcheck/00check.log

# R 4.5 (Debian 13, in a chroot): build the tarball there, then install it,
# run the tests and check it as CRAN would, with no network.
r45-check: $(VENDOR) $(CHECK45_DIR)
	bash tools/r45.sh make
	bash tools/r45.sh run "cd $(CHECK45_DIR) && MIRAI_TARGET_DIR=$(CURDIR)/target/rpkg45 R CMD build --no-manual $(CURDIR)"
	bash tools/r45.sh run --offline "cd $(CHECK45_DIR) && MIRAI_TARGET_DIR=$(CURDIR)/target/rpkg45 NOT_CRAN=true \
	  $(SCHEDULERS) env $(CRAN_OFFLINE) R CMD check --as-cran --no-manual $(TARBALL)"
	bash tools/check-status.sh $(CHECK45_DIR)/mirai.Rcheck/00check.log

fuzz: setup
	FUZZ_SECONDS=10 bash tools/fuzz.sh

# Every example of the reference pages, as a user would run it at the console
# (also the parts shown only in interactive sessions), each in a fresh R,
# with the private schedulers running (cluster_config() submits to Slurm).
examples: install
	bash tools/slurm.sh install
	bash tools/sge.sh install
	$(SCHEDULERS) bash $(CURDIR)/tools/run-examples.sh

test: rust-test fuzz r-check r45-check examples bench-smoke

document: install
	Rscript -e 'roxygen2::roxygenise()'

# The load generator writes its figures to target/loadgen.tsv (an absolute
# path: cargo runs a bench from its crate's directory); if it fails, the R
# suite still runs and its report says the load generator was not run.
LOADGEN_TSV := $(CURDIR)/target/loadgen.tsv

bench: install
	rm -f $(LOADGEN_TSV)
	cargo bench -p mirai-core --bench loadgen -- --floor --out $(LOADGEN_TSV) || echo "load generator failed: its section of the report will say 'not run'"
	BENCH_LOADGEN=$(LOADGEN_TSV) Rscript bench/run.R

bench-smoke: install
	R_LIBS=$(CURDIR)/lib Rscript bench/smoke.R

clean:
	rm -rf target lib src/rust/target src/*.o src/*.so src/rust/binding/Cargo.lock $(VENDOR)
	sh cleanup
