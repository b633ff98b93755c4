#!/usr/bin/env bash
# The README's CLI walkthrough, unattended: a local chain, two founding members, a third
# admitted by vote, a credential issued to a participant who pulls a model through a running
# gateway, a revocation, the participant refused, and the auditor's check of the log.
# Exits 0 only if every step behaves as the README says; otherwise names the step and exits 1.
# Everything runs on 127.0.0.1 on free ports, in a temporary folder, and is stopped at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KPARTY="$ROOT/bin/kparty.js"
kparty() { "$KPARTY" "$@"; }
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);console.log(eval("v"+process.argv[1]))})' "$1"; }
free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kparty-walkthrough-XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  # and check: nothing this run started may outlive it
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then echo "walkthrough: process $pid still running" >&2; kill -9 "$pid"; LEAKED=1; fi
  done
  for port in ${RPC_PORT:-} ${KPARTY_GATEWAY_PORT:-}; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "walkthrough: port $port still served" >&2; LEAKED=1; fi
  done
  [ -n "${KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
  if [ -n "${LEAKED:-}" ]; then exit 1; fi
}
trap cleanup EXIT
cd "$WORK"

STEP=""
step() { STEP="$*"; echo "== $STEP" >&2; }
fail() { echo "walkthrough FAILED at \"$STEP\": $*" >&2; exit 1; }
expect() { [ "$1" = "$2" ] || fail "expected $2, got $1${3:+ ($3)}"; }
# Runs a command that must fail: checks its exit code and the error code on stderr.
refused() {
  local want_exit=$1 want_code=$2; shift 2
  local code=0
  "$@" 2>err.txt >/dev/null || code=$?
  expect "$code" "$want_exit" "exit code of: $*"
  grep -q "kparty: $want_code:" err.txt || fail "stderr lacks \"kparty: $want_code:\": $(cat err.txt)"
}
wait_for() { # file, seconds, pid
  for _ in $(seq 1 $(($2 * 5))); do
    [ -s "$1" ] && return 0
    kill -0 "$3" 2>/dev/null || fail "the process stopped: $(cat "${1%.json}.err" 2>/dev/null)"
    sleep 0.2
  done
  fail "$1 was not written within $2 s"
}

# Free ports instead of the defaults 8545/8080, so the script never collides with anything.
RPC_PORT=$(free_port)
export KPARTY_RPC_URL="http://127.0.0.1:$RPC_PORT"
export KPARTY_GATEWAY_PORT=$(free_port)
export KPARTY_GATEWAY_URL="http://127.0.0.1:$KPARTY_GATEWAY_PORT"
export KPARTY_PASSPHRASE="walkthrough passphrase (use your own)"

step "1. kparty init writes kparty.json"
kparty init >/dev/null
[ -f kparty.json ] || fail "no kparty.json"

step "2. two organisations create their DIDs"
ORG_A=$(kparty did create --alias "Org A" --data-dir .kparty/org-a)
ORG_B=$(kparty did create --alias "Org B" --data-dir .kparty/org-b)
[[ $ORG_A == did:ethr:0x7a69:0x* && $ORG_B == did:ethr:0x7a69:0x* ]] || fail "not did:ethr DIDs: $ORG_A $ORG_B"

step "3. kparty chain up: local chain, both founders funded, contracts deployed"
# Long-running commands start the binary itself in the background (not the shell function), so
# that $! is the process to stop: a killed function's subshell would leave its child running.
"$KPARTY" chain up --founder "Org A=$ORG_A" --founder "Org B=$ORG_B" --quorum 2 --json >chain.json 2>chain.err &
PIDS+=($!)
wait_for chain.json 120 $!
expect "$(json .founders.length <chain.json)" 2 "founders"
expect "$(kparty status --json | json .counts.members)" 2 "members after deployment"

step "4. Org C is admitted by vote (Org A proposes, Org B approves and executes)"
ORG_C=$(kparty did create --alias "Org C" --data-dir .kparty/org-c)
PROPOSAL=$(kparty member propose add "$ORG_C" --name "Org C" --data-dir .kparty/org-a)
refused 7 chain_reverted kparty member execute "$PROPOSAL" --data-dir .kparty/org-a
kparty member approve "$PROPOSAL" --data-dir .kparty/org-b >/dev/null
kparty member execute "$PROPOSAL" --data-dir .kparty/org-b >/dev/null
kparty member list --json >members.json
expect "$(json .members.length <members.json)" 3 "members after the vote"
expect "$(json '.members.some(m=>m.did==="'"$ORG_C"'")' <members.json)" true "Org C is a member"
kparty chain fund "$ORG_C" >/dev/null

step "5. Org C issues a K-th Party token to participant alice"
ALICE=$(kparty did create --alias alice --data-dir .kparty/alice)
CREDENTIAL=$(kparty credential issue --subject "$ALICE" --models fl-demo --actions model:read,model:contribute \
  --out alice.json --data-dir .kparty/org-c)
expect "$(json .credentialId <alice.json)" "$CREDENTIAL" "bundle id"
expect "$(kparty credential status alice.json --json | json .verdict)" valid "status after issuance"

step "6. the gateway serves model fl-demo; alice presents her credential and pulls the model"
"$KPARTY" gateway serve --data-dir .kparty/gateway --model fl-demo:101 --json >gateway.json 2>gateway.err &
PIDS+=($!)
wait_for gateway.json 60 $!
kparty present --credential alice.json --data-dir .kparty/alice >/dev/null
kparty model pull fl-demo --out global.f32 --data-dir .kparty/alice >/dev/null
expect "$(wc -c <global.f32 | tr -d ' ')" 404 "bytes of 101 float32 weights"

step "7. Org C revokes alice's credential"
kparty credential revoke "$CREDENTIAL" --data-dir .kparty/org-c >/dev/null
expect "$(kparty credential status alice.json --json | json .verdict)" revoked "status after revocation"

step "8. alice is refused: her live token and a new presentation (exit 8, revoked)"
# The gateway learns of the revocation from the registry's events within a poll (100 ms).
for _ in $(seq 1 50); do
  kparty model pull fl-demo --out again.f32 --data-dir .kparty/alice >/dev/null 2>&1 || break
  sleep 0.1
done
refused 8 revoked kparty model pull fl-demo --out again.f32 --data-dir .kparty/alice
refused 8 revoked kparty present --credential alice.json --data-dir .kparty/alice

step "9. the auditor verifies the gateway's log"
kparty audit verify --data-dir .kparty/gateway --json >audit.json
expect "$(json .valid <audit.json)" true "audit chain"
kparty audit tail --data-dir .kparty/gateway --json >tail.json
expect "$(json '.records.filter(r=>r.outcome==="denied"&&r.code==="revoked").length>=2' <tail.json)" true "denials logged"

echo "walkthrough passed: every step behaved as the README says" >&2
