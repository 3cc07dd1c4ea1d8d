#!/bin/sh
# Container entry point for the ClusterScope image (see Dockerfile and docs/docker.md).
#
#   (no arguments) or Streamlit options only, e.g. `--server.maxUploadSize 500`:
#       start building the demo store in the background if the store has no runs yet (or resume a
#       demo build that was started in this store before), then serve the dashboard; the options
#       go to `clusterscope app`.
#   any other command, e.g. `clusterscope runs` or `sh`: run it as is (no demo build).
#
# CLUSTERSCOPE_DEMO=auto (default) builds the demo as described; CLUSTERSCOPE_DEMO=never never does.
set -eu

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

CLUSTERSCOPE_STORE="${CLUSTERSCOPE_STORE:-/data/store}"
export CLUSTERSCOPE_STORE

log() {
    echo "clusterscope-entrypoint: $*" >&2
}

# Whether the store holds at least one run (a folder with a run.json, as RunStore.run_ids sees it).
has_runs() {
    for run_json in "$1"/*/run.json; do
        if [ -f "$run_json" ]; then
            return 0
        fi
    done
    return 1
}

case "${CLUSTERSCOPE_DEMO:-auto}" in
    auto)
        # .demo.log exists once `clusterscope demo --detach` ran here: then complete a demo build
        # that a stopped container interrupted (--if-missing does nothing when it is complete).
        if ! has_runs "$CLUSTERSCOPE_STORE" || [ -f "$CLUSTERSCOPE_STORE/.demo.log" ]; then
            # The demo only adds runs; if it cannot start (e.g. a read-only store), still serve.
            if ! clusterscope demo --if-missing --detach; then
                log "could not start the demo build in $CLUSTERSCOPE_STORE; serving the store as it is."
            fi
        fi
        ;;
    never)
        ;;
    *)
        log "CLUSTERSCOPE_DEMO must be 'auto' or 'never', not '${CLUSTERSCOPE_DEMO}'."
        exit 2
        ;;
esac

exec clusterscope app "$@"
