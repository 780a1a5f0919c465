#!/usr/bin/env bash
# make demo: the main job on real files in a scratch folder. A raw disk with
# data in it gets qcow2 metadata on top (data_file_raw, 1:1 metadata), is used
# through the qcow2 image, grows, and stays a valid raw image throughout.
set -eu
build=${1:-build}
src=$(cd "$(dirname "$0")/.." && pwd)
case "$build" in /*) ;; *) build="$src/$build" ;; esac
IMG="$build/qemu-img"
IO="$build/qemu-io"
dir=$(mktemp -d /tmp/qcow2-demo.XXXXXX)
cd "$dir"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
quote() { case "$1" in *[\ \'\"\$\*]*) printf " '%s'" "$1" ;; *) printf ' %s' "$1" ;; esac; }
run()
{
    printf '$'
    for a in "$@"; do quote "${a#$build/}"; done
    printf '\n'
    "$@"
}

step "A 64 MiB raw disk with data in it (pattern 0xaa at 0, 0xbb at 32M)"
run truncate -s 64M disk.raw
run "$IO" -f raw -c 'write -q -P 0xaa 0 1M' -c 'write -q -P 0xbb 32M 1M' disk.raw

step "Put qcow2 metadata on top, keeping the raw disk as it is (data_file_raw)"
run "$IMG" create -f qcow2 \
    -o data_file=disk.raw,data_file_raw=on,keep_data_file=on disk.qcow2 64M
run "$IMG" info disk.qcow2
echo "The metadata maps every guest cluster 1:1 onto the raw disk:"
run "$IMG" map --output=json disk.qcow2

step "The old data reads back through the qcow2 image"
run "$IO" -c 'read -P 0xaa 0 1M' -c 'read -P 0xbb 32M 1M' -c 'read -P 0 1M 31M' disk.qcow2

step "Writes and zero writes through the image land in the raw disk"
run "$IO" -c 'write -q -P 0xcc 8M 4M' -c 'write -q -z 32M 512k' disk.qcow2
run "$IO" -f raw -c 'read -P 0xcc 8M 4M' -c 'read -P 0 32M 512k' -c 'read -P 0xbb 32.5M 512k' disk.raw

step "Data appended to the raw disk becomes visible when the image grows"
run truncate -s 96M disk.raw
run "$IO" -f raw -c 'write -q -P 0xdd 80M 1M' disk.raw
run "$IMG" resize disk.qcow2 96M
run "$IMG" map --output=json disk.qcow2
run "$IO" -c 'read -P 0xdd 80M 1M' disk.qcow2

step "Image and raw disk read the same; the image is consistent"
run "$IMG" compare -f raw -F qcow2 disk.raw disk.qcow2
run "$IMG" check disk.qcow2
if command -v /usr/bin/qemu-img >/dev/null 2>&1; then
    echo "And QEMU's own qemu-img agrees:"
    run /usr/bin/qemu-img check disk.qcow2
    run /usr/bin/qemu-img compare -f raw -F qcow2 disk.raw disk.qcow2
fi

step "Done: the files are in $dir"
