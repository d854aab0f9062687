#!/usr/bin/env bash
# Installs the real third-party RocketMQ clients used by the interop tests
# (tests/interop_*.rs) into target/interop/ (project-local, idempotent):
#
#   target/interop/node/node_modules/ali-ons   Node client ali-ons 3.12.0 (npm)
#   target/interop/node5/node_modules/rocketmq-client-nodejs
#                                              Node 5.x gRPC client rocketmq-client-nodejs 1.0.8 (npm)
#   target/interop/venv5                       Python venv with rocketmq-python-client 5.1.2 (gRPC)
#   target/interop/console/node_modules/playwright-core
#                                              playwright-core (npm, tests/console/package-lock.json) to
#                                              drive Debian's chromium (apt) for tests/console.rs
#   target/interop/venv-http                   Python venv with requests and schemathesis (the REST
#                                              API's tests, tests/rest.rs)
#   target/interop/venv                        Python venv with rocketmq-python-cvs 2.1.0.3,
#                                              which bundles the C++ client core 2.1.0 (librocketmq.so)
#   target/interop/java/build/shardmq-interop-java.jar
#                                              Java scenario programs (tests/interop/java) with
#                                              Apache rocketmq-client 4.9.8, built by Maven
#   target/interop/java/m2                     their Maven local repository (cache it in CI)
#   target/interop/java5/build/shardmq-interop-java5.jar
#                                              Java POP scenario programs (tests/interop/java5) with
#                                              Apache rocketmq-client 5.3.3 (remoting client), built by Maven
#   target/interop/java5/m2                    their Maven local repository (cache it in CI)
#
# Needs node + npm, python3 (with venv), java 17 + maven; installs missing
# Debian packages (python3-venv, nodejs/npm, zlib, libstdc++, openjdk-17,
# maven) with apt-get when run as root. Re-running is cheap: each part is
# skipped when already installed at the pinned version (the Java jar: when
# built from the current tests/interop/java or tests/interop/java5 sources). Writes
# target/interop/.ready when everything works.
#
# Usage: scripts/setup-interop.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DIR="${SHARDMQ_INTEROP_DIR:-$ROOT/target/interop}"
ALIONS_VERSION=3.12.0
NODE5_VERSION=1.0.8
CVS_VERSION=2.1.0.3
PY5_VERSION=5.1.2
REQUESTS_VERSION=2.32.5
SCHEMATHESIS_VERSION=4.32.5
JAVA_SRC="$ROOT/tests/interop/java"
JAVA_DIR="$DIR/java"
JAR="$JAVA_DIR/build/shardmq-interop-java.jar"
# The jar is rebuilt whenever the pom or a Java source changes.
JAVA_HASH=$(cd "$JAVA_SRC" && find pom.xml src ../java-common -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
JAVA5_SRC="$ROOT/tests/interop/java5"
JAVA5_DIR="$DIR/java5"
JAR5="$JAVA5_DIR/build/shardmq-interop-java5.jar"
JAVA5_HASH=$(cd "$JAVA5_SRC" && find pom.xml src ../java-common -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
STAMP="$DIR/.ready"
CONSOLE_LOCK=$(sha256sum "$ROOT/tests/console/package-lock.json" | cut -c1-16)
STAMP_WANT="console=$CONSOLE_LOCK requests=$REQUESTS_VERSION schemathesis=$SCHEMATHESIS_VERSION ali-ons=$ALIONS_VERSION rocketmq-client-nodejs=$NODE5_VERSION rocketmq-python-cvs=$CVS_VERSION rocketmq-python-client=$PY5_VERSION java-scenarios=$JAVA_HASH java5-scenarios=$JAVA5_HASH"

if [[ "${1:-}" == "--force" ]]; then
    rm -rf "$DIR"
fi
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_WANT" && -f "$JAR" && -f "$JAR5" &&
    -f "$DIR/node5/node_modules/rocketmq-client-nodejs/package.json" ]]; then
    echo "interop clients already installed in $DIR"
    exit 0
fi
mkdir -p "$DIR"

apt_updated=0
apt_install() {
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "setup-interop: need Debian packages $* but cannot apt-get install (not root / no apt)" >&2
        exit 1
    fi
    if [[ $apt_updated == 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    echo "setup-interop: apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ---- Node: ali-ons ---------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
NODE_DIR="$DIR/node"
mkdir -p "$NODE_DIR"
have_alions=$(node -e "try{console.log(require('$NODE_DIR/node_modules/ali-ons/package.json').version)}catch(e){console.log('')}")
if [[ "$have_alions" != "$ALIONS_VERSION" ]]; then
    echo "setup-interop: npm install ali-ons@$ALIONS_VERSION into $NODE_DIR"
    if [[ ! -f "$NODE_DIR/package.json" ]]; then
        printf '{\n  "name": "shardmq-interop-clients",\n  "private": true\n}\n' >"$NODE_DIR/package.json"
    fi
    (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error "ali-ons@$ALIONS_VERSION")
fi
node -e "require('$NODE_DIR/node_modules/ali-ons')" || {
    echo "setup-interop: ali-ons does not load" >&2
    exit 1
}

# ---- Node: rocketmq-client-nodejs (5.x gRPC), a directory of its own -------
# (its dependencies, e.g. @grpc/grpc-js, must not meet ali-ons' tree).
NODE5_DIR="$DIR/node5"
mkdir -p "$NODE5_DIR"
have_node5=$(node -e "try{console.log(require('$NODE5_DIR/node_modules/rocketmq-client-nodejs/package.json').version)}catch(e){console.log('')}")
if [[ "$have_node5" != "$NODE5_VERSION" ]]; then
    echo "setup-interop: npm install rocketmq-client-nodejs@$NODE5_VERSION into $NODE5_DIR"
    if [[ ! -f "$NODE5_DIR/package.json" ]]; then
        printf '{\n  "name": "shardmq-interop-clients-5",\n  "private": true\n}\n' >"$NODE5_DIR/package.json"
    fi
    (cd "$NODE5_DIR" && npm install --no-audit --no-fund --loglevel=error "rocketmq-client-nodejs@$NODE5_VERSION")
fi
(cd "$NODE5_DIR" && node -e "require('rocketmq-client-nodejs'); require('rocketmq-client-nodejs/proto/apache/rocketmq/v2/definition_pb')") || {
    echo "setup-interop: rocketmq-client-nodejs does not load" >&2
    exit 1
}

# ---- The web console's browser tests: playwright-core + Debian chromium ------
CONSOLE_DIR="$DIR/console"
mkdir -p "$CONSOLE_DIR"
if ! cmp -s "$ROOT/tests/console/package-lock.json" "$CONSOLE_DIR/package-lock.json" ||
    [[ ! -f "$CONSOLE_DIR/node_modules/playwright-core/package.json" ]]; then
    cp "$ROOT/tests/console/package.json" "$ROOT/tests/console/package-lock.json" "$CONSOLE_DIR/"
    (cd "$CONSOLE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [[ ! -x /usr/bin/chromium ]]; then
    apt_install chromium fonts-liberation
fi

# ---- Python: C++ client core via rocketmq-python-cvs ------------------------
PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
    apt_install python3 python3-venv python3-pip
    PY=python3
fi
VENV="$DIR/venv"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$VENV"
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        apt_install python3-venv
        "$PY" -m venv "$VENV"
    fi
fi
have_cvs=$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('rocketmq-python-cvs'))" 2>/dev/null || true)
if [[ "$have_cvs" != "$CVS_VERSION" ]]; then
    echo "setup-interop: pip install rocketmq-python-cvs==$CVS_VERSION into $VENV"
    "$VENV/bin/pip" install --disable-pip-version-check -q "rocketmq-python-cvs==$CVS_VERSION"
fi
# The 5.x gRPC client (module `rocketmq` too, hence a venv of its own).
VENV5="$DIR/venv5"
if [[ ! -x "$VENV5/bin/python" ]] || ! "$VENV5/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$VENV5"
    "$PY" -m venv "$VENV5"
fi
have_py5=$("$VENV5/bin/python" -c "import importlib.metadata as m; print(m.version('rocketmq-python-client'))" 2>/dev/null || true)
if [[ "$have_py5" != "$PY5_VERSION" ]]; then
    echo "setup-interop: pip install rocketmq-python-client==$PY5_VERSION into $VENV5"
    "$VENV5/bin/pip" install --disable-pip-version-check -q "rocketmq-python-client==$PY5_VERSION"
fi
# The REST API's tests: a plain HTTP client and schemathesis.
VENVH="$DIR/venv-http"
if [[ ! -x "$VENVH/bin/python" ]] || ! "$VENVH/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$VENVH"
    "$PY" -m venv "$VENVH"
fi
have_http=$("$VENVH/bin/python" -c "import importlib.metadata as m; print(m.version('requests'), m.version('schemathesis'))" 2>/dev/null || true)
if [[ "$have_http" != "$REQUESTS_VERSION $SCHEMATHESIS_VERSION" ]]; then
    echo "setup-interop: pip install requests==$REQUESTS_VERSION schemathesis==$SCHEMATHESIS_VERSION into $VENVH"
    "$VENVH/bin/pip" install --disable-pip-version-check -q "requests==$REQUESTS_VERSION" "schemathesis==$SCHEMATHESIS_VERSION"
fi
"$VENVH/bin/st" --version >/dev/null || {
    echo "setup-interop: schemathesis (st) does not run" >&2
    exit 1
}
SO=$("$VENV/bin/python" -c "import os, importlib.util as u; print(os.path.join(os.path.dirname(u.find_spec('rocketmq').origin), 'librocketmq.so'))")
if [[ ! -f "$SO" ]]; then
    echo "setup-interop: $SO missing: rocketmq-python-cvs should bundle librocketmq.so" >&2
    exit 1
fi
# Native dependencies of librocketmq.so (libz, libstdc++, libpthread, libm, libgcc_s).
missing=$(ldd "$SO" | awk '/not found/ {print $1}')
if [[ -n "$missing" ]]; then
    pkgs=()
    for lib in $missing; do
        case "$lib" in
            libz.so*) pkgs+=(zlib1g) ;;
            libstdc++.so*) pkgs+=(libstdc++6) ;;
            libgcc_s.so*) pkgs+=(libgcc-s1) ;;
            *) pkgs+=(libc6) ;;
        esac
    done
    apt_install "${pkgs[@]}"
    if ldd "$SO" | grep -q 'not found'; then
        echo "setup-interop: librocketmq.so still has unresolved libraries:" >&2
        ldd "$SO" | grep 'not found' >&2
        exit 1
    fi
fi
# Import check with HOME pointed away so nothing is written to ~/logs.
tmp_home=$(mktemp -d)
trap 'rm -rf "$tmp_home"' EXIT
HOME="$tmp_home" "$VENV/bin/python" -c 'from rocketmq.client import Producer, PushConsumer, Message; import rocketmq.ffi as f; f.dll.ShowProducerVersion' || {
    echo "setup-interop: rocketmq (C++ core) does not load" >&2
    exit 1
}

# ---- Java: rocketmq-client 4.9.8 scenario jar -------------------------------
if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
    apt_install openjdk-17-jdk-headless
fi
if ! command -v mvn >/dev/null 2>&1; then
    apt_install maven
fi
mkdir -p "$JAVA_DIR"
if [[ ! -f "$JAR" || "$(cat "$JAVA_DIR/.built" 2>/dev/null)" != "$JAVA_HASH" ]]; then
    echo "setup-interop: mvn package tests/interop/java (rocketmq-client) into $JAVA_DIR/build"
    rm -f "$JAVA_DIR/.built"
    if ! mvn -q -B -f "$JAVA_SRC/pom.xml" \
        -Dmaven.repo.local="$JAVA_DIR/m2" -Dinterop.build.dir="$JAVA_DIR/build" package; then
        echo "setup-interop: FAILED: mvn package of tests/interop/java (see the Maven output above)" >&2
        exit 1
    fi
    if [[ ! -f "$JAR" ]]; then
        echo "setup-interop: FAILED: mvn package produced no $JAR" >&2
        exit 1
    fi
    echo "$JAVA_HASH" >"$JAVA_DIR/.built"
fi
# Smoke test: the program starts and rejects missing options with a JSON error line.
smoke=$(java -jar "$JAR" producer 2>/dev/null || true)
if [[ "$smoke" != *'is required"'* ]]; then
    echo "setup-interop: FAILED: $JAR does not run (got: $smoke)" >&2
    exit 1
fi

# ---- Java: rocketmq-client 5.3.3 POP scenario jar ----------------------------
# Same way as the 4.9.8 jar, with its own Maven repository (the 5.x client
# pulls other versions of the shared dependencies).
mkdir -p "$JAVA5_DIR"
if [[ ! -f "$JAR5" || "$(cat "$JAVA5_DIR/.built" 2>/dev/null)" != "$JAVA5_HASH" ]]; then
    echo "setup-interop: mvn package tests/interop/java5 (rocketmq-client 5.x) into $JAVA5_DIR/build"
    rm -f "$JAVA5_DIR/.built"
    if ! mvn -q -B -f "$JAVA5_SRC/pom.xml" \
        -Dmaven.repo.local="$JAVA5_DIR/m2" -Dinterop.build.dir="$JAVA5_DIR/build" package; then
        echo "setup-interop: FAILED: mvn package of tests/interop/java5 (see the Maven output above)" >&2
        exit 1
    fi
    if [[ ! -f "$JAR5" ]]; then
        echo "setup-interop: FAILED: mvn package produced no $JAR5" >&2
        exit 1
    fi
    echo "$JAVA5_HASH" >"$JAVA5_DIR/.built"
fi
smoke=$(java -jar "$JAR5" raw 2>/dev/null || true)
if [[ "$smoke" != *'is required"'* ]]; then
    echo "setup-interop: FAILED: $JAR5 does not run (got: $smoke)" >&2
    exit 1
fi

echo "$STAMP_WANT" >"$STAMP"
echo "interop clients installed in $DIR"
