#!/usr/bin/env python3
"""Local AWS stack for Herald: the emulator (moto server) and the data-plane stack.

The resources come only from infra/data-plane.yaml, deployed through the emulator's
CloudFormation; nothing here lists queues or tables by hand.

  herald_local.py emulator-start --port P     start moto on 127.0.0.1:P (pid in .run/)
  herald_local.py emulator-stop --port P      stop it
  herald_local.py up --stage S [--env-file F] deploy the data plane, print HERALD_* settings
  herald_local.py down --stage S              delete the stack
  herald_local.py status --stage S            show the stack and its outputs
  herald_local.py template-json FILE          print a template as JSON (short-form
                                              intrinsics such as !Ref expanded), for tests

AWS_ENDPOINT_URL selects the endpoint (the emulator, LocalStack or AWS itself).
"""

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"
TEMPLATE = ROOT / "infra" / "data-plane.yaml"

# Stack output -> the HERALD_ variable the code reads.
OUTPUT_TO_ENV = {
    "EventsQueueUrl": "HERALD_EVENTS_QUEUE_URL",
    "DeadLetterQueueUrl": "HERALD_DLQ_URL",
    "OrderedQueueUrl": "HERALD_ORDERED_QUEUE_URL",
    "OrderedDeadLetterQueueUrl": "HERALD_ORDERED_DLQ_URL",
    "SubscriptionsTableName": "HERALD_SUBSCRIPTIONS_TABLE",
    "HistoryTableName": "HERALD_HISTORY_TABLE",
    "AppsTableName": "HERALD_APPS_TABLE",
    "IdempotencyTableName": "HERALD_IDEMPOTENCY_TABLE",
}


def log(msg):
    print(f"[herald-local] {msg}", file=sys.stderr, flush=True)


def stack_name(stage):
    return f"herald-{stage}"


def cfn():
    import boto3

    return boto3.client(
        "cloudformation",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
    )


def emulator_pidfile(port):
    return RUN_DIR / f"moto-{port}.pid"


def emulator_ready(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1):
            return True
    except Exception:
        return False


def emulator_start(args):
    RUN_DIR.mkdir(exist_ok=True)
    if emulator_ready(args.port):
        log(f"emulator already answering on 127.0.0.1:{args.port}")
        return 0
    moto = Path(sys.executable).parent / "moto_server"
    logfile = open(RUN_DIR / f"moto-{args.port}.log", "ab")
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(args.port)],
        stdout=logfile,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    emulator_pidfile(args.port).write_text(str(proc.pid))
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            log(f"emulator exited with {proc.returncode}; see .run/moto-{args.port}.log")
            return 1
        if emulator_ready(args.port):
            log(f"emulator (moto server) ready on 127.0.0.1:{args.port}, pid {proc.pid}")
            return 0
        time.sleep(0.2)
    log("emulator did not become ready within 60 s")
    return 1


def emulator_stop(args):
    pidfile = emulator_pidfile(args.port)
    if not pidfile.exists():
        log(f"no emulator started by us on port {args.port}")
        return 0
    pid = int(pidfile.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pidfile.unlink(missing_ok=True)
    log(f"emulator on port {args.port} stopped")
    return 0


def outputs(client, stage):
    stack = client.describe_stacks(StackName=stack_name(stage))["Stacks"][0]
    return stack["StackStatus"], {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def seal_key_file(stage):
    """The stage's local master key for sealed webhook secrets (HERALD_SEAL_KEY_FILE):
    32 random bytes in base64, created once and never overwritten (what was sealed
    under it would no longer open). On AWS, infra/herald.yaml uses a KMS key instead."""
    path = RUN_DIR / "keys" / f"{stage}.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another `up` of the same stage made it meanwhile
            return path
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    return path


def up(args):
    client = cfn()
    name = stack_name(args.stage)
    params = [{"ParameterKey": "Stage", "ParameterValue": args.stage}]
    for kv in args.param or []:
        key, _, value = kv.partition("=")
        params.append({"ParameterKey": key, "ParameterValue": value})
    existing = [
        s for s in client.list_stacks()["StackSummaries"]
        if s["StackName"] == name and s["StackStatus"] != "DELETE_COMPLETE"
    ]
    if not existing:
        client.create_stack(StackName=name, TemplateBody=TEMPLATE.read_text(), Parameters=params)
    deadline = time.time() + 120
    while True:
        status, outs = outputs(client, args.stage)
        if status.endswith("_COMPLETE") and "ROLLBACK" not in status:
            break
        if "FAILED" in status or "ROLLBACK" in status or time.time() > deadline:
            log(f"stack {name} is {status}")
            return 1
        time.sleep(0.2)
    env = {OUTPUT_TO_ENV[k]: v for k, v in outs.items() if k in OUTPUT_TO_ENV}
    env["HERALD_SEAL_KEY_FILE"] = str(seal_key_file(args.stage))
    lines = "".join(f"{k}={v}\n" for k, v in sorted(env.items()))
    if args.env_file:
        Path(args.env_file).write_text(lines)
    if args.json:
        print(json.dumps({"stack": name, "outputs": outs, "env": env}))
    else:
        sys.stdout.write(lines)
    log(f"stack {name} ready from {TEMPLATE.relative_to(ROOT)}")
    return 0


def down(args):
    client = cfn()
    client.delete_stack(StackName=stack_name(args.stage))
    log(f"stack {stack_name(args.stage)} deleted")
    return 0


def status(args):
    client = cfn()
    try:
        st, outs = outputs(client, args.stage)
    except Exception as e:  # the stack or the endpoint is absent
        print(f"stack {stack_name(args.stage)}: not deployed ({e.__class__.__name__})")
        return 1
    print(f"stack {stack_name(args.stage)}: {st}")
    for k, v in outs.items():
        print(f"  {k}: {v}")
    return 0


def template_json(args):
    """Prints a CloudFormation template as JSON: `!Ref X` becomes {"Ref": "X"}, `!Sub s`
    {"Fn::Sub": s}, `!GetAtt A.B` {"Fn::GetAtt": ["A", "B"]}, and so on."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def intrinsic(loader, suffix, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
        return {name: value}

    Loader.add_multi_constructor("!", intrinsic)
    with open(args.file) as f:
        print(json.dumps(yaml.load(f, Loader=Loader)))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("emulator-start", "emulator-stop"):
        s = sub.add_parser(name)
        s.add_argument("--port", type=int, required=True)
    for name in ("up", "down", "status"):
        s = sub.add_parser(name)
        s.add_argument("--stage", default="local")
        if name == "up":
            s.add_argument("--env-file")
            s.add_argument("--json", action="store_true")
            s.add_argument("--param", action="append", help="Key=Value template parameter")
    s = sub.add_parser("template-json")
    s.add_argument("file")
    args = p.parse_args()
    handler = {
        "template-json": template_json,
        "emulator-start": emulator_start,
        "emulator-stop": emulator_stop,
        "up": up,
        "down": down,
        "status": status,
    }[args.cmd]
    sys.exit(handler(args))


if __name__ == "__main__":
    main()
