#!/bin/sh
# nemorun local job train
# key: exp_20260101_000000/train/0
# output: /local/store/train/log.out
job_dir=/local/store/train
finish() {
  umask 077; printf '{"exit_codes": [%s]}\n' "$1" > "$job_dir/launcher.json"
}
killer=
trap '[ -n "$killer" ] || { (sleep 10 & s=$!; trap "kill $s; exit 0" TERM; wait $s; kill -KILL 0) & killer=$!; }' TERM INT HUP
cd /submitting-cwd || { echo "nemorun: cannot enter the working directory" /submitting-cwd >&2; finish 127; exit 127; }
reap() { while :; do wait "$1"; rc=$?; kill -0 "$1" 2>/dev/null || return "$rc"; done; }
<python> -m torch.distributed.run --nproc-per-node=2 --standalone --max-restarts=0 --module nemorun_core.runner /local/store/train &
pid0=$!
[ -n "$killer" ] && kill -TERM "$pid0" 2>/dev/null
reap "$pid0"; rc0=$?
[ -n "$killer" ] && kill "$killer" 2>/dev/null
finish "$rc0"
