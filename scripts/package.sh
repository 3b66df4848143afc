#!/usr/bin/env bash
# Builds Warren's Debian packages, the one documented command (docs/install.md):
#
#   scripts/package.sh
#
# produces
#   target/debian/warren_<version>_<arch>.deb         the broker, warrenctl, the
#                                                      systemd unit, /etc/warren
#   target/debian/warren-dbgsym_<version>_<arch>.deb  their debug symbols
#                                                      (/usr/lib/debug/.build-id/)
#
# It runs `cargo build --release` for the two binaries (WARREN_PACKAGE_SKIP_BUILD=1
# packages target/release/{warren,warrenctl} as they are), splits the debug
# information off (objcopy --only-keep-debug, strip --strip-debug, a GNU
# debuglink and the build id name the .debug file), and assembles both packages
# with dpkg-deb from packaging/: no cargo-deb, nothing to install first. Why a
# script around dpkg-deb rather than cargo-deb: the debug-symbol package, the
# maintainer scripts and the file modes are ours to write either way, and
# cargo-deb would be one more tool to compile (minutes on CI) and pin.
#
# Needs: cargo, dpkg-deb, objcopy and strip (binutils), readelf, gzip.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

for tool in dpkg-deb dpkg objcopy strip readelf objdump gzip; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "package.sh: $tool is missing (Debian: apt-get install dpkg-dev binutils gzip)" >&2
        exit 1
    fi
done

version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)"
if [ -z "$version" ]; then
    echo "package.sh: no version in Cargo.toml's [workspace.package]" >&2
    exit 1
fi
arch="$(dpkg --print-architecture)"
# Timestamps in the archives from the last commit: the same tree gives the
# same packages.
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
export SOURCE_DATE_EPOCH

if [ "${WARREN_PACKAGE_SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --bin warren --bin warrenctl
fi
for b in warren warrenctl; do
    if [ ! -x "target/release/$b" ]; then
        echo "package.sh: target/release/$b is missing (run without WARREN_PACKAGE_SKIP_BUILD)" >&2
        exit 1
    fi
done

out="$ROOT/target/debian"
stage="$out/stage"
pkg="$stage/warren"
dbg="$stage/warren-dbgsym"
rm -rf "$stage"
mkdir -p "$out" "$pkg/DEBIAN" "$dbg/DEBIAN"

# --- binaries: stripped into the package, symbols into the dbgsym package ---
install -d -m 0755 "$pkg/usr/sbin"
build_ids=()
for b in warren warrenctl; do
    src="target/release/$b"
    id="$(readelf -n "$src" | sed -n 's/^ *Build ID: *\([0-9a-f]*\)$/\1/p' | head -1)"
    if [ -z "$id" ]; then
        echo "package.sh: $src has no GNU build id (the linker's --build-id)" >&2
        exit 1
    fi
    build_ids+=("$id")
    debug_dir="$dbg/usr/lib/debug/.build-id/${id:0:2}"
    debug_file="$debug_dir/${id:2}.debug"
    install -d -m 0755 "$debug_dir"
    objcopy --only-keep-debug --compress-debug-sections=zlib "$src" "$debug_file"
    chmod 0644 "$debug_file"
    install -m 0755 "$src" "$pkg/usr/sbin/$b"
    # --strip-debug keeps the symbol table: a panic's backtrace still names
    # functions (2.7 MB of warren's 14 MB; --strip-unneeded would drop it).
    strip --strip-debug --remove-section=.comment "$pkg/usr/sbin/$b"
    objcopy --add-gnu-debuglink="$debug_file" "$pkg/usr/sbin/$b"
done
ln -s warrenctl "$pkg/usr/sbin/warren-diagnostics"

# --- configuration, unit, documentation ---
install -d -m 0755 "$pkg/etc/warren" "$pkg/lib/systemd/system" "$pkg/usr/share/doc/warren"
install -m 0644 packaging/rabbitmq.conf packaging/rabbitmq-env.conf "$pkg/etc/warren/"
install -m 0644 packaging/warren.service "$pkg/lib/systemd/system/warren.service"
install -m 0644 docs/install.md "$pkg/usr/share/doc/warren/install.md"
gzip -9n <CHANGELOG.md >"$pkg/usr/share/doc/warren/changelog.gz"
chmod 0644 "$pkg/usr/share/doc/warren/changelog.gz"
copyright() {
    cat <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: warren

Files: *
Copyright: The Warren developers
License: Apache-2.0
 On Debian systems the full text of the Apache License, Version 2.0, is in
 /usr/share/common-licenses/Apache-2.0 (and in the source's LICENSE file).
COPYRIGHT
}
copyright >"$pkg/usr/share/doc/warren/copyright"
install -d -m 0755 "$dbg/usr/share/doc"
ln -s warren "$dbg/usr/share/doc/warren-dbgsym"

# --- control files ---
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$pkg/DEBIAN/"
printf '%s\n' /etc/warren/rabbitmq.conf /etc/warren/rabbitmq-env.conf >"$pkg/DEBIAN/conffiles"
glibc="$(objdump -T target/release/warren target/release/warrenctl | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -Vu | tail -1)"
installed_size() { du -sk --exclude=DEBIAN "$1" | cut -f1; }
maintainer="Warren developers <maintainers@warren.invalid>"
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: warren
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(installed_size "$pkg")
Depends: libc6 (>= $glibc), libgcc-s1, adduser | passwd
Section: net
Priority: optional
Description: RabbitMQ-compatible message broker (AMQP 0-9-1, MQTT)
 Warren speaks AMQP 0-9-1 as RabbitMQ 3.10 does, MQTT 3.1, 3.1.1 and 5.0,
 and serves RabbitMQ's management HTTP API, web UI and Prometheus metrics.
 This package installs the broker (/usr/sbin/warren, a systemd unit with
 readiness notification) and warrenctl, the rabbitmqctl-style CLI (also
 answering as warren-diagnostics). Configuration: /etc/warren/rabbitmq.conf;
 data: /var/lib/warren (kept on removal, deleted by a purge).
CONTROL
cat >"$dbg/DEBIAN/control" <<CONTROL
Package: warren-dbgsym
Source: warren
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(installed_size "$dbg")
Depends: warren (= $version)
Section: debug
Priority: optional
Auto-Built-Package: debug-symbols
Build-Ids: ${build_ids[*]}
Description: debug symbols for warren
 The DWARF debug information of /usr/sbin/warren and /usr/sbin/warrenctl,
 found by gdb through their build ids (/usr/lib/debug/.build-id/).
CONTROL
for d in "$pkg" "$dbg"; do
    (cd "$d" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
        xargs -0r md5sum >DEBIAN/md5sums)
    chmod 0644 "$d/DEBIAN/control" "$d/DEBIAN/md5sums"
    [ -f "$d/DEBIAN/conffiles" ] && chmod 0644 "$d/DEBIAN/conffiles"
    find "$d" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
done

deb="$out/warren_${version}_${arch}.deb"
dbgdeb="$out/warren-dbgsym_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
dpkg-deb --root-owner-group -Zxz --build "$dbg" "$dbgdeb" >/dev/null
rm -rf "$stage"
echo "$deb"
echo "$dbgdeb"
