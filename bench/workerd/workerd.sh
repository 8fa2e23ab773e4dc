# Sourced by bench/compare and bench/cluster/run.sh (from the repository's
# root): the workerd release to compare with, and starting it.
#
#   workerd_install          sets WORKERD (the binary) and WORKERD_VERSION: the
#                            newest release on npm unless WORKERD_VERSION pins
#                            one (offline: the newest installed before), kept
#                            under $DOBJ_BENCH_CACHE (~/.cache/dobj-bench)
#   workerd_start PORT DIR   serves bench/workerd/worker.js on 127.0.0.1:PORT,
#                            its storage under DIR, its log in DIR.log; sets
#                            workerd_pid

workerd_install() {
  local cache=${DOBJ_BENCH_CACHE:-$HOME/.cache/dobj-bench}
  WORKERD_VERSION=${WORKERD_VERSION:-latest}
  if [[ $WORKERD_VERSION == latest ]]; then
    WORKERD_VERSION=$(npm view workerd version 2>/dev/null || true)
    if [[ -z $WORKERD_VERSION ]]; then  # offline: the newest one installed before
      WORKERD_VERSION=$(ls "$cache" 2>/dev/null | sed -n 's/^workerd-//p' | sort -V | tail -1)
      [[ -n $WORKERD_VERSION ]] || { echo "npm cannot tell workerd's latest version" >&2; return 1; }
    fi
  fi
  local dir=$cache/workerd-$WORKERD_VERSION
  if [[ ! -x $dir/node_modules/.bin/workerd ]]; then
    echo "installing workerd $WORKERD_VERSION from npm into $dir" >&2
    mkdir -p "$dir"
    # A package.json of its own, or npm installs into the nearest folder above that has one.
    [[ -f $dir/package.json ]] || echo '{ "private": true }' >"$dir/package.json"
    (cd "$dir" && npm install --no-audit --no-fund "workerd@$WORKERD_VERSION" >/dev/null)
  fi
  WORKERD=$dir/node_modules/.bin/workerd
  echo "workerd $("$WORKERD" --version 2>/dev/null | head -1) ($WORKERD_VERSION)" >&2
}

workerd_start() {
  local port=$1 dir=$2
  mkdir -p "$dir/data"
  cp bench/workerd/worker.js "$dir/"
  sed -e "s|@PORT@|$port|; s|@DATA@|$dir/data|; s|@WORKER@|worker.js|" \
    bench/workerd/config.capnp.in >"$dir/config.capnp"
  (cd "$dir" && exec "$WORKERD" serve config.capnp) >"$dir.log" 2>&1 &
  workerd_pid=$!
}
