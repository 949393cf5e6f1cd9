#!/usr/bin/env bash
# make arm-setup: an aarch64 environment under qemu-user, from the Debian and PyPI registries only.
#   ARM_DIR/sysroot   Debian's arm64 python3.11 and the libraries it needs (extracted .debs, no dpkg install)
#   ARM_DIR/site      aarch64 wheels: ai-edge-litert (the device runtime), numpy and OpenCV (pre/post-processing counts)
#   ARM_DIR/plugin    libinsn.so, a QEMU TCG plugin that counts executed guest instructions
# Idempotent: each step is skipped when its result exists. Root is needed only for apt-get.
set -euo pipefail
ARM_DIR=${ARM_DIR:-.arm}
HOST_PY=${HOST_PY:-.venv/bin/python}
LITERT=${LITERT:-ai-edge-litert==2.3.0}
NUMPY=${NUMPY:-numpy==1.26.4}
OPENCV=${OPENCV:-opencv-python-headless==4.11.0.86}
ARM_DEBS="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libstdc++6 libgcc-s1 zlib1g
  libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5 libuuid1 libsqlite3-0 libncursesw6 libtinfo6 libreadline8"
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$ARM_DIR"
ARM_DIR=$(cd "$ARM_DIR" && pwd)

say() { echo "arm-setup: $*"; }
need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "arm-setup: $1 needs root for apt-get; run 'sudo make arm-setup' (or install it yourself: $2)" >&2
    exit 2
  fi
}

# 1. host tools: qemu-user (7.2 has TCG plugin support), a C compiler and glib's headers for the plugin
if ! command -v qemu-aarch64 >/dev/null || ! pkg-config --exists glib-2.0 2>/dev/null || ! command -v gcc >/dev/null; then
  need_root "installing qemu-user and libglib2.0-dev" "apt-get install qemu-user libglib2.0-dev pkg-config gcc"
  say "installing qemu-user, libglib2.0-dev"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user libglib2.0-dev pkg-config gcc xz-utils >/dev/null
fi

# 2. the arm64 sysroot: Debian's own python3.11 for arm64, extracted (installing it would clash with the host's)
if [ ! -x "$ARM_DIR/sysroot/usr/bin/python3.11" ]; then
  need_root "downloading arm64 packages" "dpkg --add-architecture arm64 && apt-get update"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then dpkg --add-architecture arm64; fi
  apt-get update -qq
  rm -rf "$ARM_DIR/debs" "$ARM_DIR/sysroot.partial"
  mkdir -p "$ARM_DIR/debs" "$ARM_DIR/sysroot.partial"
  say "downloading arm64 python3.11 and its libraries"
  (cd "$ARM_DIR/debs" && apt-get download -qq -o APT::Sandbox::User=root $(for p in $ARM_DEBS; do echo "$p:arm64"; done))
  for deb in "$ARM_DIR"/debs/*.deb; do dpkg-deb -x "$deb" "$ARM_DIR/sysroot.partial"; done
  mkdir -p "$ARM_DIR/sysroot.partial/proc"
  rm -rf "$ARM_DIR/sysroot" && mv "$ARM_DIR/sysroot.partial" "$ARM_DIR/sysroot"
fi

# 3. aarch64 wheels of the device runtime and numpy (several manylinux tags: the 2.3.0 wheel is tagged manylinux_2_27 only)
if [ ! -d "$ARM_DIR/site/ai_edge_litert" ]; then
  say "downloading aarch64 wheels: $LITERT $NUMPY"
  rm -rf "$ARM_DIR/site.partial"
  "$HOST_PY" -m pip install -q --no-warn-conflicts --target "$ARM_DIR/site.partial" --python-version 3.11 --only-binary=:all: \
    --platform manylinux_2_17_aarch64 --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64 \
    --platform manylinux2014_aarch64 \
    "$LITERT" "$NUMPY"
  rm -rf "$ARM_DIR/site" && mv "$ARM_DIR/site.partial" "$ARM_DIR/site"
fi

# 3b. OpenCV for aarch64 (the simulator's pre- and post-processing is counted on the target core like the
# inference: device_sim.arm.prepost); without its dependencies, so the runtime's numpy stays
if [ ! -d "$ARM_DIR/site/cv2" ]; then
  say "downloading the aarch64 wheel: $OPENCV"
  "$HOST_PY" -m pip install -q --no-deps --no-warn-conflicts --target "$ARM_DIR/site" --python-version 3.11 \
    --only-binary=:all: --platform manylinux_2_17_aarch64 --platform manylinux_2_28_aarch64 \
    --platform manylinux2014_aarch64 "$OPENCV"
fi

# 4. the instruction-counting plugin, built against qemu-plugin.h from Debian's qemu source package
# (rebuilt whenever device_sim/arm/insn_count.c changed: the copy beside the .so is what it was built from)
if [ ! -f "$ARM_DIR/plugin/libinsn.so" ] || ! cmp -s "$here/device_sim/arm/insn_count.c" "$ARM_DIR/plugin/insn_count.c"; then
  if [ ! -f "$ARM_DIR/plugin/qemu-plugin.h" ]; then
    need_root "fetching qemu's source package (for qemu-plugin.h)" "a deb-src entry and apt-get source qemu"
    src=/etc/apt/sources.list.d/edgevit-qemu-src.sources     # removed again below
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
      "$(. /etc/os-release && echo "$VERSION_CODENAME")" /usr/share/keyrings/debian-archive-keyring.gpg > "$src"
    apt-get update -qq
    rm -rf "$ARM_DIR/src" && mkdir -p "$ARM_DIR/src" "$ARM_DIR/plugin"
    say "downloading qemu's source package for its plugin header"
    (cd "$ARM_DIR/src" && apt-get source --download-only -qq -o APT::Sandbox::User=root qemu >/dev/null)
    tar -xJf "$(ls "$ARM_DIR"/src/qemu_*.orig.tar.xz | head -1)" -C "$ARM_DIR/src" --wildcards '*/include/qemu/qemu-plugin.h'
    cp "$(find "$ARM_DIR/src" -name qemu-plugin.h | head -1)" "$ARM_DIR/plugin/qemu-plugin.h"
    rm -rf "$ARM_DIR/src" "$src"
    apt-get update -qq
  fi
  gcc -shared -fPIC -O2 -I"$ARM_DIR/plugin" $(pkg-config --cflags glib-2.0) \
    "$here/device_sim/arm/insn_count.c" -o "$ARM_DIR/plugin/libinsn.so.partial"
  mv "$ARM_DIR/plugin/libinsn.so.partial" "$ARM_DIR/plugin/libinsn.so"
  cp "$here/device_sim/arm/insn_count.c" "$ARM_DIR/plugin/insn_count.c"
fi

# 5. byte-compile the guest's Python once (3.11 .pyc files are the same on every platform): Debian
# compiles them in postinst, which an extracted .deb never runs, and a guest that compiled them itself
# would spend millions of instructions in its first run only (the instruction counts must repeat).
"$HOST_PY" -m compileall -q -j 0 "$ARM_DIR/sysroot/usr/lib/python3.11" "$ARM_DIR/site" >/dev/null 2>&1 || true

# 6. check: the aarch64 python imports the runtime under emulation
"$HOST_PY" -m edgevit_cli target --check --arm-dir "$ARM_DIR"
say "ready: $ARM_DIR"
