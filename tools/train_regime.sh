#!/usr/bin/env bash
# Train a regime-trial run in chunks (python -m mamlscope regime), one thread, lowest priority,
# shipping its newest checkpoint after each chunk so that a stop loses at most one chunk.
#   tools/train_regime.sh SHAPE LAST [CHUNK] [--algorithm anil --seed 1]
#   e.g. tools/train_regime.sh cpu 12000 1000
set -euo pipefail
shape=$1 last=$2 chunk=${3:-1000}
shift $(( $# < 3 ? $# : 3 ))
py=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# With the kernel's autogroup scheduling (the default on desktop and many server kernels), nice only
# ranks processes within one session: started with setsid or from another terminal, a nice-19
# training still took a full core from the tests beside it (measured: 47% CPU each, 4 processes on
# 2 cores). Lowering this session's autogroup makes it yield to everything else.
if [ -w /proc/self/autogroup ]; then echo 19 > /proc/self/autogroup; fi
for ((until = chunk; until <= last; until += chunk)); do
  out=$(nice -n 19 "$py" -m mamlscope regime train "$shape" --until "$until" "$@")
  echo "$out"
  # Nothing trained (the run, restored from the shipped checkpoints, is already past this chunk):
  # go on from the chunk after the run's step, without shipping what is already shipped.
  if [[ $out =~ steps\ ([0-9]+)\ [^0-9]+\ ([0-9]+)\ in ]] && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ]; then
    until=$(( BASH_REMATCH[2] / chunk * chunk )); continue
  fi
  if [ $# -gt 0 ]; then "$py" -m mamlscope regime ship "$shape" "$@" >/dev/null
  else "$py" -m mamlscope regime ship "$shape" --algorithm maml --seed 0 >/dev/null; fi
done
