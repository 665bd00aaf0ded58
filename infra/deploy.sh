#!/usr/bin/env bash
# Deploys Herald (infra/herald.yaml, which nests infra/data-plane.yaml) to the AWS
# account of the caller's credentials, or deletes it. Run through the Makefile:
#   make deploy STAGE=dev [DEPLOY_PARAMS="Key=Value ..."] [DEPLOY_BUCKET=...]
#   make undeploy STAGE=dev
# Environment: AWS_CLI (the aws command), STAGE, NAME_PREFIX, LAMBDA_ARCH,
# DEPLOY_BUCKET (artifact bucket; default <prefix>-artifacts-<account>-<region>,
# created if missing), DEPLOY_PARAMS (extra parameter overrides), HERALD_ADMIN_KEY
# (written to the SSM SecureString /<prefix>/<stage>/admin-key when set, which the API
# reads at start). See infra/README.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
aws=${AWS_CLI:-aws}
stage=${STAGE:-}
prefix=${NAME_PREFIX:-herald}
stack="$prefix-$stage"

log() { echo "[deploy] $*" >&2; }
die() { log "$*"; exit 1; }

[ -n "$stage" ] || die "set STAGE (make deploy STAGE=dev)"
[ "$stage" != local ] || die "STAGE=local is the emulator's stage; pick another (make deploy STAGE=dev)"
[[ "$stage" =~ ^[a-z0-9-]{1,40}$ ]] || die "STAGE must match [a-z0-9-]{1,40}"

account=$("$aws" sts get-caller-identity --query Account --output text) ||
  die "no usable AWS credentials (aws sts get-caller-identity failed); see infra/README.md"
region=${AWS_REGION:-${AWS_DEFAULT_REGION:-$("$aws" configure get region 2>/dev/null || true)}}
[ -n "$region" ] || die "no region: set AWS_REGION (or configure one with aws configure)"
export AWS_DEFAULT_REGION="$region"

case "${1:-}" in
  deploy)
    for f in herald-consumer-lambda herald-redriver-lambda herald-api-lambda herald-ingest-lambda; do
      [ -f "$root/target/lambda/$f/bootstrap.zip" ] ||
        die "target/lambda/$f/bootstrap.zip is missing: run make lambda"
    done
    bucket=${DEPLOY_BUCKET:-$prefix-artifacts-$account-$region}
    if ! "$aws" s3api head-bucket --bucket "$bucket" 2>/dev/null; then
      log "creating artifact bucket s3://$bucket in $region"
      if [ "$region" = us-east-1 ]; then
        "$aws" s3api create-bucket --bucket "$bucket" >/dev/null
      else
        "$aws" s3api create-bucket --bucket "$bucket" \
          --create-bucket-configuration "LocationConstraint=$region" >/dev/null
      fi
      "$aws" s3api put-public-access-block --bucket "$bucket" --public-access-block-configuration \
        BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
    fi
    mkdir -p "$root/target"
    packaged="$root/target/herald-$stage.packaged.yaml"
    log "packaging infra/herald.yaml (nested data plane and zips) into s3://$bucket/$stack/"
    "$aws" cloudformation package --template-file "$root/infra/herald.yaml" \
      --s3-bucket "$bucket" --s3-prefix "$stack" --output-template-file "$packaged" >/dev/null
    params=("Stage=$stage" "NamePrefix=$prefix" "Architecture=${LAMBDA_ARCH:-x86_64}")
    # The admin key lives in an SSM SecureString, never in the template or a Lambda
    # environment variable: written from $HERALD_ADMIN_KEY when set, then passed by name.
    admin_param="/$prefix/$stage/admin-key"
    if [ -n "${HERALD_ADMIN_KEY:-}" ]; then
      log "writing the admin key to SSM parameter $admin_param (SecureString)"
      "$aws" ssm put-parameter --name "$admin_param" --type SecureString \
        --value "$HERALD_ADMIN_KEY" --overwrite >/dev/null
    fi
    if "$aws" ssm get-parameter --name "$admin_param" >/dev/null 2>&1; then
      params+=("ApiAdminKeyParameter=$admin_param")
    fi
    # shellcheck disable=SC2206 # DEPLOY_PARAMS is a space-separated list of Key=Value
    params+=(${DEPLOY_PARAMS:-})
    log "deploying stack $stack to account $account, region $region"
    "$aws" cloudformation deploy --template-file "$packaged" --stack-name "$stack" \
      --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
      --parameter-overrides "${params[@]}"
    "$aws" cloudformation describe-stacks --stack-name "$stack" \
      --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output table
    ;;
  undeploy)
    log "deleting stack $stack (account $account, region $region): its queues, tables and functions go with it"
    "$aws" cloudformation delete-stack --stack-name "$stack"
    "$aws" cloudformation wait stack-delete-complete --stack-name "$stack"
    log "stack $stack deleted; the artifact bucket and its objects are left (infra/README.md, Teardown)"
    ;;
  *)
    die "usage: $0 deploy|undeploy"
    ;;
esac
