#!/usr/bin/env bash
# Current R (4.5, from Debian 13 "trixie") in a chroot, for building and
# checking the package where most R users are.
#
#   tools/r45.sh make                 make the chroot if it is absent (2-5 min)
#   tools/r45.sh run [--offline] CMD  run CMD (through bash -c) inside it
#
# The chroot lives in $MIRAI_R45_ROOT (default /var/cache/mirai/r45-trixie).
# It uses the Debian mirror that this machine's apt already uses. `run`
# works in a private mount namespace: the bind mounts it makes (/proc, /dev,
# the Rust toolchain, this checkout at its own path) vanish when CMD ends,
# so nothing is left mounted. With --offline, CMD also runs in a network
# namespace of its own, with loopback only.
set -euo pipefail

root="${MIRAI_R45_ROOT:-/var/cache/mirai/r45-trixie}"
here="$(cd "$(dirname "$0")/.." && pwd)"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

# What the tests and vignettes need, as Debian 13 names it.
packages=(
  r-base-dev pandoc qpdf devscripts openssh-server openssl nng-utils iproute2 procps xz-utils
  r-cran-testthat r-cran-withr r-cran-roxygen2 r-cran-knitr r-cran-rmarkdown
  r-cran-cli r-cran-later r-cran-promises r-cran-shiny r-cran-pkgbuild
  r-cran-future r-cran-callr r-cran-foreach r-cran-doparallel
)

mirror() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
      /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' \
      /etc/apt/sources.list)
  fi
  if [ -z "$uri" ]; then
    echo "tools/r45.sh: no Debian mirror found in this machine's apt sources" >&2
    exit 1
  fi
  echo "$uri"
}

# Runs CMD inside the chroot; the mounts live only as long as CMD does.
enter() {
  local net=()
  if [ "$1" = "--offline" ]; then net=(--net); shift; fi
  local cmd="$1"
  $sudo unshare --mount --propagation private "${net[@]}" bash -s -- "$root" "$here" "$HOME" "$cmd" <<'INSIDE'
set -euo pipefail
root="$1"; here="$2"; home="$3"; cmd="$4"
ip link set lo up 2>/dev/null || true
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/dev/shm"
for dir in "$home/.cargo" "$home/.rustup" "$here"; do
  if [ -d "$dir" ]; then
    mkdir -p "$root$dir"
    mount --bind "$dir" "$root$dir"
  fi
done
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
exec chroot "$root" /usr/bin/env -i HOME="$home" TERM=dumb LANG=C.UTF-8 \
  PATH="$home/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  RUSTUP_HOME="$home/.rustup" CARGO_HOME="$home/.cargo" \
  bash -c "cd '$here' && $cmd"
INSIDE
}

make_root() {
  if [ -x "$root/usr/bin/Rscript" ] && [ -f "$root/.mirai-ready" ] &&
     cmp -s "$root/.mirai-ready" <(printf '%s\n' "${packages[@]}"); then
    return 0
  fi
  if ! command -v debootstrap >/dev/null; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  local started=$SECONDS
  if [ ! -x "$root/usr/bin/apt-get" ]; then
    local uri
    uri=$(mirror)
    echo "tools/r45.sh: making a Debian 13 chroot in $root from $uri"
    $sudo rm -rf "$root"
    $sudo mkdir -p "$root"
    $sudo debootstrap --variant=minbase trixie "$root" "$uri" >/tmp/mirai-debootstrap.log 2>&1 || {
      tail -n 30 /tmp/mirai-debootstrap.log >&2
      exit 1
    }
  fi
  # cargo inside reaches the crate registry with the machine's CA bundle.
  $sudo mkdir -p "$root/etc/ssl/certs"
  $sudo cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  echo "tools/r45.sh: installing R 4.5 and the packages the tests need"
  enter "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${packages[*]} >/dev/null"
  printf '%s\n' "${packages[@]}" | $sudo tee "$root/.mirai-ready" >/dev/null
  echo "tools/r45.sh: chroot ready in $((SECONDS - started)) s ($(enter 'R --version | head -n 1'))"
}

case "${1:-}" in
  make) make_root ;;
  run)
    shift
    make_root
    if [ "${1:-}" = "--offline" ]; then enter --offline "${*:2}"; else enter "$*"; fi
    ;;
  *)
    echo "usage: tools/r45.sh make | run [--offline] COMMAND" >&2
    exit 2
    ;;
esac
