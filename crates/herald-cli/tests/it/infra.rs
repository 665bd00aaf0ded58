//! infra/ is the one definition of Herald's AWS resources: `make up` and these tests
//! deploy infra/data-plane.yaml into the emulator through CloudFormation, and
//! infra/herald.yaml (the AWS deployment) nests that same template. These tests check
//! that what gets deployed carries what the code relies on: key schemas and indexes,
//! the redrive policy, the visibility-timeout rule, and every setting the functions
//! need. The emulator ignores a table's TTL and point-in-time recovery, so those are
//! checked in the template itself.

use herald_runtime::Load;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::{KeyType, ScalarAttributeType};
use aws_sdk_sqs::types::QueueAttributeName as Q;
use herald_consumer::ConsumerConfig;
use herald_testing::{aws, template, Stack};
use serde_json::{json, Value};

/// The key schema of a table or index as (attribute, HASH|RANGE) pairs.
fn keys(schema: &[aws_sdk_dynamodb::types::KeySchemaElement]) -> Vec<(String, KeyType)> {
    schema
        .iter()
        .map(|k| (k.attribute_name().to_owned(), k.key_type().clone()))
        .collect()
}

fn hash_range(hash: &str, range: Option<&str>) -> Vec<(String, KeyType)> {
    let mut k = vec![(hash.to_owned(), KeyType::Hash)];
    if let Some(r) = range {
        k.push((r.to_owned(), KeyType::Range));
    }
    k
}

/// A parameter's default, as CloudFormation passes it (a string).
fn default_of(t: &Value, param: &str) -> String {
    match &t["Parameters"][param]["Default"] {
        Value::String(s) => s.clone(),
        Value::Null => panic!("parameter {param} has no default"),
        other => other.to_string(),
    }
}

/// The value CloudFormation would give `v` with the parameters at their defaults;
/// `Fn::GetAtt` of the data plane's outputs comes from `outputs` (a deployed copy).
fn resolve(t: &Value, v: &Value, outputs: &HashMap<String, String>) -> String {
    if let Some(s) = v.as_str() {
        return s.to_owned();
    }
    if let Some(p) = v.get("Ref").and_then(Value::as_str) {
        return default_of(t, p);
    }
    if let Some(args) = v.get("Fn::FindInMap").and_then(Value::as_array) {
        let map = args[0].as_str().expect("map name");
        let key = resolve(t, &args[1], outputs);
        let field = args[2].as_str().expect("map field");
        let found = &t["Mappings"][map][&key][field];
        return match found {
            Value::String(s) => s.clone(),
            Value::Null => panic!("Mappings.{map}.{key}.{field} is missing"),
            other => other.to_string(),
        };
    }
    if let Some(text) = v.get("Fn::Sub").and_then(Value::as_str) {
        // `${Param}` references only, as the templates use them.
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let end = rest[start..].find('}').expect("closed ${") + start;
            out.push_str(&rest[..start]);
            out.push_str(&default_of(t, &rest[start + 2..end]));
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        return out;
    }
    if let Some(output) = data_plane_output(v) {
        return outputs
            .get(output)
            .unwrap_or_else(|| panic!("the data plane has no output {output}"))
            .clone();
    }
    // An attribute of a resource of this template (the KMS key's ARN): known only once
    // deployed, so a stand-in that names it.
    if let Some([resource, attribute]) = v
        .get("Fn::GetAtt")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        let resource = resource.as_str().expect("resource name");
        assert!(
            t["Resources"].get(resource).is_some(),
            "no resource {resource}"
        );
        return format!("{resource}.{}", attribute.as_str().unwrap_or_default());
    }
    panic!("cannot resolve {v}")
}

/// `O` when `v` is `!GetAtt DataPlane.Outputs.O`.
fn data_plane_output(v: &Value) -> Option<&str> {
    let args = v.get("Fn::GetAtt")?.as_array()?;
    if args.first()?.as_str()? != "DataPlane" {
        return None;
    }
    args.get(1)?.as_str()?.strip_prefix("Outputs.")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_data_plane_has_the_keys_indexes_and_redrive_policy_the_code_uses() {
    let stack = Stack::deploy("infra").expect("deploy the stack");
    let aws = aws().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);

    // Tables: name (from the stack's outputs, as the code gets it), key schema, indexes.
    let expected: [(&str, Vec<(String, KeyType)>); 4] = [
        // herald-store: subscriptions, their routes and each app's routing version
        // by (pk, sk).
        ("HERALD_SUBSCRIPTIONS_TABLE", hash_range("pk", Some("sk"))),
        // herald-store: the history (event groups, webhook records, trail items) by
        // (pk, sk), without an index.
        ("HERALD_HISTORY_TABLE", hash_range("pk", Some("sk"))),
        // herald-store: apps, key metadata and key hashes by (pk, sk).
        ("HERALD_APPS_TABLE", hash_range("pk", Some("sk"))),
        // herald-store: idempotency records by pk = app#key.
        ("HERALD_IDEMPOTENCY_TABLE", hash_range("pk", None)),
    ];
    for (var, key_schema) in expected {
        let name = stack.var(var);
        assert!(!name.is_empty(), "the stack's outputs give no {var}");
        let table = dynamo
            .describe_table()
            .table_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("describe {name}: {e}"))
            .table
            .expect("table description");
        assert_eq!(keys(table.key_schema()), key_schema, "{var} key schema");
        for def in table.attribute_definitions() {
            assert_eq!(
                def.attribute_type(),
                &ScalarAttributeType::S,
                "{var}.{} is a string",
                def.attribute_name()
            );
        }
        assert_eq!(
            table
                .billing_mode_summary()
                .and_then(|b| b.billing_mode())
                .map(|m| m.as_str()),
            Some("PAY_PER_REQUEST"),
            "{var} is on-demand"
        );
        let indexes: BTreeMap<String, _> = table
            .global_secondary_indexes()
            .iter()
            .map(|i| (i.index_name().unwrap_or_default().to_owned(), i))
            .collect();
        assert!(indexes.is_empty(), "{var} has no indexes: {indexes:?}");
    }

    // Queues: the events queue's redrive policy points at the DLQ, and its visibility
    // timeout satisfies the consumer's start-up check with the default settings.
    let attrs = |url: String| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(Q::All)
                .send()
                .await
                .expect("queue attributes")
                .attributes
                .unwrap_or_default()
        }
    };
    let events = attrs(stack.events_queue().to_owned()).await;
    let dlq = attrs(stack.dlq().to_owned()).await;
    // A queue's dead-letter target and receives before it, checked to be `dlq`.
    let redrive_to = |q: &HashMap<Q, String>, dlq: &HashMap<Q, String>, name: &str| -> u64 {
        let redrive: Value =
            serde_json::from_str(q.get(&Q::RedrivePolicy).expect("a redrive policy")).unwrap();
        assert_eq!(
            redrive["deadLetterTargetArn"].as_str(),
            dlq.get(&Q::QueueArn).map(String::as_str),
            "the {name} queue's dead letters go to its DLQ"
        );
        match &redrive["maxReceiveCount"] {
            Value::String(s) => s.parse::<u64>().unwrap(),
            v => v.as_u64().expect("maxReceiveCount"),
        }
    };
    let max_receives = redrive_to(&events, &dlq, "events");
    assert_eq!(max_receives, 5, "the crash backstop (docs/delivery.md)");
    let defaults = ConsumerConfig::from_vars(stack.env.clone())
        .expect("the stack's outputs are all the consumer needs");
    let visibility: u64 = events[&Q::VisibilityTimeout].parse().unwrap();
    assert!(
        visibility > defaults.delivery.worst_case_batch_time().as_secs(),
        "visibility {visibility} s must exceed the worst-case batch time"
    );

    // The ordered queue: FIFO, deduplicating on the ids the code sends (not the body),
    // its dead letters going to a FIFO DLQ after more receives than the default
    // schedule has attempts (each attempt of an ordered delivery is one receive), and
    // a visibility timeout that satisfies the same start-up check.
    let ordered_url = stack.var("HERALD_ORDERED_QUEUE_URL").to_owned();
    assert!(ordered_url.ends_with(".fifo"), "{ordered_url}");
    assert_eq!(
        defaults.ordered_queue_url.as_deref(),
        Some(ordered_url.as_str()),
        "the consumer reads the ordered queue from the stack's outputs"
    );
    let ordered = attrs(ordered_url).await;
    let ordered_dlq = attrs(stack.var("HERALD_ORDERED_DLQ_URL").to_owned()).await;
    for (name, q) in [("ordered", &ordered), ("ordered dlq", &ordered_dlq)] {
        assert_eq!(
            q.get(&Q::FifoQueue).map(String::as_str),
            Some("true"),
            "{name} queue is FIFO"
        );
    }
    assert_eq!(
        ordered
            .get(&Q::ContentBasedDeduplication)
            .map(String::as_str),
        Some("false"),
        "deduplication on the event's or delivery's identity, never the body"
    );
    let ordered_receives = redrive_to(&ordered, &ordered_dlq, "ordered");
    assert!(
        ordered_receives > u64::from(defaults.delivery.schedule.max_attempts()),
        "the ordered queue's backstop ({ordered_receives} receives) outlasts the retry schedule"
    );
    let ordered_visibility: u64 = ordered[&Q::VisibilityTimeout].parse().unwrap();
    assert_eq!(ordered_visibility, visibility, "the same batch-time rule");

    for (name, q) in [
        ("events", &events),
        ("dlq", &dlq),
        ("ordered", &ordered),
        ("ordered dlq", &ordered_dlq),
    ] {
        assert_eq!(
            q.get(&Q::SqsManagedSseEnabled).map(String::as_str),
            Some("true"),
            "{name} queue is encrypted"
        );
        assert_eq!(
            q.get(&Q::MessageRetentionPeriod).map(String::as_str),
            Some("1209600"),
            "{name} queue keeps messages 14 days"
        );
    }

    // The API needs nothing beyond the stack's outputs either.
    herald_api::ApiConfig::from_vars(stack.env.clone())
        .expect("the stack's outputs are all the API needs");
}

#[test]
fn the_data_plane_template_declares_ttl_recovery_and_encryption() {
    let t = template("data-plane.yaml").expect("read infra/data-plane.yaml");
    let props = |r: &str| t["Resources"][r]["Properties"].clone();
    let tables: Vec<&str> = t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::DynamoDB::Table")
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        BTreeSet::from_iter(tables.iter().copied()),
        BTreeSet::from([
            "SubscriptionsTable",
            "HistoryTable",
            "AppsTable",
            "IdempotencyTable"
        ])
    );
    for table in &tables {
        // A teardown or a replacing change never takes a table's data with it.
        let r = &t["Resources"][*table];
        assert_eq!(
            (&r["DeletionPolicy"], &r["UpdateReplacePolicy"]),
            (&json!("Retain"), &json!("Retain")),
            "{table}"
        );
        let p = props(table);
        assert_eq!(p["BillingMode"], "PAY_PER_REQUEST", "{table}");
        assert_eq!(p["SSESpecification"]["SSEEnabled"], true, "{table}");
    }
    // Records that expire carry `expires_at` (epoch seconds), the TTL attribute:
    // herald-store's history items, and idempotency records.
    for table in ["HistoryTable", "IdempotencyTable"] {
        assert_eq!(
            props(table)["TimeToLiveSpecification"],
            json!({"AttributeName": "expires_at", "Enabled": true}),
            "{table}"
        );
    }
    for table in ["SubscriptionsTable", "AppsTable"] {
        assert_eq!(
            props(table)["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
            true,
            "{table} can be restored"
        );
    }
    for queue in [
        "EventsQueue",
        "DeadLetterQueue",
        "OrderedQueue",
        "OrderedDeadLetterQueue",
    ] {
        assert_eq!(props(queue)["SqsManagedSseEnabled"], true, "{queue}");
    }
    for queue in ["OrderedQueue", "OrderedDeadLetterQueue"] {
        assert_eq!(props(queue)["FifoQueue"], true, "{queue}");
    }
    // Every queue refuses requests that are not over TLS.
    let policy = props("QueuesRequireTls");
    assert_eq!(
        policy["Queues"],
        json!([
            {"Ref": "EventsQueue"},
            {"Ref": "DeadLetterQueue"},
            {"Ref": "OrderedQueue"},
            {"Ref": "OrderedDeadLetterQueue"}
        ])
    );
    let deny = &policy["PolicyDocument"]["Statement"][0];
    assert_eq!(deny["Effect"], "Deny");
    assert_eq!(deny["Action"], "sqs:*");
    assert_eq!(
        deny["Condition"]["Bool"]["aws:SecureTransport"], "false",
        "{deny}"
    );
}

#[test]
fn the_queue_visibility_timeout_is_derived_from_the_consumer_timeout_by_the_documented_rule() {
    let t = template("herald.yaml").expect("read infra/herald.yaml");
    let data_plane = template("data-plane.yaml").expect("read infra/data-plane.yaml");
    let rows = t["Mappings"]["ConsumerTimeouts"].as_object().unwrap();
    let allowed: BTreeSet<String> = t["Parameters"]["ConsumerTimeoutSeconds"]["AllowedValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        .collect();
    assert_eq!(
        allowed,
        rows.keys().cloned().collect::<BTreeSet<_>>(),
        "every allowed consumer timeout has a row in Mappings.ConsumerTimeouts"
    );
    let max_window = t["Parameters"]["ConsumerBatchingWindowSeconds"]["MaxValue"]
        .as_u64()
        .unwrap();
    let vis_param = &data_plane["Parameters"]["VisibilityTimeoutSeconds"];
    for (timeout, row) in rows {
        let timeout: u64 = timeout.parse().unwrap();
        let visibility = row["VisibilityTimeoutSeconds"].as_u64().unwrap();
        // The consumer's own reading of the settings the function gets.
        let vars: HashMap<&str, String> = HashMap::from([
            ("HERALD_EVENTS_QUEUE_URL", "q".to_owned()),
            ("HERALD_DLQ_URL", "d".to_owned()),
            ("HERALD_SUBSCRIPTIONS_TABLE", "s".to_owned()),
            ("HERALD_HISTORY_TABLE", "h".to_owned()),
            ("HERALD_KMS_KEY_ID", "k".to_owned()),
            (
                "HERALD_BATCH_START_DEADLINE",
                row["BatchStartDeadline"].as_str().unwrap().to_owned(),
            ),
            (
                "HERALD_HTTP_TIMEOUT",
                row["HttpTimeout"].as_str().unwrap().to_owned(),
            ),
        ]);
        let config = ConsumerConfig::from_vars(vars.clone())
            .unwrap_or_else(|e| panic!("row {timeout}: {e}"));
        let worst = config.delivery.worst_case_batch_time().as_secs();
        assert!(
            worst <= timeout,
            "row {timeout}: a batch ({worst} s worst case) must end within the function timeout"
        );
        assert!(
            visibility > worst,
            "row {timeout}: the consumer's start-up check"
        );
        assert_eq!(
            visibility,
            6 * timeout,
            "row {timeout}: six times the function timeout"
        );
        assert!(
            visibility >= timeout + max_window,
            "row {timeout}: covers the longest batching window"
        );
        assert!(
            visibility >= vis_param["MinValue"].as_u64().unwrap()
                && visibility <= vis_param["MaxValue"].as_u64().unwrap(),
            "row {timeout}: within the data plane's bounds"
        );
    }

    // And the template uses the row for all four settings.
    let find = |field: &str| json!({"Fn::FindInMap": ["ConsumerTimeouts", {"Ref": "ConsumerTimeoutSeconds"}, field]});
    let r = &t["Resources"];
    assert_eq!(
        r["DataPlane"]["Properties"]["Parameters"]["VisibilityTimeoutSeconds"],
        find("VisibilityTimeoutSeconds")
    );
    let consumer = &r["ConsumerFunction"]["Properties"];
    assert_eq!(
        consumer["Timeout"],
        json!({"Ref": "ConsumerTimeoutSeconds"})
    );
    let env = &consumer["Environment"]["Variables"];
    assert_eq!(
        env["HERALD_BATCH_START_DEADLINE"],
        find("BatchStartDeadline")
    );
    assert_eq!(env["HERALD_HTTP_TIMEOUT"], find("HttpTimeout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_get_every_setting_the_code_requires_from_the_data_plane() {
    let t = template("herald.yaml").expect("read infra/herald.yaml");
    // A deployed data plane gives the real outputs and the HERALD_* names that
    // localstack/herald_local.py maps them to.
    let stack = Stack::deploy("infra-wiring").expect("deploy the stack");
    let outputs = stack.outputs().expect("stack outputs");
    let output_to_env: HashMap<&str, &str> = outputs
        .iter()
        .filter_map(|(o, v)| {
            stack
                .env
                .iter()
                .find(|(_, ev)| *ev == v)
                .map(|(name, _)| (o.as_str(), name.as_str()))
        })
        .collect();

    let env_of = |function: &str| -> HashMap<String, String> {
        let vars = t["Resources"][function]["Properties"]["Environment"]["Variables"]
            .as_object()
            .unwrap_or_else(|| panic!("{function} has an environment"));
        vars.iter()
            .map(|(name, v)| {
                if let Some(output) = data_plane_output(v) {
                    assert_eq!(
                        output_to_env.get(output).copied(),
                        Some(name.as_str()),
                        "{function}.{name} comes from the data plane's output {output}, \
                         which herald_local.py maps to another variable"
                    );
                }
                (name.clone(), resolve(&t, v, &outputs))
            })
            .collect()
    };

    let consumer = env_of("ConsumerFunction");
    let config = ConsumerConfig::from_vars(consumer.clone())
        .expect("the consumer function's environment is a valid configuration");
    assert_eq!(config.events_queue_url, stack.events_queue());
    assert_eq!(
        config.ordered_queue_url.as_deref(),
        Some(stack.var("HERALD_ORDERED_QUEUE_URL")),
        "the consumer queues and holds ordered deliveries"
    );
    assert_eq!(
        default_of(&t, "RetrySchedule"),
        herald_core::retry::DEFAULT_SCHEDULE,
        "the template's default retry schedule is the documented one"
    );

    let api = env_of("ApiFunction");
    let api_config = herald_api::ApiConfig::from_vars(api.clone())
        .expect("the API function's environment is a valid configuration");
    // Both seal webhook secrets under the template's KMS key, never a key file.
    for (function, seal) in [("consumer", &config.seal), ("API", &api_config.seal)] {
        assert_eq!(
            seal.kms_key_id.as_deref(),
            Some("SecretsKey.Arn"),
            "the {function} seals under the template's KMS key"
        );
        assert_eq!(seal.seal_key_file, None, "{function}");
    }
    assert_eq!(api_config.apps_table, stack.var("HERALD_APPS_TABLE"));

    // The ingest of inbound webhooks runs the API's configuration without the admin
    // key: the same tables and queue, secrets opened under the template's key.
    let ingest = env_of("IngestFunction");
    let ingest_config = herald_api::ApiConfig::from_vars(ingest.clone())
        .expect("the ingest function's environment is a valid configuration");
    assert_eq!(
        ingest_config.seal.kms_key_id.as_deref(),
        Some("SecretsKey.Arn")
    );
    assert_eq!(
        ingest_config.admin_key_parameter, None,
        "the ingest needs no admin key"
    );
    for name in [
        "HERALD_EVENTS_QUEUE_URL",
        "HERALD_SUBSCRIPTIONS_TABLE",
        "HERALD_HISTORY_TABLE",
        "HERALD_IDEMPOTENCY_TABLE",
        "HERALD_HISTORY_RETENTION",
    ] {
        assert_eq!(
            ingest.get(name),
            api.get(name),
            "the ingest's {name} is the API's"
        );
    }
    assert_eq!(
        api_config.queues.ordered_queue_url.as_deref(),
        Some(stack.var("HERALD_ORDERED_QUEUE_URL")),
        "the API publishes events with an ordering_key to the ordered queue"
    );
    assert_eq!(
        api_config.idempotency_table,
        stack.var("HERALD_IDEMPOTENCY_TABLE")
    );

    let redriver = env_of("RedriverFunction");
    let redriver_config = herald_redriver::RedriverConfig::from_vars(redriver)
        .expect("the re-driver function's environment is a valid configuration");
    assert_eq!(redriver_config.queues.dlq_url, stack.dlq());
    assert_eq!(
        redriver_config.queues.events_queue_url,
        stack.events_queue()
    );

    // The consumer sits behind the events queue, reporting partial batch failures; the
    // mapping's knobs are parameters.
    let esm = &t["Resources"]["ConsumerEventSource"];
    assert_eq!(esm["Type"], "AWS::Lambda::EventSourceMapping");
    let p = &esm["Properties"];
    assert_eq!(
        data_plane_output(&p["EventSourceArn"]),
        Some("EventsQueueArn")
    );
    assert_eq!(p["FunctionName"], json!({"Ref": "ConsumerFunction"}));
    assert_eq!(
        p["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    for (field, param) in [
        (&p["BatchSize"], "ConsumerBatchSize"),
        (
            &p["MaximumBatchingWindowInSeconds"],
            "ConsumerBatchingWindowSeconds",
        ),
        (
            &p["ScalingConfig"]["MaximumConcurrency"],
            "ConsumerMaxConcurrency",
        ),
    ] {
        assert_eq!(field, &json!({ "Ref": param }));
    }

    // The same function sits behind the ordered queue: batches of at most 10 (a FIFO
    // queue's limit), no batching window, partial batch failures reported (a retry
    // leaves its record, and its group, on the queue).
    let ordered = &t["Resources"]["ConsumerOrderedEventSource"];
    assert_eq!(ordered["Type"], "AWS::Lambda::EventSourceMapping");
    let p = &ordered["Properties"];
    assert_eq!(
        data_plane_output(&p["EventSourceArn"]),
        Some("OrderedQueueArn")
    );
    assert_eq!(p["FunctionName"], json!({"Ref": "ConsumerFunction"}));
    assert_eq!(p["BatchSize"], 10);
    assert!(p.get("MaximumBatchingWindowInSeconds").is_none(), "{p}");
    assert_eq!(
        p["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
}

#[test]
fn every_function_has_reserved_concurrency_so_a_flood_of_api_calls_cannot_starve_delivery() {
    let t = template("herald.yaml").expect("read infra/herald.yaml");
    for (function, param) in [
        ("ConsumerFunction", "ConsumerReservedConcurrency"),
        ("ApiFunction", "ApiReservedConcurrency"),
        ("IngestFunction", "IngestReservedConcurrency"),
        ("RedriverFunction", "RedriverReservedConcurrency"),
    ] {
        let reserved = &t["Resources"][function]["Properties"]["ReservedConcurrentExecutions"];
        let branches = reserved["Fn::If"]
            .as_array()
            .expect("reserved unless set to 0");
        assert_eq!(branches[1], json!({"Ref": param}), "{function}");
        assert_eq!(branches[2], json!({"Ref": "AWS::NoValue"}), "{function}");
        let condition = branches[0].as_str().unwrap();
        assert_eq!(
            t["Conditions"][condition],
            json!({"Fn::Not": [{"Fn::Equals": [{"Ref": param}, 0]}]}),
            "{function}: 0 reserves nothing"
        );
        let default: u64 = default_of(&t, param).parse().unwrap();
        assert!(default > 0, "{param} reserves by default");
    }
    // The consumer's reservation covers what its event source may start at once.
    let reserved: u64 = default_of(&t, "ConsumerReservedConcurrency")
        .parse()
        .unwrap();
    let pollers: u64 = default_of(&t, "ConsumerMaxConcurrency").parse().unwrap();
    assert!(reserved >= pollers, "{reserved} < {pollers}");
}

#[test]
fn every_function_has_its_own_least_privilege_role_log_group_and_alarms() {
    let t = template("herald.yaml").expect("read infra/herald.yaml");
    let resources = t["Resources"].as_object().unwrap();
    let functions: Vec<&str> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Lambda::Function")
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        BTreeSet::from_iter(functions.iter().copied()),
        BTreeSet::from([
            "ConsumerFunction",
            "ApiFunction",
            "IngestFunction",
            "RedriverFunction"
        ])
    );
    let mut roles = BTreeSet::new();
    for function in &functions {
        let p = &resources[*function]["Properties"];
        let role = p["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{function} has a role of this template"));
        assert!(roles.insert(role), "{function} shares role {role}");
        assert_eq!(p["Runtime"], "provided.al2023", "{function}");
        let log_group = p["LoggingConfig"]["LogGroup"]["Ref"].as_str().unwrap();
        assert_eq!(p["LoggingConfig"]["LogFormat"], "JSON", "{function}");
        assert_eq!(
            p["LoggingConfig"]["SystemLogLevel"], "WARN",
            "{function}: no START/END/REPORT lines"
        );
        assert_eq!(
            resources[log_group]["Properties"]["RetentionInDays"],
            json!({"Ref": "LogRetentionDays"}),
            "{function}'s logs expire"
        );

        let statements = resources[role]["Properties"]["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().clone())
            // A statement granted only when a parameter is set: judge what it grants.
            .map(|s| match s.get("Fn::If") {
                Some(branches) => branches[1].clone(),
                None => s,
            })
            .collect::<Vec<_>>();
        for s in &statements {
            assert_eq!(s["Effect"], "Allow");
            let actions: Vec<&str> = match &s["Action"] {
                Value::String(a) => vec![a.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                other => panic!("{role}: action {other}"),
            };
            for a in actions {
                assert!(!a.contains('*'), "{role}: no wildcard actions ({a})");
            }
            let resources_of: Vec<&Value> = match &s["Resource"] {
                Value::Array(r) => r.iter().collect(),
                r => vec![r],
            };
            for r in resources_of {
                assert!(
                    r.as_str().is_none_or(|r| !r.contains('*')),
                    "{role}: no wildcard resources ({r})"
                );
            }
        }
        // Each function writes its logs, and only to its own group.
        assert!(statements.iter().any(|s| s["Resource"]
            == json!({"Fn::GetAtt": [log_group, "Arn"]})
            && s["Action"] == json!(["logs:CreateLogStream", "logs:PutLogEvents"])));
    }

    // The API's console reads and re-drives the DLQ, and shows both queues' depths.
    let api_policy = &resources["ApiRole"]["Properties"]["Policies"][0]["PolicyDocument"];
    let dlq = api_policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| data_plane_output(&s["Resource"]) == Some("DeadLetterQueueArn"))
        .expect("the API may use the DLQ");
    assert_eq!(
        dlq["Action"],
        json!([
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes"
        ])
    );

    // The consumer reads the queue's visibility timeout at start-up.
    let consumer_policy = &resources["ConsumerRole"]["Properties"]["Policies"][0]["PolicyDocument"];
    assert!(consumer_policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .any(
            |s| data_plane_output(&s["Resource"]) == Some("EventsQueueArn")
                && s["Action"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!("sqs:GetQueueAttributes")))
        ));

    // Alarms: DLQ not empty, oldest message age, consumer errors and throttles.
    let alarms: BTreeSet<(String, String)> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|r| {
            let p = &r["Properties"];
            let dimension = &p["Dimensions"][0]["Value"];
            let target = data_plane_output(dimension)
                .map(str::to_owned)
                .or_else(|| dimension["Ref"].as_str().map(str::to_owned))
                .unwrap_or_default();
            (p["MetricName"].as_str().unwrap().to_owned(), target)
        })
        .collect();
    for alarm in [
        ("ApproximateNumberOfMessagesVisible", "DeadLetterQueueName"),
        ("ApproximateAgeOfOldestMessage", "EventsQueueName"),
        ("Errors", "ConsumerFunction"),
        ("Throttles", "ConsumerFunction"),
    ] {
        assert!(
            alarms.contains(&(alarm.0.to_owned(), alarm.1.to_owned())),
            "an alarm on {alarm:?}: {alarms:?}"
        );
    }
}

#[test]
fn webhook_secrets_are_sealed_under_a_rotated_kms_key_that_each_role_uses_only_as_it_must() {
    let t = template("herald.yaml").expect("read infra/herald.yaml");
    let resources = &t["Resources"];
    let key = &resources["SecretsKey"];
    assert_eq!(key["Type"], "AWS::KMS::Key");
    assert_eq!(
        key["DeletionPolicy"], "Retain",
        "nothing sealed opens without it"
    );
    let p = &key["Properties"];
    assert_eq!(p["EnableKeyRotation"], true);
    assert_eq!(p["KeySpec"], "SYMMETRIC_DEFAULT");
    let statements = p["KeyPolicy"]["Statement"].as_array().unwrap();
    assert_eq!(
        statements.len(),
        1,
        "the account root only; IAM grants the rest"
    );
    assert_eq!(
        statements[0]["Principal"]["AWS"]["Fn::Sub"],
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"
    );
    assert_eq!(
        resources["SecretsKeyAlias"]["Properties"]["TargetKeyId"],
        json!({"Ref": "SecretsKey"})
    );

    // What each role may do with the key: the API seals and opens; the consumer opens,
    // and seals only the webhook it rewrites when it disables an endpoint; the
    // re-driver never touches it; the ingest only opens. Always under Herald's
    // encryption context.
    let kms_actions = |role: &str| -> BTreeSet<String> {
        let mut actions = BTreeSet::new();
        for s in resources[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap()
        {
            let listed: Vec<&str> = match &s["Action"] {
                Value::String(a) => vec![a.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            if listed.iter().any(|a| a.starts_with("kms:")) {
                assert_eq!(
                    s["Resource"],
                    json!({"Fn::GetAtt": ["SecretsKey", "Arn"]}),
                    "{role}"
                );
                assert_eq!(
                    s["Condition"]["StringEquals"]["kms:EncryptionContext:purpose"],
                    herald_seal::ENCRYPTION_CONTEXT.1,
                    "{role}"
                );
                actions.extend(listed.iter().map(|a| (*a).to_owned()));
            }
        }
        actions
    };
    let both = BTreeSet::from(["kms:Decrypt".to_owned(), "kms:GenerateDataKey".to_owned()]);
    assert_eq!(kms_actions("ApiRole"), both);
    assert_eq!(kms_actions("ConsumerRole"), both);
    assert!(kms_actions("RedriverRole").is_empty());
    assert_eq!(
        kms_actions("IngestRole"),
        BTreeSet::from(["kms:Decrypt".to_owned()]),
        "the ingest opens sources' credentials and never seals"
    );
}

#[test]
fn the_dashboard_charts_the_metrics_the_consumer_writes_in_its_namespace() {
    use herald_consumer::metrics::{MetricsMode, MetricsSettings};

    let t = template("herald.yaml").expect("read infra/herald.yaml");
    let r = &t["Resources"];
    // The consumer function writes EMF lines into the namespace the dashboard reads.
    let env = &r["ConsumerFunction"]["Properties"]["Environment"]["Variables"];
    let settings: MetricsSettings = herald_runtime::config::Sources::new()
        .vars(
            "infra/herald.yaml",
            [(
                "HERALD_METRICS",
                env["HERALD_METRICS"].as_str().unwrap_or("off"),
            )],
        )
        .load()
        .expect("the template's metrics settings load");
    assert_eq!(settings.metrics, MetricsMode::Emf);
    let namespace = env["HERALD_METRICS_NAMESPACE"]["Fn::Sub"].as_str().unwrap();
    let body = &r["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"];
    assert_eq!(
        body[1]["Namespace"]["Fn::Sub"], namespace,
        "the same namespace"
    );

    // Every metric charted from the namespace is one the consumer writes
    // (crates/herald-consumer/src/metrics.rs), with its Service dimension.
    let text = body[0].as_str().unwrap();
    // The `${…}` placeholders sit inside JSON strings.
    let json: Value =
        serde_json::from_str(&without_placeholders(text)).expect("the dashboard body is JSON");
    let written = [
        "Batches",
        "Records",
        "BatchDuration",
        "Attempts",
        "Succeeded",
        "Failed",
        "Retried",
        "Parked",
        "NotSent",
        "Deferred",
        "Latency",
    ];
    let mut charted = BTreeSet::new();
    for widget in json["widgets"].as_array().unwrap() {
        let mut namespace_row = false;
        for row in widget["properties"]["metrics"].as_array().unwrap() {
            let row = row.as_array().unwrap();
            match row[0].as_str() {
                Some(ns) if ns.starts_with('X') => namespace_row = true,
                Some("AWS/SQS" | "AWS/Lambda") => namespace_row = false,
                _ => {}
            }
            if !namespace_row {
                continue;
            }
            if let Some(name) = row.get(1).and_then(Value::as_str).filter(|n| *n != ".") {
                charted.insert(name.to_owned());
            }
        }
    }
    for name in &charted {
        assert!(
            written.contains(&name.as_str()) || name.starts_with("Failed."),
            "the dashboard charts {name}, which the consumer does not write"
        );
    }
    for name in ["Attempts", "Succeeded", "Failed", "Parked", "Latency"] {
        assert!(charted.contains(name), "{name} is charted");
    }
}

/// `text` with every `${…}` replaced by `X`.
fn without_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        out.push('X');
        rest = rest[start..].split_once('}').map_or("", |(_, after)| after);
    }
    out.push_str(rest);
    out
}

#[test]
fn the_ingest_of_inbound_webhooks_has_its_own_public_url_apart_from_the_api() {
    let t = template("herald.yaml").expect("read infra/herald.yaml");
    let r = &t["Resources"];
    let urls: BTreeSet<(String, String)> = r
        .as_object()
        .unwrap()
        .values()
        .filter(|v| v["Type"] == "AWS::Lambda::Url")
        .map(|v| {
            let p = &v["Properties"];
            (
                p["TargetFunctionArn"]["Fn::GetAtt"][0]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                p["AuthType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        urls,
        BTreeSet::from([
            ("ApiFunction".to_owned(), "NONE".to_owned()),
            ("IngestFunction".to_owned(), "NONE".to_owned()),
        ])
    );
    let code = r["IngestFunction"]["Properties"]["Code"].as_str().unwrap();
    assert!(
        code.ends_with("herald-ingest-lambda/bootstrap.zip"),
        "{code}"
    );
    // Both permissions of a public function URL, the second only through the URL.
    let permissions: Vec<&Value> = r
        .as_object()
        .unwrap()
        .values()
        .filter(|v| {
            v["Type"] == "AWS::Lambda::Permission"
                && v["Properties"]["FunctionName"] == json!({"Ref": "IngestFunction"})
        })
        .collect();
    assert_eq!(permissions.len(), 2);
    assert!(permissions
        .iter()
        .any(|p| p["Properties"]["InvokedViaFunctionUrl"] == true));
    assert_eq!(
        t["Outputs"]["IngestUrl"]["Value"],
        json!({"Fn::GetAtt": ["IngestUrl", "FunctionUrl"]})
    );
    // An alarm on its errors, as on the API's.
    assert!(r
        .as_object()
        .unwrap()
        .values()
        .any(|v| v["Type"] == "AWS::CloudWatch::Alarm"
            && v["Properties"]["Dimensions"][0]["Value"] == json!({"Ref": "IngestFunction"})));
}
