#!/bin/sh
# usage: install_check.sh BUILD_DIR CC PROGRAM.c
# Installs the build into a fresh prefix (cmake --install --prefix), then
# builds and runs PROGRAM.c against it twice: with pkg-config's flags and
# with find_package(cgc) in a small CMake project.  Passes when both print
# "core_header: ok".
set -e
build=$1 cc=$2 prog=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(find "$tmp/prefix" -name cgc.pc)
[ -n "$pc" ] || { echo "no cgc.pc installed"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
# pkg-config, from a prefix other than the configured one.
flags=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --cflags --libs cgc)
echo "pkg-config: $flags"
"$cc" -DCORE_HEADER_MAIN "$prog" $flags -o "$tmp/p"
LD_LIBRARY_PATH=$libdir "$tmp/p"
# find_package(cgc).
mkdir "$tmp/proj"
cat >"$tmp/proj/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(cgc REQUIRED)
add_executable(p $prog)
target_compile_definitions(p PRIVATE CORE_HEADER_MAIN)
target_link_libraries(p PRIVATE cgc::cgc)
CM
cmake -S "$tmp/proj" -B "$tmp/proj/b" -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/proj/b" >/dev/null
"$tmp/proj/b/p"
