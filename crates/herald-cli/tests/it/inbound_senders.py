"""Signs an inbound webhook the way its sender does, with the sender's own library.

Reads {"scheme", "secret", "body", "timestamp", "id"} as JSON on stdin and prints the
signature headers as a JSON object. Used by inbound.rs; installed by `make venv`.

- stripe: stripe-python's WebhookSignature.generate_signature_header
- standard_webhooks: the standardwebhooks package's Webhook.sign
- github: githubkit's webhooks.sign (X-Hub-Signature-256)
- shopify: Shopify has no Python library that signs webhooks; its documented recipe
  (base64 of HMAC-SHA256 over the raw body) with the standard library.
"""

import base64
import datetime
import hashlib
import hmac
import json
import sys

req = json.load(sys.stdin)
scheme, secret, body = req["scheme"], req["secret"], req["body"]
ts = int(req["timestamp"])

if scheme == "stripe":
    import stripe

    out = {"Stripe-Signature": stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=ts)}
elif scheme == "standard_webhooks":
    from standardwebhooks.webhooks import Webhook

    when = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
    out = {
        "webhook-id": req["id"],
        "webhook-timestamp": str(ts),
        "webhook-signature": Webhook(secret).sign(req["id"], when, body),
    }
elif scheme == "github":
    from githubkit.webhooks import sign

    out = {"X-Hub-Signature-256": sign(secret, body.encode(), method="sha256"), "X-GitHub-Delivery": req["id"]}
elif scheme == "shopify":
    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    out = {"X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(), "X-Shopify-Webhook-Id": req["id"]}
else:
    sys.exit(f"unknown scheme {scheme}")
json.dump(out, sys.stdout)
