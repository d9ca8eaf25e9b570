# make demo : set up the machine, build, install into ./lib, run a demonstration
# make test : set up the machine, then Rust checks and tests, R CMD check, a tiny benchmark run
# make bench: build, install, run the Rust load generator, then the R benchmarks (bench/RESULTS.md)
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
export MIRAI_TARGET_DIR := $(CURDIR)/target/rpkg
export R_LIBS := $(CURDIR)/lib
export NOT_CRAN := true
VERSION := $(shell sed -n 's/^Version: //p' DESCRIPTION)
TARBALL := mirai_$(VERSION).tar.gz
CHECK_DIR := target/rcheck

.PHONY: setup install demo test rust-test fuzz r-check document bench bench-smoke clean

setup:
	bash tools/setup.sh

lib:
	mkdir -p lib

install: setup lib
	R CMD INSTALL --no-multiarch --library=lib .

demo: install
	Rscript demo/local.R

rust-test: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

$(CHECK_DIR):
	mkdir -p $(CHECK_DIR)

r-check: setup lib $(CHECK_DIR)
	cp Cargo.lock src/rust/binding/Cargo.lock
	cd $(CHECK_DIR) && R CMD build --no-manual $(CURDIR)
	cd $(CHECK_DIR) && _R_CHECK_FORCE_SUGGESTS_=false R CMD check --no-manual $(TARBALL)
	bash tools/check-status.sh $(CHECK_DIR)/mirai.Rcheck/00check.log

fuzz: setup
	FUZZ_SECONDS=10 bash tools/fuzz.sh

test: rust-test fuzz r-check bench-smoke

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
	rm -rf target lib src/rust/target src/*.o src/*.so src/rust/binding/Cargo.lock
