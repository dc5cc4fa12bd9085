#!/usr/bin/env bash
# Builds rnnfast._C with AddressSanitizer and UndefinedBehaviorSanitizer in a temporary copy of
# the source tree and runs the kernel tests under it. Exits non-zero on any sanitizer report or
# test failure. Installs nothing: needs g++ (with libasan), and numpy, pybind11, Cython,
# setuptools, pytest and hypothesis in the Python it runs (the [test] extra has them). About 1.5 min on two idle cores (half of it the
# build), several minutes on a busy machine.
#
#   tests/sanitize.sh                      # the default kernel test files
#   tests/sanitize.sh tests/test_conv.py   # only these (paths relative to the source root)
#   tests/sanitize.sh --python tests/fuzz_bindings.py --calls 100000 --isolate
#                                          # a script instead of pytest, with its arguments
#                                          # (tests/fuzz_bindings.py: the scheduled long run)
#
# Environment: PYTHON (default: python3), CXX (default: g++), SANITIZE_KEEP=1 keeps the copy.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
cxx=${CXX:-g++}

script=()
if [ "${1:-}" = --python ]; then
  shift
  [ "$#" -gt 0 ] || { echo "sanitize: --python needs a script" >&2; exit 2; }
  script=("$@")
elif [ "$#" -gt 0 ]; then
  tests=("$@")
else
  tests=(
    tests/test_gemm.py
    tests/test_functional_recurrent.py
    tests/test_conv.py
    tests/test_pool.py
    tests/test_threads.py
    tests/test_bad_input_matrix.py
    tests/test_fuzz_bindings.py
    tests/test_reliability_odd_inputs.py
    tests/test_reliability_threads.py
    tests/test_reliability_numerics.py
    tests/test_properties.py
  )
fi

missing=$("$python" -c '
import importlib.util
need = ["numpy", "pybind11", "Cython", "setuptools", "pytest", "hypothesis"]
print(" ".join(m for m in need if importlib.util.find_spec(m) is None))')
if [ -n "$missing" ]; then
  echo "sanitize: $python lacks $missing (this script installs nothing)" >&2
  exit 2
fi
if ! command -v "$cxx" >/dev/null; then
  echo "sanitize: no C++ compiler $cxx" >&2
  exit 2
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
san_flags="-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=undefined,float-cast-overflow -fno-omit-frame-pointer -fno-wrapv -O1 -g"
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

# The tests must import the sanitized build of this copy, not an installed rnnfast.
if ! LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0 "$python" -c '
import os, sys
import rnnfast._C as c
sys.exit(0 if os.path.dirname(os.path.abspath(c.__file__)) == os.path.join(os.getcwd(), "rnnfast")
         else "sanitize: the tests would import " + c.__file__)'; then
  exit 1
fi
# (grep without -q reads all of nm's output: with -q, nm could die of SIGPIPE, and pipefail.)
if ! nm -D "$work"/rnnfast/_C*.so | grep __asan_ >/dev/null; then
  echo "sanitize: the build of rnnfast._C is not instrumented" >&2
  exit 1
fi

# Python itself leaks at exit: no leak check. Huge allocations (the MemoryError tests) fail
# with NULL instead of a report. ASan writes its reports (also those of the subprocesses some
# tests start) to log files; UBSan writes to stderr, which `--capture=sys` leaves uncaptured
# (pytest's default fd capture would lose a report that ends the process). Any sanitizer
# report also ends the process with its exit code; a subprocess's ends its test.
if [ "${#script[@]}" -gt 0 ]; then
  run=("$python" "${script[@]}")
else
  run=("$python" -m pytest -q -p no:cacheprovider --capture=sys -x "${tests[@]}")
fi
status=0
LD_PRELOAD="$preload" \
  ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:exitcode=99:log_path=$work/.san/logs/asan" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=98" \
  RNNFAST_SANITIZED=1 PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$work${PYTHONPATH:+:$PYTHONPATH}" \
  "${run[@]}" 2> >(tee "$work/.san/stderr.log" >&2) || status=$?
wait  # for tee

found=0
for f in $(find "$work/.san/logs" -type f | sort); do
  # Allocation failures the tests provoke on purpose are warnings, not reports.
  if grep -v "WARNING: AddressSanitizer failed to allocate" "$f" | grep -q .; then
    echo "==== $f"
    cat "$f"
    found=1
  fi
done
if grep -qE "runtime error:|ERROR: AddressSanitizer|AddressSanitizer: CHECK|SUMMARY: (Address|UndefinedBehavior)Sanitizer" \
  "$work/.san/stderr.log"; then
  found=1
fi
if [ "$found" -ne 0 ]; then
  echo "sanitize: sanitizer reports found" >&2
  [ "$status" -eq 0 ] && status=1
fi
echo "sanitize: $([ "$status" -eq 0 ] && echo clean || echo "FAILED ($status)") after $(($(date +%s) - start)) s"
exit "$status"
