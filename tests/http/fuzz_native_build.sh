#!/usr/bin/env bash
# Build engine._http and engine._ws with clang's libFuzzer coverage instrumentation and ASan,
# into a copy of the installed engine package, for a coverage-guided atheris run:
#
#   tests/http/fuzz_native_build.sh /tmp/engine-fuzz            # needs clang and atheris
#   PYTHONPATH=/tmp/engine-fuzz ASAN_OPTIONS=detect_leaks=0 \
#     LD_PRELOAD="$(python -c 'import atheris; print(atheris.path())')/asan_with_fuzzer.so" \
#     python tests/http/fuzz_parser.py -max_total_time=3600 -max_len=4096 fuzz-corpus/
#
# (Without this build atheris only sees the Python harness, not the C parser: it still runs
# the checks, but blind.) Run from the repository root with the Python that has engine
# installed (PYTHON=... to choose another).
set -euo pipefail
out=${1:?usage: $0 OUTPUT_DIR}
py=${PYTHON:-python}
cc=${CC:-$(command -v clang || command -v clang-14 || true)}
[ -n "$cc" ] || { echo "clang is needed (apt-get install clang)" >&2; exit 1; }
site=$(cd / && "$py" -c 'import engine, os; print(os.path.dirname(engine.__file__))')
inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
mkdir -p "$out"
rm -rf "$out/engine"
cp -r "$site" "$out/engine"
for spec in "_http pyx/http/http.pyx" "_ws pyx/ws/ws.pyx"; do
  set -- $spec
  "$py" -m cython -3 -X language_level=3,boundscheck=False,wraparound=False,cdivision=True \
    --module-name "engine.$1" -I pyx "$2" -o "$out/$1.c"
  "$cc" -shared -fPIC -O1 -g -fsanitize=address,fuzzer-no-link -D_GNU_SOURCE \
    -I"$inc" -Ipyx "$out/$1.c" -o "$out/engine/$1$suffix"
done
echo "instrumented engine._http and engine._ws in $out/engine"
