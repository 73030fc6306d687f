#!/usr/bin/env bash
# Idempotent host set-up for kspec: Debian packages, a kernel-capable Rust toolchain and bindgen-cli.
# Fast no-op when everything is present. Prints which Rust toolchain the kernel build will use.
set -euo pipefail

CACHE="${KSPEC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kspec}"
BINDGEN_VERSION=0.73.2
BINDGEN_ROOT="$CACHE/tools/bindgen-$BINDGEN_VERSION"
LLVM_VERSION=19

say() { printf 'setup-host: %s\n' "$*"; }
die() { printf 'setup-host: error: %s\n' "$*" >&2; exit 1; }

PACKAGES=(
  make gcc flex bison bc cpio kmod xz-utils libelf-dev libssl-dev
  "clang-$LLVM_VERSION" "lld-$LLVM_VERSION" "llvm-$LLVM_VERSION" "libclang1-$LLVM_VERSION" "libclang-$LLVM_VERSION-dev"
  qemu-system-x86 busybox-static
  curl gnupg
)

# --- platform checks ---------------------------------------------------------------------------
if [ ! -r /etc/os-release ] || ! grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release; then
  die "kspec's host set-up supports Debian 12+ and Ubuntu 22.04+ only.
  On another distribution install by hand: make gcc flex bison bc cpio kmod xz libelf/openssl headers,
  clang/lld/llvm >= 17 with libclang, qemu-system-x86_64, a static busybox, rustc >= 1.85 with rust-src,
  then: cargo install bindgen-cli --version $BINDGEN_VERSION --locked --root $BINDGEN_ROOT"
fi
. /etc/os-release
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO="sudo"
  else
    die "must run as root (or with password-less sudo). Run:
  sudo $0"
  fi
fi

# --- Debian packages -----------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Debian: the kernel-capable rustc comes from rustc-web (1.96 with rust-src). Elsewhere rustup.
if [ "$ID" = debian ]; then
  for p in rustc-web rust-web-src libstd-rust-web-dev linux-source-6.12; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
fi
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed. Run by hand to see why:
  $SUDO apt-get install ${missing[*]}"
fi

# --- Rust toolchain for the kernel (needs rust-src) ------------------------------------------------
kernel_rustc=""
if [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/src/rust/library ]; then
  kernel_rustc=/usr/bin/rustc
elif command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rust-src' || rustup component add rust-src >/dev/null
  kernel_rustc="$(rustup which rustc)"
fi
[ -n "$kernel_rustc" ] || die "no rustc with rust-src found. On Debian: apt-get install rustc-web rust-web-src; elsewhere: rustup component add rust-src"

# --- bindgen-cli in the cache (Debian's is too old for 6.12+) ------------------------------------
if ! "$BINDGEN_ROOT/bin/bindgen" --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
  say "installing bindgen-cli $BINDGEN_VERSION into $BINDGEN_ROOT (about 75 s)"
  command -v cargo >/dev/null || die "cargo is needed to install bindgen-cli (install rustup or Debian's cargo)"
  LIBCLANG_PATH="/usr/lib/llvm-$LLVM_VERSION/lib" cargo install -q bindgen-cli --version "$BINDGEN_VERSION" \
    --locked --root "$BINDGEN_ROOT" || die "cargo install bindgen-cli failed"
fi

# --- versions ----------------------------------------------------------------------------------
command -v "clang-$LLVM_VERSION" >/dev/null || die "clang-$LLVM_VERSION missing after install"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing after install"
[ -x /bin/busybox ] || die "/bin/busybox missing after install"
command -v cargo >/dev/null || die "cargo (host Rust toolchain) not found; install rustup"
say "kernel rustc: $kernel_rustc ($("$kernel_rustc" --version))"
say "bindgen: $("$BINDGEN_ROOT/bin/bindgen" --version)"
say "clang: $("clang-$LLVM_VERSION" --version | head -1)"
say "qemu: $(qemu-system-x86_64 --version | head -1)"
say "ready"
