#!/usr/bin/env bash
# The Herald demo, run by `make demo` inside localstack/with-emulator (which starts a
# private emulator, exports AWS_ENDPOINT_URL and stops the emulator afterwards).
# Every step uses the real interface: the `herald` CLI and, through it, the HTTP API.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=.venv/bin/python
herald=target/debug/herald
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
note() { printf '    %s\n' "$*"; }
# Shows a command as you would type it (quoted where needed), then runs it.
show() {
  local line="" a q="'"
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=@,+-]+$ ]]; then line+=" $a"; else line+=" $q${a//$q/$q\\$q$q}$q"; fi
  done
  printf '\033[2m    $ herald%s\033[0m\n' "$line"
}
run() { show "$@"; "$herald" "$@"; }
free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
field() { $py -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

say "1. Deploying the data plane (infra/data-plane.yaml) into the local AWS emulator at $AWS_ENDPOINT_URL"
mkdir -p .run
run up --no-emulator --stage demo --env-file .run/demo.env
set -a; . .run/demo.env; set +a

say "2. Starting the management API (herald serve) and the worker (herald worker)"
api_port=$(free_port)
export HERALD_API_URL="http://127.0.0.1:$api_port"
HERALD_ADMIN_KEY="demo-admin-$($py -c 'import secrets; print(secrets.token_hex(12))')"
export HERALD_ADMIN_KEY
# Development mode: http:// webhook URLs, and deliveries to 127.0.0.1 allowed.
export HERALD_API_ALLOW_HTTP=true HERALD_ALLOW_PRIVATE_NETWORKS=127.0.0.1/32
export HERALD_WORKER_WAIT=1s RUST_LOG=${RUST_LOG:-warn}
"$herald" serve --addr "127.0.0.1:$api_port" & pids+=($!)
"$herald" worker & pids+=($!)
for _ in $(seq 1 100); do
  if "$herald" apps list >/dev/null 2>&1; then break; fi
  sleep 0.2
done
note "API on $HERALD_API_URL (admin key in HERALD_ADMIN_KEY); the worker polls the events queue."

say "3. Creating an app (a tenant) and an API key for it, with the admin key"
run apps create --id shop --name "The shop"
show --json keys create --app shop
key=$("$herald" --json keys create --app shop)
HERALD_API_KEY=$(echo "$key" | field key)
export HERALD_API_KEY
note "created key $(echo "$key" | field id) (shown once): export HERALD_API_KEY=$HERALD_API_KEY"

say "4. Registering two webhooks for app 'shop' with that key"
port_a=$(free_port); port_b=$(free_port)
show --json webhooks add --url "http://127.0.0.1:$port_a/hooks" --events update --object-types user --description "user updates"
a=$("$herald" --json webhooks add --url "http://127.0.0.1:$port_a/hooks" --events update --object-types user --description "user updates")
show --json webhooks add --url "http://127.0.0.1:$port_b/hooks" --events '*' --description "everything"
b=$("$herald" --json webhooks add --url "http://127.0.0.1:$port_b/hooks" --events '*' --description "everything")
id_a=$(echo "$a" | field id); id_b=$(echo "$b" | field id)
secret_a=$(echo "$a" | field secret); secret_b=$(echo "$b" | field secret)
note "A: $id_a  update on user  -> 127.0.0.1:$port_a"
note "B: $id_b  every event     -> 127.0.0.1:$port_b"
run webhooks list

say "5. Starting two receivers that verify every signature (herald listen)"
captures=.run/demo-captures
rm -rf "$captures"
"$herald" listen --port "$port_a" --secret "$secret_a" --count 2 --timeout-secs 60 --name "A user-updates" & listen_a=$!
"$herald" listen --port "$port_b" --secret "$secret_b" --count 7 --timeout-secs 60 --name "B everything  " --save-dir "$captures" & listen_b=$!
pids+=("$listen_a" "$listen_b")
sleep 1

say "6. Publishing seven Para-style events through the API (herald publish)"
run publish --type create --object-type user --data '{"id":"u1","name":"Ada"}'
second=$(run publish --type update --object-type user --data '{"id":"u1","name":"Ada Lovelace"}')
echo "$second"
event=$(echo "$second" | awk '/^published/ {print $2; exit}')
run publish --type update --object-type invoice --data '{"id":"i9","total":120}'
run publish --type update --object-type user --data '{"id":"u2","name":"Grace"}'
note "... and three more at once, as JSON lines on standard input:"
printf '%s\n' \
  '{"type":"delete","object_type":"user","data":{"id":"u2"}}' \
  '{"type":"createAll","object_type":"user","data":[{"id":"u3"},{"id":"u4"}]}' \
  '{"type":"invoice.paid","object_type":"invoice","data":{"id":"i9","paid":true}}' \
  | run publish

say "7. Waiting for the deliveries (A expects the 2 user updates, B all 7)"
status=0
wait "$listen_a" || status=1
wait "$listen_b" || status=1
if [ $status -ne 0 ]; then
  say "Some deliveries did not arrive in time (see above)."
  exit $status
fi

say "8. The delivery history of event $event (herald deliveries --event)"
for _ in $(seq 1 50); do
  n=$("$herald" --json deliveries --event "$event" 2>/dev/null \
      | $py -c 'import json,sys; print(len(json.load(sys.stdin)["data"]))') || n=0
  [ "$n" -ge 2 ] && break
  sleep 0.2
done
run deliveries --event "$event"
note "One attempt per webhook it matched (A and B), each answered 204 by its receiver."

say "9. The app's events and the health of its endpoints (herald events list, herald webhooks list)"
run events list --limit 3
run webhooks list
note "Newest first; each webhook with its last 24 h: attempts, success rate, p95 latency."

say "10. Checking a saved delivery offline (herald verify)"
capture=$(ls "$captures"/*.json | head -1)
run verify --secret "$secret_b" --file "$capture"
run verify --secret "$secret_a" --file "$capture" \
  || note "(exit $?: as expected, A's secret did not sign B's delivery)"

say "Done. Every delivery arrived with a valid Standard Webhooks signature."
cat <<'TXT'
   What happened: `herald serve` ran the management API; the admin key created the app
   and its API key; with that key, `herald webhooks add` registered two endpoints and
   `herald publish` sent seven events to POST /v1/events, which put them on the SQS
   events queue. `herald worker` (the same handler that runs on Lambda) long-polled the
   queue, matched each event to the webhooks in DynamoDB, signed the payload with each
   webhook's secret (webhook-id / webhook-timestamp / webhook-signature headers), POSTed
   it and recorded every attempt in the delivery history (`herald deliveries`). Each
   `herald listen` verified the signatures before answering 204.
   Everything started here (receivers, worker, API, emulator) is now being stopped.
TXT
