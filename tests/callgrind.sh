#!/usr/bin/env bash
# Instructions per invitation, counted by valgrind's callgrind: ours and
# snow's for a contact (IK) and an endpoint (XX) invitation, and the crypto
# bound. Instruction counts do not drift with machine load the way wall
# time does, so these figures are repeatable on a shared machine.
#
#   bash tests/callgrind.sh            # 10 invitations per contender
#   ITERATIONS=50 bash tests/callgrind.sh
#
# Each contender runs twice under callgrind, with 1 and with 1+N
# invitations; the difference divided by N cancels the setup (identities,
# snow builders, the first traces), leaving the cost of one invitation.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${ITERATIONS:-10}
if ! command -v valgrind >/dev/null; then
    echo "valgrind is not installed (Debian: apt-get install valgrind)" >&2
    exit 1
fi
cargo build --release --bin peercollab-bench >&2
BIN=target/release/peercollab-bench
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

collected() { # contender iterations -> instructions
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" \
        "$BIN" --only "$1" --iterations "$2" 2>&1 |
        awk '/Collected :/ { print $NF }'
}

printf '%-14s %16s\n' contender instructions/invitation
declare -A PER
for c in ours-ik snow-ik ours-xx snow-xx crypto-bound; do
    one=$(collected "$c" 1)
    many=$(collected "$c" $((N + 1)))
    PER[$c]=$(((many - one) / N))
    printf '%-14s %16d\n' "$c" "${PER[$c]}"
done
awk -v a="${PER[ours-ik]}" -v b="${PER[snow-ik]}" -v c="${PER[ours-xx]}" \
    -v d="${PER[snow-xx]}" -v e="${PER[crypto-bound]}" 'BEGIN {
    printf "snow-ik / ours-ik       %.3f  (instructions: >1 means ours does less)\n", b / a
    printf "snow-xx / ours-xx       %.3f\n", d / c
    printf "crypto-bound / ours-ik  %.3f\n", e / a
}'
