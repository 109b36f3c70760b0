#!/usr/bin/env bash
# realserver.sh — prepare (and undo) a Linux host as a direct-server-return real server.
#
# In DR mode the load balancer forwards a client's packet unchanged except for the
# destination MAC, so the packet reaching a backend is still addressed to the VIP.
# The backend must therefore
#   * own the VIP, on `lo` (so it accepts the packet and answers from the VIP), and
#   * never answer ARP for the VIP on its real interfaces, nor use the VIP as the
#     source of its own ARP requests, or it would steal the VIP from the LB:
#       net.ipv4.conf.{all,lo}.arp_ignore=1    answer ARP only for addresses on the
#                                              receiving interface
#       net.ipv4.conf.{all,lo}.arp_announce=2  use the best local address of the
#                                              outgoing interface as ARP source
#   IPv6 VIPs need no sysctl: Linux answers neighbour solicitations only for
#   addresses configured on the receiving interface.
#
# Usage:
#   realserver.sh up VIP [VIP...]    add each VIP (/32 or /128) on lo, set the sysctls
#   realserver.sh down [VIP...]      remove the VIPs (all added by `up` if none given);
#                                    restore the sysctls once no added VIP remains
#   realserver.sh status             show VIPs on lo, sysctls and saved state
#
# Idempotent: `up` twice is `up` once (the original sysctl values are saved only by
# the first `up`), `down` of an absent VIP is a no-op. Works per network namespace,
# e.g. `ip netns exec NS realserver.sh up 10.0.0.100`: sysctls are per netns, and the
# saved state lives in /run/lbd-realserver/<netns inode>/ because /run is shared
# across `ip netns exec`. Run `down` before deleting a namespace, so that a later
# namespace reusing the inode does not find stale state.
set -euo pipefail

PROG=$(basename "$0")
SYSCTLS=(
    net.ipv4.conf.all.arp_ignore=1
    net.ipv4.conf.lo.arp_ignore=1
    net.ipv4.conf.all.arp_announce=2
    net.ipv4.conf.lo.arp_announce=2
)

usage() {
    cat >&2 <<EOF
usage: $PROG up VIP [VIP...]     add VIPs on lo and set the DR ARP sysctls
       $PROG down [VIP...]       remove VIPs (default: all added by up), restore sysctls
       $PROG status              show the real-server state of this network namespace
VIP is an IPv4 or IPv6 address without prefix length.
EOF
    exit 2
}

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "must be run as root (it changes addresses and sysctls)"
}

netns_inode() {
    stat -L -c %i /proc/self/ns/net
}

STATE_DIR="/run/lbd-realserver/$(netns_inode)"
SAVED="$STATE_DIR/sysctl.saved"
VIPS="$STATE_DIR/vips"

sysctl_path() {
    echo "/proc/sys/${1//.//}"
}

sysctl_get() {
    cat "$(sysctl_path "$1")"
}

sysctl_set() {
    echo "$2" >"$(sysctl_path "$1")"
}

# Print the prefix length for a VIP, or fail if it is not an address.
vip_plen() {
    local vip=$1
    if [[ $vip =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
        local IFS=. o
        for o in $vip; do
            [ "$o" -le 255 ] || return 1
        done
        echo 32
    elif [[ $vip =~ ^[0-9A-Fa-f:.]+$ && $vip == *:* ]]; then
        echo 128
    else
        return 1
    fi
}

check_vips() {
    local vip
    for vip in "$@"; do
        vip_plen "$vip" >/dev/null || die "not an IPv4/IPv6 address: '$vip'"
    done
}

vip_present() {
    local vip=$1 plen
    plen=$(vip_plen "$vip")
    [ -n "$(ip -o addr show dev lo to "$vip/$plen")" ]
}

lock() {
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/lock"
    if command -v flock >/dev/null; then
        flock 9
    fi
}

record_vip() {
    touch "$VIPS"
    grep -qxF -- "$1" "$VIPS" || echo "$1" >>"$VIPS"
}

forget_vip() {
    [ -f "$VIPS" ] || return 0
    local rest
    rest=$(grep -vxF -- "$1" "$VIPS" || true)
    if [ -n "$rest" ]; then
        printf '%s\n' "$rest" >"$VIPS"
    else
        : >"$VIPS"
    fi
}

cmd_up() {
    [ $# -ge 1 ] || usage
    check_vips "$@"
    need_root
    lock
    # Save the original values once; a second `up` must not save our own values.
    if [ ! -f "$SAVED" ]; then
        local kv key tmp="$SAVED.tmp"
        : >"$tmp"
        for kv in "${SYSCTLS[@]}"; do
            key=${kv%%=*}
            echo "$key=$(sysctl_get "$key")" >>"$tmp"
        done
        mv "$tmp" "$SAVED"
    fi
    local kv key val
    for kv in "${SYSCTLS[@]}"; do
        key=${kv%%=*}
        val=${kv#*=}
        if [ "$(sysctl_get "$key")" != "$val" ]; then
            sysctl_set "$key" "$val"
            echo "set $key=$val"
        fi
    done
    ip link set lo up
    local vip plen
    for vip in "$@"; do
        plen=$(vip_plen "$vip")
        if vip_present "$vip"; then
            echo "$vip/$plen already on lo"
        else
            ip addr add "$vip/$plen" dev lo
            record_vip "$vip"
            echo "added $vip/$plen on lo"
        fi
    done
}

cmd_down() {
    check_vips "$@"
    need_root
    lock
    local vips=("$@")
    if [ ${#vips[@]} -eq 0 ] && [ -s "$VIPS" ]; then
        mapfile -t vips <"$VIPS"
    fi
    local vip plen
    for vip in "${vips[@]}"; do
        plen=$(vip_plen "$vip")
        if vip_present "$vip"; then
            ip addr del "$vip/$plen" dev lo
            echo "removed $vip/$plen from lo"
        else
            echo "$vip/$plen not on lo"
        fi
        forget_vip "$vip"
    done
    if [ -s "$VIPS" ]; then
        echo "sysctls left set: VIPs still configured by $PROG: $(tr '\n' ' ' <"$VIPS")"
        return 0
    fi
    if [ -f "$SAVED" ]; then
        local line key val
        while IFS= read -r line; do
            [ -n "$line" ] || continue
            key=${line%%=*}
            val=${line#*=}
            if [ "$(sysctl_get "$key")" != "$val" ]; then
                sysctl_set "$key" "$val"
                echo "restored $key=$val"
            fi
        done <"$SAVED"
    fi
    rm -rf "$STATE_DIR"
}

cmd_status() {
    [ $# -eq 0 ] || usage
    echo "network namespace inode: $(netns_inode)"
    echo "VIPs on lo:"
    ip -o addr show dev lo | awk '$4 !~ /^(127\.|::1\/)/ {print "  " $4}'
    echo "sysctls:"
    local kv key want
    for kv in "${SYSCTLS[@]}"; do
        key=${kv%%=*}
        want=${kv#*=}
        echo "  $key=$(sysctl_get "$key") (DR wants $want)"
    done
    if [ -d "$STATE_DIR" ]; then
        echo "state: $STATE_DIR"
        if [ -s "$VIPS" ]; then
            echo "  VIPs added by $PROG: $(tr '\n' ' ' <"$VIPS")"
        fi
        if [ -f "$SAVED" ]; then
            echo "  saved sysctls (restored by down): $(tr '\n' ' ' <"$SAVED")"
        fi
    else
        echo "state: none (not set up by $PROG)"
    fi
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
up) cmd_up "$@" ;;
down) cmd_down "$@" ;;
status) cmd_status "$@" ;;
-h | --help | help) usage ;;
*) usage ;;
esac
