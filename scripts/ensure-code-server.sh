#!/usr/bin/env bash
# Installs code-server 4.100.3 (VS Code 1.100.3) into a cache outside the clone, offline from the
# npm registry, exactly as /work/shared/notes/offline-vscode.md describes, plus the Debian packages
# it needs. Idempotent: once the marker file exists a re-run only checks it and exits.
#
#   scripts/ensure-code-server.sh            # install if needed, print the install dir last
#   MANAGED_DOWNLOADS_CACHE=/some/dir scripts/ensure-code-server.sh
#
# The last line of stdout is the absolute path of the code-server package
# (…/code-server-4.100.3/node_modules/code-server), so callers can use `| tail -n1`.
set -euo pipefail

VERSION=4.100.3
CACHE="${MANAGED_DOWNLOADS_CACHE:-$HOME/.cache/managed-downloads}"
DIR="$CACHE/code-server-$VERSION"
MARKER="$DIR/.install-complete"
PKG="$DIR/node_modules/code-server"
# libkrb5-dev: kerberos native module; ripgrep: search (replaces @vscode/ripgrep's download);
# chromium: headless browser for the tests; make/g++/python3: node-gyp rebuilds.
APT_PACKAGES=(libkrb5-dev ripgrep chromium make g++ python3 ca-certificates)

log() { printf '[ensure-code-server] %s\n' "$*" >&2; }
die() { printf '[ensure-code-server] ERROR: %s\n' "$*" >&2; exit 1; }

missing_packages() {
  local p out=()
  for p in "${APT_PACKAGES[@]}"; do
    # python3 may come from elsewhere (pyenv); only require the Debian package when absent.
    if [[ $p == python3 ]] && command -v python3 >/dev/null 2>&1; then continue; fi
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      out+=("$p")
    fi
  done
  echo "${out[*]:-}"
}

ensure_apt() {
  local missing
  missing="$(missing_packages)"
  [[ -z $missing ]] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing packages ($missing) and no apt-get to install them"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "missing packages ($missing): run as root or install them: apt-get install -y $missing"
    sudo=(sudo)
  fi
  local aptlog="${TMPDIR:-/tmp}/ensure-code-server-apt.$$.log"
  log "installing Debian packages: $missing (apt output: $aptlog)"
  if ! "${sudo[@]}" apt-get update -qq >"$aptlog" 2>&1; then
    tail -n 20 "$aptlog" >&2
    die "apt-get update failed"
  fi
  # shellcheck disable=SC2086
  if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq $missing >>"$aptlog" 2>&1; then
    tail -n 20 "$aptlog" >&2
    die "apt-get install $missing failed"
  fi
  rm -f "$aptlog"
}

# Fast path: marker present and packages installed.
if [[ -f $MARKER && -f $PKG/out/node/entry.js && -z $(missing_packages) ]]; then
  echo "$PKG"
  exit 0
fi

ensure_apt

command -v node >/dev/null 2>&1 || die "node not found on PATH"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[[ $node_major == 20 ]] || die "code-server $VERSION needs Node 20 (found $(node -v))"

mkdir -p "$CACHE"
# Serialise concurrent installs (two worktrees, CI jobs on one machine).
exec 9>"$CACHE/.code-server-$VERSION.lock"
flock 9
if [[ -f $MARKER && -f $PKG/out/node/entry.js ]]; then
  log "installed by a concurrent run"
  echo "$PKG"
  exit 0
fi

# node-gyp must find the headers locally (nodejs.org is unreachable): point it at Node's prefix.
if [[ -z ${npm_config_nodedir:-} ]]; then
  node_prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  if [[ -f $node_prefix/include/node/node.h ]]; then
    export npm_config_nodedir="$node_prefix"
  fi
fi
export npm_config_yes=true npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

STAGE="$CACHE/.code-server-$VERSION.staging"
rm -rf "$STAGE" "$DIR"
mkdir -p "$STAGE"
start=$SECONDS
step() { log "[$((SECONDS - start))s] $*"; }

cd "$STAGE"
printf '{ "name": "code-server-cache", "private": true }\n' > package.json
step "npm install code-server@$VERSION (no scripts)"
npm install --no-save --ignore-scripts --loglevel=error "code-server@$VERSION" >&2 || die "npm install code-server@$VERSION failed"

cd "$STAGE/node_modules/code-server/lib/vscode"
step "installing VS Code's runtime dependencies"
npm install --omit=dev --ignore-scripts --loglevel=error >&2 || die "npm install in lib/vscode failed"
step "rebuilding native modules (node-pty, @parcel/watcher, spdlog, kerberos, native-watchdog, deviceid)"
npm rebuild --loglevel=error node-pty @parcel/watcher @vscode/spdlog kerberos native-watchdog @vscode/deviceid >&2 \
  || die "npm rebuild of VS Code's native modules failed"
mkdir -p node_modules/@vscode/ripgrep/bin
ln -sf "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
ln -sfn node_modules node_modules.asar

cd extensions
step "installing built-in extensions' dependencies"
npm install --omit=dev --ignore-scripts --loglevel=error >&2 || die "npm install in lib/vscode/extensions failed"

# argon2 (code-server's password hashing, loaded even with --auth none) is hoisted next to
# code-server in the cache folder, so rebuild it from there (the notes' `cd node_modules/code-server`
# finds nothing to rebuild when it was hoisted).
cd "$STAGE"
step "rebuilding argon2"
npm rebuild --loglevel=error argon2 >&2 || die "npm rebuild argon2 failed"
(cd "$STAGE/node_modules/code-server" && node -e 'require("argon2")') >&2 || die "argon2 does not load after rebuild"

# Sanity checks: the native modules load under this Node.
cd "$STAGE/node_modules/code-server/lib/vscode"
node -e '
  for (const m of ["node-pty", "@vscode/spdlog", "@parcel/watcher", "kerberos", "native-watchdog"]) require(m);
' >&2 || die "native modules do not load after rebuild"
[[ -x node_modules/@vscode/ripgrep/bin/rg ]] || die "ripgrep link is broken"

mv "$STAGE" "$DIR"
date -u +%Y-%m-%dT%H:%M:%SZ > "$MARKER"
step "code-server $VERSION installed in $DIR"
echo "$PKG"
