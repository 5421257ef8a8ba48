#!/bin/sh
# nemorun local job train
# key: exp_20260101_000000/train/0
# output: /store/exp/train/log.out
# environment (from the submitting process):
#   HF_TOKEN=<secret>
#   NCCL_DEBUG=INFO
#   TRAIN_MODE=fast
job_dir=/store/exp/train
finish() {
  umask 077; printf '{"exit_codes": [%s]}\n' "$1" > "$job_dir/launcher.json"
}
killer=
trap '[ -n "$killer" ] || { (sleep 5 & s=$!; trap "kill $s; exit 0" TERM; wait $s; kill -KILL 0) & killer=$!; }' TERM INT HUP
cd /work/project || { echo "nemorun: cannot enter the working directory" /work/project >&2; finish 127; exit 127; }
reap() { while :; do wait "$1"; rc=$?; kill -0 "$1" 2>/dev/null || return "$rc"; done; }
RANK=0 LOCAL_RANK=0 WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 NODE_RANK=0 GROUP_RANK=0 NEMORUN_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=34791 /opt/venv/bin/python3 -m nemorun_core.runner /store/exp/train &
pid0=$!
RANK=1 LOCAL_RANK=1 WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 NODE_RANK=0 GROUP_RANK=0 NEMORUN_RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=34791 /opt/venv/bin/python3 -m nemorun_core.runner /store/exp/train &
pid1=$!
[ -n "$killer" ] && kill -TERM "$pid0" "$pid1" 2>/dev/null
reap "$pid0"; rc0=$?
reap "$pid1"; rc1=$?
[ -n "$killer" ] && kill "$killer" 2>/dev/null
finish "$rc0, $rc1"
