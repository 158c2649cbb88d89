#!/usr/bin/env bash
# Runs every fuzz target for N seconds each (default 30), from the committed
# corpus in fuzz/corpus/<target>/. New inputs land in the corpus; crashes land
# in fuzz/artifacts/<target>/ and make the script exit non-zero.
#
#   fuzz/run.sh            # 30 s per target
#   fuzz/run.sh 300        # 5 min per target
#   SANITIZER=none fuzz/run.sh   # if the AddressSanitizer build fails
#   FUZZ_RSS_MB=512 fuzz/run.sh  # memory limit per target (default 1024 MB)
#
# After a long run, shrink the corpus before committing it:
#   cargo fuzz cmin <target> -- -use_counters=0 -set_cover_merge=1
set -euo pipefail

secs="${1:-30}"
sanitizer="${SANITIZER:-address}"
rss_mb="${FUZZ_RSS_MB:-1024}"
cd "$(dirname "$0")"

# cargo-fuzz passes nightly-only flags (-Z sanitizer, -C passes=...);
# RUSTC_BOOTSTRAP lets a stable toolchain accept them. Harmless on nightly.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

dict_for() {
    case "$1" in
        twilio_*) echo "-dict=dicts/twilio.dict" ;;
        monitor_request | browser_request) echo "-dict=dicts/session.dict" ;;
        *) echo "" ;;
    esac
}

cargo fuzz build -s "$sanitizer"
mkdir -p target

failed=()
for target in $(cargo fuzz list); do
    echo "=== $target (${secs}s)"
    mkdir -p "corpus/$target"
    log="target/fuzz-$target.log"
    status=0
    # shellcheck disable=SC2046 # the dict flag is empty or one word
    cargo fuzz run -s "$sanitizer" "$target" -- \
        -max_total_time="$secs" -max_len=4096 -rss_limit_mb="$rss_mb" \
        -malloc_limit_mb="$rss_mb" $(dict_for "$target") >"$log" 2>&1 || status=$?
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|panicked at|Test unit written|^SUMMARY' "$log" || true
    if [ "$status" -ne 0 ]; then
        echo "!!! $target failed (exit $status); full log: fuzz/$log" >&2
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "crashes in: ${failed[*]} (see fuzz/artifacts/; reproduce with cargo fuzz run <target> <file>)" >&2
    exit 1
fi
echo "all targets ran ${secs}s without a crash"
