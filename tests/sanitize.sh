#!/usr/bin/env bash
# Builds rnnfast._C with AddressSanitizer and UndefinedBehaviorSanitizer in a temporary copy of
# the source tree and runs the kernel tests under it. Exits non-zero on any sanitizer report or
# test failure. Installs nothing: needs g++, and numpy, pybind11, setuptools and pytest in the
# current Python (what `pip install ".[test]"` leaves in a venv).
#
#   tests/sanitize.sh                      # the default kernel test files
#   tests/sanitize.sh tests/test_conv.py   # only these (paths relative to the source root)
#
# Environment: PYTHON (default: python3), CXX (default: g++), SANITIZE_KEEP=1 keeps the copy.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
cxx=${CXX:-g++}

if [ "$#" -gt 0 ]; then
  tests=("$@")
else
  tests=(
    tests/test_gemm.py
    tests/test_functional_recurrent.py
    tests/test_recurrent_bad_input.py
    tests/test_conv.py
    tests/test_pool.py
    tests/test_threads.py
    tests/test_bad_input_matrix.py
    tests/test_reliability_odd_inputs.py
    tests/test_reliability_threads.py
    tests/test_reliability_numerics.py
  )
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/rnnfast-sanitize.XXXXXX")
cleanup() {
  if [ "${SANITIZE_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The source tree without build products, caches or virtual environments.
tar -C "$root" -cf - \
  --exclude=.git --exclude=build --exclude=dist --exclude='*.egg-info' --exclude='*.so' \
  --exclude='*.o' --exclude=__pycache__ --exclude=.pytest_cache --exclude=.hypothesis \
  --exclude=.benchmarks --exclude='.venv*' --exclude=venv . | tar -C "$work" -xf -
mkdir -p "$work/.san/bin" "$work/.san/logs"

# A compiler wrapper that appends the sanitizer flags after setup.py's own (-O3 ...), so that
# they win; it also serves as the linker, which links the sanitizer runtimes.
# -fno-wrapv: Python's own CFLAGS carry -fwrapv, which would hide signed overflow from UBSan.
san_flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -fno-wrapv -O1 -g"
cat >"$work/.san/bin/cxx" <<EOF
#!/bin/sh
exec $(command -v "$cxx") "\$@" $san_flags
EOF
chmod +x "$work/.san/bin/cxx"

cd "$work"
start=$(date +%s)
echo "sanitize: building in $work"
# setup.py compiles one file after the other; pybind11's ParallelCompile uses every core.
build='from pybind11.setup_helpers import ParallelCompile
ParallelCompile(default=0).install()
import runpy, sys
sys.argv = ["setup.py", "build_ext", "--inplace"]
runpy.run_path("setup.py", run_name="__main__")'
if ! CC="$work/.san/bin/cxx" CXX="$work/.san/bin/cxx" \
  "$python" -c "$build" >"$work/.san/build.log" 2>&1; then
  cat "$work/.san/build.log"
  echo "sanitize: build failed" >&2
  exit 1
fi
echo "sanitize: built in $(($(date +%s) - start)) s"

asan_rt=$("$cxx" -print-file-name=libasan.so)
ubsan_rt=$("$cxx" -print-file-name=libubsan.so)
if [ ! -e "$asan_rt" ]; then
  echo "sanitize: $cxx has no libasan.so" >&2
  exit 1
fi
preload="$asan_rt"
[ -e "$ubsan_rt" ] && preload="$preload:$ubsan_rt"

# Python itself leaks at exit: no leak check. Reports go to log files (also those of the
# subprocesses some tests start), so none can hide in captured output.
status=0
LD_PRELOAD="$preload" \
  ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=0:halt_on_error=1:exitcode=99:log_path=$work/.san/logs/asan" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=98:log_path=$work/.san/logs/ubsan" \
  RNNFAST_SANITIZED=1 PYTHONDONTWRITEBYTECODE=1 \
  "$python" -m pytest -q -p no:cacheprovider -x "${tests[@]}" || status=$?

reports=$(find "$work/.san/logs" -type f | sort)
if [ -n "$reports" ]; then
  for f in $reports; do
    echo "==== $f"
    cat "$f"
  done
  echo "sanitize: sanitizer reports found" >&2
  [ "$status" -eq 0 ] && status=1
fi
echo "sanitize: $([ "$status" -eq 0 ] && echo clean || echo FAILED) after $(($(date +%s) - start)) s"
exit "$status"
