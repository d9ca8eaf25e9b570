#!/usr/bin/env bash
# Installs what building, testing and demonstrating the package needs on a
# fresh Debian machine that has cargo but no R. Safe to run again: it installs
# only what is missing. R packages come from Debian (CRAN is not reachable).
set -euo pipefail

packages=(
  r-base-dev pandoc openssh-server openssl
  r-cran-testthat r-cran-withr r-cran-roxygen2 r-cran-knitr r-cran-rmarkdown
  r-cran-cli r-cran-later r-cran-promises r-cran-pkgbuild
  r-cran-future r-cran-callr r-cran-foreach r-cran-doparallel
  r-cran-httpuv r-cran-jsonlite curl
  nng-utils iptables
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "tools/setup.sh: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "tools/setup.sh: cargo not found on PATH (install Rust with rustup)" >&2; exit 1; }
command -v Rscript >/dev/null || { echo "tools/setup.sh: R did not install" >&2; exit 1; }
