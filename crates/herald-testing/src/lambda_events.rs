//! The events AWS hands to the Lambda functions: SQS batches and function-URL requests.

/// An SQS event as the event source mapping delivers it to the consumer function:
/// one record per `(message id, body)`, from the queue `queue_arn`.
pub fn sqs_event(queue_arn: &str, records: &[(&str, &str)]) -> serde_json::Value {
    let now_ms = chrono::Utc::now().timestamp_millis().to_string();
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now_ms,
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": now_ms,
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// An HTTP request as a Lambda function URL (payload format 2.0, the same as an API
/// Gateway HTTP API) delivers it to a function.
pub fn http_event(
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&serde_json::Value>,
) -> serde_json::Value {
    let now = chrono::Utc::now();
    let domain = "herald-test.lambda-url.us-east-1.on.aws";
    let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
    let mut headers = serde_json::json!({
        "host": domain,
        "user-agent": "herald-testing",
        "accept": "application/json",
        "x-forwarded-proto": "https",
        "x-forwarded-for": "127.0.0.1",
    });
    if let Some(key) = bearer {
        headers["authorization"] = format!("Bearer {key}").into();
    }
    if body.is_some() {
        headers["content-type"] = "application/json".into();
    }
    serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path_only,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "herald-test",
            "domainName": domain,
            "domainPrefix": "herald-test",
            "http": {
                "method": method,
                "path": path_only,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "herald-testing",
            },
            "requestId": format!("req-{}", now.timestamp_nanos_opt().unwrap_or_default()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_the_shape_aws_sends() {
        let sqs = sqs_event("arn:aws:sqs:us-east-1:000000000000:q", &[("m-1", "body")]);
        let record = &sqs["Records"][0];
        assert_eq!(record["messageId"], "m-1");
        assert_eq!(record["body"], "body");
        assert_eq!(record["eventSource"], "aws:sqs");

        let body = serde_json::json!({"a": 1});
        let http = http_event("POST", "/v1/apps?x=1", Some("k"), Some(&body));
        assert_eq!(http["rawPath"], "/v1/apps");
        assert_eq!(http["rawQueryString"], "x=1");
        assert_eq!(http["headers"]["authorization"], "Bearer k");
        assert_eq!(http["requestContext"]["http"]["method"], "POST");
        assert_eq!(http["body"], body.to_string());
    }
}
