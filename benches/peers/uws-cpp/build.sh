#!/usr/bin/env bash
# Builds two servers into target/release/, from the uWebSockets and
# uSockets sources that the crate libuwebsockets-sys 0.0.10 vendors (cargo
# fetches the crate):
# - peer-uws-cpp: C++ uWebSockets with its default epoll backend and OpenSSL;
# - peer-uws-cpp-uring: the same server on uSockets' io_uring backend
#   (LIBUS_USE_IO_URING), plain only. That backend is a prototype: at most
#   4,096 connections; here it echoed a tenth as much with errors at 64 B ×
#   100, failed half the upgrades at 1 KiB and echoed nothing at 4 KiB, so
#   compare.py runs it at 64 B × 1 only.
# Needs g++ and Debian's libssl-dev, zlib1g-dev and liburing-dev.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
here="$root/benches/peers/uws-cpp"
out="$root/target/release/peer-uws-cpp"
# A clean clone has no target/release yet: the test command builds only the
# dev profile before this.
mkdir -p "$(dirname "$out")"
fetch=$(mktemp -d /tmp/uws-fetch.XXXXXX)
obj=$(mktemp -d /tmp/uws-obj.XXXXXX)
trap 'rm -rf "$fetch" "$obj"' EXIT
mkdir -p "$fetch/src"
printf '[package]\nname = "uws-fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nlibuwebsockets-sys = "=0.0.10"\n' >"$fetch/Cargo.toml"
echo 'fn main() {}' >"$fetch/src/main.rs"
(cd "$fetch" && cargo fetch --quiet)
src=$(cd "$fetch" && cargo metadata --format-version 1 --quiet |
  python3 -c 'import json, sys; m = json.load(sys.stdin); print(next(p["manifest_path"] for p in m["packages"] if p["name"] == "libuwebsockets-sys"))')
uws="$(dirname "$src")/uWebSockets"
us="$uws/uSockets/src"
common=(-O3 -flto -DUWS_NO_ZLIB_FALLBACK -Wno-deprecated-declarations -I"$us")
flags=("${common[@]}" -DLIBUS_USE_OPENSSL)
for c in "$us"/*.c "$us"/eventing/epoll_kqueue.c "$us"/crypto/openssl.c; do
  gcc "${flags[@]}" -c "$c" -o "$obj/$(basename "$c").o"
done
g++ "${flags[@]}" -std=c++20 -c "$us/crypto/sni_tree.cpp" -o "$obj/sni_tree.o"
g++ "${flags[@]}" -std=c++20 -I"$uws/src" "$here/server.cpp" "$obj"/*.o -lssl -lcrypto -lz -o "$out"
echo "built $out"

uring_obj="$obj/uring"
mkdir -p "$uring_obj"
flags=("${common[@]}" -DLIBUS_NO_SSL -DLIBUS_USE_IO_URING)
for c in "$us"/*.c "$us"/io_uring/*.c; do
  gcc "${flags[@]}" -c "$c" -o "$uring_obj/$(basename "$c").o"
done
g++ "${flags[@]}" -std=c++20 -I"$uws/src" "$here/server.cpp" "$uring_obj"/*.o -luring -lz -o "$out-uring"
echo "built $out-uring"
