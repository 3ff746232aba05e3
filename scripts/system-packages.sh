#!/usr/bin/env sh
# Debian/Ubuntu packages that the Python wheels cannot bring: installs the missing ones when
# this user may (root, or sudo without a password) and apt-get exists; otherwise one line that
# names them and exit 1.   Usage: scripts/system-packages.sh demo|test
#   demo: libusb-1.0-0 (Open3D), libgl1 libegl1 libglib2.0-0 (OpenCV / Open3D windows)
#   test: the same, plus xvfb and xauth (the tests open real windows on a virtual screen)
set -u
need="${1:-test}"
missing=""
has_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
add() { missing="$missing $1"; }
has_lib 'libusb-1\.0\.so\.0' || add libusb-1.0-0
has_lib 'libGL\.so\.1' || add libgl1
has_lib 'libEGL\.so\.1' || add libegl1
has_lib 'libglib-2\.0\.so\.0' || add libglib2.0-0
if [ "$need" = test ]; then
  command -v Xvfb >/dev/null 2>&1 || add xvfb
  command -v xauth >/dev/null 2>&1 || add xauth
fi
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing system libraries for '$need':$missing (Debian package names; install them with your package manager)" >&2
  exit 1
fi
if [ "$(id -u)" = 0 ]; then
  as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root="sudo -n"
else
  echo "error: missing system packages for '$need'; run: sudo apt-get install$missing" >&2
  exit 1
fi
echo "installing system packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$as_root apt-get update -qq >/dev/null && $as_root apt-get install -y -qq $missing >/dev/null || {
  echo "error: apt-get could not install:$missing" >&2
  exit 1
}
