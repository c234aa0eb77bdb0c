#!/usr/bin/env bash
# Materialize a dataset into s3:// as a Slurm job array: one task per part.
# tilestack reads the part from SLURM_ARRAY_TASK_ID (minus
# SLURM_ARRAY_TASK_MIN) and the number of parts from SLURM_ARRAY_TASK_COUNT,
# so the same line runs unchanged in every task. The last part to finish
# merges the part indexes into index.json. A task that is preempted or
# killed and requeued skips the shards it already wrote; the result is
# byte-identical to an uninterrupted run.
#
#   sbatch docs/materialize-slurm.sh
#
#SBATCH --job-name=materialize-oakland-ships
#SBATCH --array=0-7
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=02:00:00
#SBATCH --requeue
#SBATCH --output=materialize-%A-%a.log
set -euo pipefail
# Credentials the usual way (object_store reads AWS_*; or an instance role).
export AWS_REGION=${AWS_REGION:-us-west-2}
export RUST_LOG=${RUST_LOG:-tilestack=info}
tilestack materialize \
  --config datasets/oakland-ships.toml \
  --out s3://my-bucket/oakland-ships
# Were a merge ever needed by hand (every part index present, no index.json):
#   tilestack materialize --merge --parts 8 --out s3://my-bucket/oakland-ships
