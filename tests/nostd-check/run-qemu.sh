#!/usr/bin/env bash
# Builds the no-alloc firmware with the core's precomputed curve25519 tables
# off and on, runs each on QEMU's mps2-an386 (Cortex-M4F) with semihosting,
# and prints its footprint:
#
#   bash tests/nostd-check/run-qemu.sh
#
# Installs nothing: it needs `qemu-system-arm` (Debian: `apt-get install
# qemu-system-arm`) and a `size` that reads ARM ELF files (it takes the first
# of arm-none-eabi-size, llvm-size, GNU size, and the llvm-size of rustup's
# `llvm-tools` component). Each variant's ELF and run log are kept as
# target/qemu/tables-{off,on}.{elf,log}. Exits non-zero when a build
# fails, a run fails (the firmware exits with a failure status when any
# exchange fails or the stack ran out) or a run exceeds QEMU_TIMEOUT seconds.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

QEMU_TIMEOUT=${QEMU_TIMEOUT:-60}
TARGET=thumbv7em-none-eabihf
TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=$TARGET_DIR/qemu
# -icount shift=0: one instruction per nanosecond of virtual time, so the
# firmware's 25 MHz timer counts instructions (40 per tick) and every run
# counts the same.
QEMU=(qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic
    -monitor none -serial none
    -semihosting-config enable=on,target=native -icount shift=0)

if ! command -v qemu-system-arm >/dev/null 2>&1; then
    echo "run-qemu.sh: qemu-system-arm not found." >&2
    echo "  Install it first, e.g. on Debian/Ubuntu: sudo apt-get install -y qemu-system-arm" >&2
    exit 2
fi

size_tool() {
    local t
    for t in arm-none-eabi-size llvm-size size; do
        if command -v "$t" >/dev/null 2>&1 && "$t" -A "$1" >/dev/null 2>&1; then
            echo "$t"
            return
        fi
    done
    t="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-size"
    if [[ -x $t ]] && "$t" -A "$1" >/dev/null 2>&1; then
        echo "$t"
        return
    fi
    echo "run-qemu.sh: no size tool reads $1 (tried arm-none-eabi-size, llvm-size, size," >&2
    echo "  rustup's llvm-tools): install binutils, or 'rustup component add llvm-tools'" >&2
    return 1
}

# section ELF NAME: the size of section NAME (0 when absent).
section() {
    "$SIZE" -A "$1" | awk -v s="$2" '$1 == s { n = $2 } END { print n + 0 }'
}

variants=(off on)
declare -A features=([off]="" [on]="--features precomputed-tables")

mkdir -p "$OUT"
for v in "${variants[@]}"; do
    echo "== build: precomputed tables $v"
    # shellcheck disable=SC2086 # the feature flags are meant to split
    cargo build --release ${features[$v]}
    cp "$TARGET_DIR/$TARGET/release/peercollab-nostd-check" "$OUT/tables-$v.elf"
done

SIZE=$(size_tool "$OUT/tables-off.elf")
echo "== sizes by: $SIZE"

rows=()
failed=0
for v in "${variants[@]}"; do
    elf="$OUT/tables-$v.elf" log="$OUT/tables-$v.log"
    echo "== run: precomputed tables $v (timeout ${QEMU_TIMEOUT}s)"
    rc=0
    timeout "$QEMU_TIMEOUT" "${QEMU[@]}" -kernel "$elf" </dev/null >"$log" 2>&1 || rc=$?
    cat "$log"
    result=PASS
    if ((rc == 124)); then
        result="TIMEOUT"
    elif ((rc != 0)) || ! grep -q '^result: PASS' "$log"; then
        result="FAIL (exit $rc)"
    fi
    [[ $result == PASS ]] || failed=1
    text=$(section "$elf" .text)
    rodata=$(section "$elf" .rodata)
    vectors=$(section "$elf" .vector_table)
    data=$(section "$elf" .data)
    bss=$(section "$elf" .bss)
    flash=$((vectors + text + rodata + data))
    stack=$(sed -n 's/^peak stack: \([0-9]*\) bytes.*/\1/p' "$log")
    insns=$(sed -n 's/^contact invitation alone.*instructions ~\([0-9]*\).*/\1/p' "$log")
    rows+=("$(printf '| %-18s | %7s | %7s | %7s | %5s | %4s | %10s | %22s | %-6s |' \
        "$v" "$text" "$rodata" "$flash" "$data" "$bss" "${stack:-?}" "${insns:-?}" "$result")")
done

echo
echo "== footprint (bytes; flash = .vector_table + .text + .rodata + .data," \
    "RAM = .data + .bss + peak stack; contact invitation ins: instructions from" \
    "invite_contact to both outcomes, QEMU -icount shift=0, +-40)"
echo '| precomputed tables |   .text | .rodata |   flash | .data | .bss | peak stack | contact invitation ins | result |'
echo '|--------------------|--------:|--------:|--------:|------:|-----:|-----------:|-----------------------:|--------|'
printf '%s\n' "${rows[@]}"
exit "$failed"
