#!/usr/bin/env bash
# Submit a sweep spec to a running Ray cluster with `ray job submit`.
#   cluster/submit-sweep.sh SPEC_DIR SPEC.yaml [extra `rnnprune sweep` options, e.g. --resume]
# SPEC_DIR (uploaded as the job's working directory) holds the spec and the trial configs it names;
# the spec's storage_path must be on storage every node shares (e.g. /mnt/shared/sweeps).
# Environment (nothing here is stored in the repository):
#   RAY_ADDRESS               the head's dashboard, e.g. http://127.0.0.1:8265 through
#                             `ray dashboard cluster/aws/ray-cluster.yaml` or `kubectl port-forward`
#   RAY_AUTH_TOKEN            the cluster's Ray token (or RAY_AUTH_TOKEN_PATH), with RAY_AUTH_MODE=token
#   MLFLOW_TRACKING_URI       the tracking server as the Ray nodes reach it
#   MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD   an MLflow user allowed to create experiments
set -euo pipefail
usage="usage: submit-sweep.sh SPEC_DIR SPEC.yaml [rnnprune sweep options]"
spec_dir=${1:?$usage}
spec=${2:?$usage}
shift 2
: "${RAY_ADDRESS:?set RAY_ADDRESS to the dashboard address of the head, e.g. http://127.0.0.1:8265}"
: "${MLFLOW_TRACKING_URI:?set MLFLOW_TRACKING_URI to the tracking server (http://HOST:5000)}"
: "${MLFLOW_TRACKING_USERNAME:?set MLFLOW_TRACKING_USERNAME}"
: "${MLFLOW_TRACKING_PASSWORD:?set MLFLOW_TRACKING_PASSWORD}"
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}

# The runtime environment reaches the driver; rnnprune forwards the MLflow credentials from the
# driver to every trial worker (FORWARDED_ENV in rnnprune/sweep/runner.py). Job runtime
# environments are visible to whoever can read the dashboard: on shared clusters prefer putting the
# credentials into the nodes' environment from a secret store (cluster/kuberay/raycluster.yaml).
# RAY_OVERRIDE_JOB_RUNTIME_ENV=1: the driver's ray.init repeats these keys for its workers, and
# without it Ray 2.60 fails the job ("Failed to merge the Job's runtime env ... because of a conflict").
runtime_env=$(python3 -c 'import json, os; print(json.dumps({"env_vars": {"RAY_OVERRIDE_JOB_RUNTIME_ENV": "1",
    **{k: os.environ[k] for k in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}}}))')

exec ray job submit --address "$RAY_ADDRESS" --working-dir "$spec_dir" \
    --runtime-env-json "$runtime_env" -- rnnprune sweep "$spec" "$@"
