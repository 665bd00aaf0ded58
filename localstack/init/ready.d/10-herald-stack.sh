#!/bin/bash
# LocalStack READY hook: deploys infra/data-plane.yaml (mounted at /opt/herald/infra) as
# stack herald-${HERALD_STAGE:-local} and prints its outputs.
#
# Idempotent, like `herald_local.py up`: an existing healthy stack is left as it is;
# a stack whose creation failed is deleted and created again. Re-run by hand with
#   docker compose -f localstack/docker-compose.yml exec localstack \
#     /etc/localstack/init/ready.d/10-herald-stack.sh
set -euo pipefail

# LocalStack 4 passes no AWS credentials to init hooks. The access key "test" maps to
# account 000000000000, the same account the host's test credentials map to.
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_DEFAULT_REGION="${HERALD_REGION:-us-east-1}"
export AWS_PAGER=""

stage="${HERALD_STAGE:-local}"
stack="herald-${stage}"
template=/opt/herald/infra/data-plane.yaml
timeout_s=180

log() { echo "[herald-stack] $*"; }

stack_status() {
  awslocal cloudformation describe-stacks --stack-name "$stack" \
    --query 'Stacks[0].StackStatus' --output text 2>/dev/null || echo NONE
}

# Polls until the stack leaves *_IN_PROGRESS; prints the final status.
wait_settled() {
  local deadline=$((SECONDS + timeout_s)) st
  while :; do
    st=$(stack_status)
    case "$st" in
      *_IN_PROGRESS) ;;
      *) echo "$st"; return 0 ;;
    esac
    if ((SECONDS > deadline)); then echo "$st"; return 0; fi
    sleep 1
  done
}

if [ ! -r "$template" ]; then
  log "template $template not found: is ../infra mounted at /opt/herald/infra?"
  exit 1
fi

st=$(wait_settled)
case "$st" in
  ROLLBACK_COMPLETE | CREATE_FAILED | ROLLBACK_FAILED | DELETE_FAILED)
    log "stack $stack is $st; deleting it before creating it again"
    awslocal cloudformation delete-stack --stack-name "$stack"
    st=$(wait_settled)
    ;;
esac

case "$st" in
  NONE | DELETE_COMPLETE)
    log "creating stack $stack from $template (region $AWS_DEFAULT_REGION)"
    awslocal cloudformation create-stack --stack-name "$stack" \
      --template-body "file://$template" \
      --parameters "ParameterKey=Stage,ParameterValue=$stage" >/dev/null
    st=$(wait_settled)
    ;;
  *)
    log "stack $stack already exists ($st); leaving it unchanged"
    ;;
esac

case "$st" in
  *ROLLBACK* | *FAILED* | *_IN_PROGRESS | NONE | DELETE_COMPLETE)
    log "stack $stack is $st; resource events:"
    awslocal cloudformation describe-stack-events --stack-name "$stack" \
      --query 'StackEvents[].[LogicalResourceId,ResourceStatus,ResourceStatusReason]' \
      --output text 2>/dev/null || true
    exit 1
    ;;
esac

log "stack $stack is $st; outputs:"
awslocal cloudformation describe-stacks --stack-name "$stack" \
  --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text |
  while read -r key value; do log "  $key = $value"; done
