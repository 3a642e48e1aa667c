#!/usr/bin/env bash
# Idempotent developer set-up: Python venv with the client and dev tools, the pinned npm toolchain,
# the solc executable py-solc-x looks for, and the Brownie stateful-testing fix. Safe to run often:
# each step is skipped when its inputs have not changed since it last succeeded.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SOLC_VERSION=$(sed -n 's/^ *version: *\([0-9.]*\) *$/\1/p' brownie-config.yaml | head -n 1)
STAMPS=.setup-stamps
mkdir -p "$STAMPS"

say() { printf '[setup] %s\n' "$*"; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
fresh() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }

# 1. Python: a venv with the package and its dev extra (Brownie, Slither, test tools).
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
py_hash=$(hash_of pyproject.toml)
if ! fresh python "$py_hash"; then
  say "installing nodeclient[dev] into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$py_hash" > "$STAMPS/python"
fi

# 2. Brownie 1.22 ships a compiled stateful module that breaks hypothesis state machines
#    ("_BrownieStateMachine object expected"); removing it makes Brownie use the pure-Python one.
find .venv/lib/python3.*/site-packages/brownie/test -name 'stateful.cpython-*.so' -delete 2>/dev/null || true

# 3. Node toolchain: solcjs, Anvil, Forge with forge-std, Ganache, OpenZeppelin, exactly as locked.
npm_hash=$(hash_of package.json package-lock.json)
if ! fresh npm "$npm_hash" || [ ! -x node_modules/.bin/anvil ] || [ ! -x node_modules/.bin/forge ]; then
  # `npm install` over the committed lockfile rather than `npm ci`: npm 11 records only this
  # platform's optional Anvil binary in the lock, and `npm ci` then refuses the lock as out of sync.
  say "installing the npm toolchain (npm install, pinned by package-lock.json)"
  npm install --no-audit --no-fund --loglevel=error
  echo "$npm_hash" > "$STAMPS/npm"
fi

# 4. Debian's chromium for the dashboard's browser test (tests/dashboard), driven headless over the
#    DevTools Protocol: no browser download from npm. Installing a system package needs root, so this
#    runs apt-get only as root or with password-less sudo; otherwise it says how, and goes on (the
#    browser tests then skip, naming the reason).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    say "installing Debian's chromium (apt-get) for the dashboard browser test"
    apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    say "installing Debian's chromium (sudo apt-get) for the dashboard browser test"
    sudo -n apt-get install -y -q chromium >/dev/null || { sudo -n apt-get update -q >/dev/null && sudo -n apt-get install -y -q chromium >/dev/null; }
  else
    say "chromium is not installed and this is neither root nor password-less sudo: run 'sudo apt-get install chromium'" \
        "to run tests/dashboard (they skip without it)"
  fi
fi

# 5. solc where py-solc-x looks for it: a native solc of the pinned version if there is one,
#    otherwise the solcjs shim. SOLCX_BINARY_PATH points here, so the user's home is untouched.
mkdir -p .solcx
target=.solcx/solc-v$SOLC_VERSION
if command -v solc >/dev/null 2>&1 && solc --version 2>/dev/null | grep -q "Version: $SOLC_VERSION+"; then
  ln -sf "$(command -v solc)" "$target"
else
  cat > "$target" <<SHIM
#!/usr/bin/env bash
exec node "$ROOT/tools/solc-shim.js" "\$@"
SHIM
  chmod +x "$target"
fi
"$target" --version | grep -q "Version: $SOLC_VERSION+" || { echo "[setup] $target does not report solc $SOLC_VERSION" >&2; exit 1; }
say "ready: python $(.venv/bin/python -V 2>&1 | cut -d' ' -f2), solc $SOLC_VERSION ($(readlink "$target" >/dev/null && echo native || echo solcjs shim)), anvil $(node_modules/.bin/anvil --version | head -n1 | awk "{print \$3}"), forge $(node_modules/.bin/forge --version | head -n1 | awk "{print \$3}"), chromium $(command -v chromium >/dev/null 2>&1 && chromium --version 2>/dev/null | awk '{print $2}' || echo "not installed")"
