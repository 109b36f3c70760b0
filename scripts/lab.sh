#!/usr/bin/env bash
# lab.sh — a throwaway DR load-balancer lab in network namespaces, for manual testing.
#
# Topology (PREFIX defaults to "lbl"), all on one L2 segment, 10.99.0.0/24:
#
#   PREFIX-client  eth0 10.99.0.10   route to the VIP via the LB (10.99.0.2)
#   PREFIX-lb      eth0 10.99.0.2    run lbd here, XDP on eth0
#   PREFIX-b1..b3  eth0 10.99.0.11-13, VIP 10.99.0.100/32 on lo (realserver.sh)
#        \  \  \  |  /
#        PREFIX-br: bridge br0 joining the peers v-client, v-lb, v-b1..v-b3
#
# The client sends to the VIP through the LB; the LB rewrites the destination MAC to
# a backend's and transmits back out eth0 (XDP_TX); the backend answers the client
# directly from the VIP. Checksum/segmentation offloads are turned off on every veth
# (tx, gso, tso), so frames seen by XDP carry real checksums and are not GSO
# super-packets. GRO is turned on for the LB's bridge-side peer v-lb: a veth only
# accepts frames XDP_TX'd (native mode) by its peer when it runs NAPI, which GRO or
# an XDP program of its own enables.
#
# Usage:
#   lab.sh up [PREFIX]       create (or complete) the lab; idempotent
#   lab.sh down [PREFIX]     remove everything; idempotent
#   lab.sh status [PREFIX]   show what exists
# Needs root, iproute2, ethtool and xdp-tools (xdp-filter). Touches nothing outside the namespaces it creates.
set -euo pipefail

PROG=$(basename "$0")
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
REALSERVER="$HERE/realserver.sh"

SUBNET_PLEN=24
LB_IP=10.99.0.2
CLIENT_IP=10.99.0.10
VIP=10.99.0.100
BACKENDS=(b1 b2 b3)
# node -> address
declare -A ADDR=([client]=$CLIENT_IP [lb]=$LB_IP [lb2]=10.99.0.3 [b1]=10.99.0.11 [b2]=10.99.0.12 [b3]=10.99.0.13)
# LAB_LBS=2 adds a second LB node, PREFIX-lb2 (10.99.0.3), for VRRP failover labs.
# LAB_VIP_ROUTE=0 leaves out the client's static route to the VIP via the LB: with
# VRRP the master owns the VIP on its interface and the client finds it by ARP.
LBS=(lb)
[ "${LAB_LBS:-1}" = 2 ] && LBS=(lb lb2)
NODES=(client "${LBS[@]}" "${BACKENDS[@]}")

usage() {
    cat >&2 <<EOF
usage: $PROG up [PREFIX]       build the lab (namespaces PREFIX-br, -client, -lb, -b1..b3)
       $PROG down [PREFIX]     remove it
       $PROG status [PREFIX]   show it
PREFIX: letters, digits, '_' or '-', at most 32 characters; default "lbl".
EOF
    exit 2
}

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "must be run as root (it creates network namespaces)"
}

ns_exists() {
    [ -e "/var/run/netns/$1" ]
}

ensure_ns() {
    if ! ns_exists "$1"; then
        ip netns add "$1"
        echo "created namespace $1"
    fi
    ip -n "$1" link set lo up
}

offloads_off() {
    local ns=$1 dev=$2
    if command -v ethtool >/dev/null; then
        # txvlan off: a VLAN tag crosses the veth inside the frame, as a real NIC with
        # rx VLAN offload off (which lbd sets) hands it to XDP.
        ip netns exec "$ns" ethtool -K "$dev" tx off gso off tso off txvlan off tx-vlan-stag-hw-insert off >/dev/null 2>&1 ||
            echo "$PROG: warning: could not turn offloads off on $ns/$dev" >&2
    else
        echo "$PROG: warning: ethtool not found; offloads left on for $ns/$dev" >&2
    fi
}

cmd_up() {
    need_root
    [ -x "$REALSERVER" ] || die "$REALSERVER not found or not executable"
    local br="$P-br" node ns peer
    ensure_ns "$br"
    if ! ip -n "$br" link show br0 >/dev/null 2>&1; then
        ip -n "$br" link add br0 type bridge
    fi
    ip -n "$br" link set br0 up
    # No bridge netfilter: with it, conntrack in the bridge namespace reassembles IPv4
    # fragments before the LB sees them, and fragment handling would go untested.
    ip -n "$br" link set br0 type bridge nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0
    ip netns exec "$br" sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
        net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0 2>/dev/null || true
    for node in "${NODES[@]}"; do
        ns="$P-$node"
        peer="v-$node"
        ensure_ns "$ns"
        if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
            # A half-built pair (peer left in the bridge namespace) is replaced.
            ip -n "$br" link del "$peer" >/dev/null 2>&1 || true
            ip -n "$br" link add "$peer" type veth peer name eth0 netns "$ns"
            echo "linked $ns/eth0 <-> $br/$peer"
        fi
        ip -n "$br" link set "$peer" master br0 up
        ip -n "$ns" addr replace "${ADDR[$node]}/$SUBNET_PLEN" dev eth0
        ip -n "$ns" link set eth0 up
        offloads_off "$br" "$peer"
        offloads_off "$ns" eth0
    done
    # The LB sends frames back out of its veth with XDP_TX. A veth hands such frames to
    # its peer only through the peer's NAPI, and flushes them reliably only when the peer
    # runs an XDP program of its own (with GRO alone they wait for the next unrelated
    # packet). So the bridge-side peer gets a pass-everything XDP program (xdp-filter
    # from Debian's xdp-tools; it needs a bpffs where it runs, mounted only for that
    # command). On a real NIC none of this is needed.
    # LAB_PEER_XDP=none: the caller attaches its own (the Rust test labs attach the
    # project's pass-only program: xdp-filter's aborts non-first TCP fragments).
    for lb in "${LBS[@]}"; do
        [ "${LAB_PEER_XDP:-xdp-filter}" = none ] && break
        if ! ip -n "$br" link show "v-$lb" | grep -q 'prog/xdp'; then
            if command -v xdp-filter >/dev/null 2>&1; then
                ip netns exec "$br" sh -c "mount -t bpf bpf /sys/fs/bpf && xdp-filter load -m native v-$lb" >/dev/null
            else
                echo "warning: xdp-filter (Debian xdp-tools) missing; falling back to GRO on v-$lb, XDP_TX frames may stall" >&2
                ip netns exec "$br" ethtool -K "v-$lb" gro on >/dev/null 2>&1 || true
            fi
        fi
    done
    # A small TCP receive buffer on the client: a backend cannot push a whole download
    # ahead into it, so a stream keeps needing its ACKs to cross the LB until its last
    # byte (what connection-survival checks rely on).
    ip netns exec "$P-client" sysctl -qw net.ipv4.tcp_rmem='4096 8192 16384'
    if [ "${LAB_VIP_ROUTE:-1}" = 1 ]; then
        ip -n "$P-client" route replace "$VIP/32" via "$LB_IP"
    fi
    for node in "${BACKENDS[@]}"; do
        ip netns exec "$P-$node" "$REALSERVER" up "$VIP" >/dev/null
    done
    echo
    echo "lab $P is up: client $CLIENT_IP, lb $LB_IP, backends ${ADDR[b1]} ${ADDR[b2]} ${ADDR[b3]}, VIP $VIP"
    hint
}

hint() {
    cat <<EOF

To try it (in separate terminals):
  # a server on each backend (answers from the VIP)
  for b in ${BACKENDS[*]}; do ip netns exec $P-\$b python3 -m http.server 80 --bind 0.0.0.0 & done
  # lbd in the LB namespace, XDP on its eth0, a service for $VIP:80 over the backends
  # (interface "eth0", backends ${ADDR[b1]}, ${ADDR[b2]}, ${ADDR[b3]}):
  ip netns exec $P-lb lbd --config /path/to/lab.toml
  # lbctl talks to lbd over its control socket, from the same namespace:
  ip netns exec $P-lb lbctl status
  # traffic from the client
  ip netns exec $P-client curl -s http://$VIP/
  # watch it
  ip netns exec $P-lb tcpdump -eni eth0
Tear down with: $0 down $P
EOF
}

cmd_down() {
    need_root
    local node ns removed=0
    # Every node a lab can have, whatever LAB_LBS was at `up`.
    for node in client lb lb2 "${BACKENDS[@]}" br; do
        ns="$P-$node"
        ns_exists "$ns" || continue
        # Drop the real-server state kept under /run before the namespace goes away.
        if [[ " ${BACKENDS[*]} " == *" $node "* ]] && [ -x "$REALSERVER" ]; then
            ip netns exec "$ns" "$REALSERVER" down >/dev/null 2>&1 || true
        fi
        ip netns del "$ns"
        echo "deleted namespace $ns"
        removed=1
    done
    [ "$removed" -eq 1 ] || echo "lab $P: nothing to remove"
}

cmd_status() {
    local node ns any=0
    for node in br client lb lb2 "${BACKENDS[@]}"; do
        ns="$P-$node"
        if ns_exists "$ns"; then
            any=1
            echo "== $ns"
            ip -n "$ns" -br addr show 2>/dev/null | sed 's/^/   /' || true
        elif [ "$node" != lb2 ]; then
            # lb2 exists only in two-LB labs (LAB_LBS=2).
            echo "== $ns (missing)"
        fi
    done
    [ "$any" -eq 1 ] || echo "lab $P is down"
}

[ $# -ge 1 ] && [ $# -le 2 ] || usage
cmd=$1
P=${2:-lbl}
[[ $P =~ ^[A-Za-z0-9_-]{1,32}$ ]] || die "bad prefix '$P'"
case "$cmd" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*) usage ;;
esac
