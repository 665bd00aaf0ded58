#!/usr/bin/env bash
# The Herald demo, run by `make demo` inside localstack/with-emulator (which starts the
# emulator, exports AWS_ENDPOINT_URL and stops the emulator afterwards).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=.venv/bin/python
bin=target/debug
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
field() { $py -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

say "1. Deploying the data plane (infra/data-plane.yaml) into the local AWS emulator at $AWS_ENDPOINT_URL"
mkdir -p .run
$py localstack/herald_local.py up --stage demo --env-file .run/demo.env
set -a; . .run/demo.env; set +a

port_a=$(free_port); port_b=$(free_port)
say "2. Registering two webhooks for app 'shop'"
a=$($bin/herald --json webhooks add --app shop --url "http://127.0.0.1:$port_a/hooks" --events update --object-types user --description "user updates")
b=$($bin/herald --json webhooks add --app shop --url "http://127.0.0.1:$port_b/hooks" --events '*' --description "everything")
echo "   A: $(echo "$a" | field id)  update on user  -> 127.0.0.1:$port_a"
echo "   B: $(echo "$b" | field id)  every event     -> 127.0.0.1:$port_b"
secret_a=$(echo "$a" | field secret); secret_b=$(echo "$b" | field secret)

say "3. Starting two receivers that verify every signature (herald listen) and the worker"
$bin/herald listen --port "$port_a" --secret "$secret_a" --count 2 --timeout-secs 60 --name "A user-updates" & listen_a=$!
$bin/herald listen --port "$port_b" --secret "$secret_b" --count 7 --timeout-secs 60 --name "B everything  " & listen_b=$!
pids+=("$listen_a" "$listen_b")
HERALD_ALLOW_PRIVATE_NETWORKS=127.0.0.1/32 HERALD_WORKER_WAIT_SECONDS=1 RUST_LOG=${RUST_LOG:-warn} $bin/herald-worker & pids+=($!)
sleep 1

say "4. Publishing seven Para-style events onto the SQS events queue"
$bin/herald publish --app shop --type create       --object-type user    --data '{"id":"u1","name":"Ada"}'
$bin/herald publish --app shop --type update       --object-type user    --data '{"id":"u1","name":"Ada Lovelace"}'
$bin/herald publish --app shop --type update       --object-type invoice --data '{"id":"i9","total":120}'
$bin/herald publish --app shop --type update       --object-type user    --data '{"id":"u2","name":"Grace"}'
$bin/herald publish --app shop --type delete       --object-type user    --data '{"id":"u2"}'
$bin/herald publish --app shop --type createAll    --object-type user    --data '[{"id":"u3"},{"id":"u4"}]'
$bin/herald publish --app shop --type invoice.paid --object-type invoice --data '{"id":"i9","paid":true}'

say "5. Waiting for the deliveries (A expects the 2 user updates, B all 7)"
status=0
wait "$listen_a" || status=1
wait "$listen_b" || status=1
if [ $status -eq 0 ]; then
  say "Done. Every delivery arrived with a valid Standard Webhooks signature."
  cat <<'TXT'
   What happened: each `herald publish` put one event on the SQS queue. The worker
   (the same handler that runs on Lambda) long-polled the queue, looked up the
   matching webhooks in DynamoDB, signed each payload with the webhook's secret
   (webhook-id / webhook-timestamp / webhook-signature headers) and POSTed it.
   Each listener verified the signature before answering 204.
   Everything started here (receivers, worker, emulator) is now being stopped.
TXT
else
  say "Some deliveries did not arrive in time (see above)."
fi
exit $status
