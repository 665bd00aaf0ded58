//! Property test of the management API: malformed bodies, headers, paths and query
//! strings never produce a 5xx or a panic, and every error is the JSON error shape.
//! Requests go through the real router against the emulator, so inputs that get past
//! validation reach DynamoDB and SQS for real.

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request};
use herald_runtime::Load;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tower::ServiceExt;

use herald_testing::{aws, Stack, ADMIN_KEY};

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
        prop_oneof![
            Just("*"),
            Just("update"),
            Just("invoice.paid"),
            Just("https://example.com/h"),
            Just("http://127.0.0.1:1/x"),
            Just(""),
            Just("a..b"),
            Just("user"),
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("url".to_owned()),
                    Just("events".to_owned()),
                    Just("object_types".to_owned()),
                    Just("headers".to_owned()),
                    Just("type".to_owned()),
                    Just("object_type".to_owned()),
                    Just("data".to_owned()),
                    Just("events".to_owned()),
                    Just("active".to_owned()),
                    Just("description".to_owned()),
                    Just("subscription_id".to_owned()),
                    Just("id".to_owned()),
                    Just("name".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        prop::collection::vec(any::<u8>(), 0..300),
        ".{0,200}".prop_map(String::into_bytes),
        Just(Vec::new()),
        Just(b"{\"url\":".to_vec()),
    ]
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_-]{1,12}",
        ".{1,20}".prop_map(|s| s.bytes().map(|b| format!("%{b:02X}")).collect()),
        Just("sub_00000000000000000000000000000000".to_owned()),
        Just("..".to_owned()),
        Just("%00".to_owned()),
        "(%[89A-F][0-9A-F]){1,3}", // not UTF-8 once decoded: axum's path rejection
        "[a-z]{300}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "/v1/webhooks/{}",
            "/v1/webhooks/{}/enable",
            "/v1/webhooks/{}/disable",
            "/v1/webhooks/{}/secret/rotate",
            "/v1/webhooks/{}/test",
            "/v1/webhooks/{}/deliveries",
            "/v1/events/{}/deliveries",
            "/v1/events/{}/resend",
            "/v1/apps/{}",
            "/v1/apps/{}/keys",
            "/v1/apps/{}/keys/{}",
            "/v1/webhooks",
            "/v1/events",
            "/v1/apps",
            "/{}",
            "/v1/{}/{}",
            "/healthz",
            "/v1/openapi.json",
        ]),
        segment(),
        segment(),
        prop::option::of(prop_oneof![
            "limit=-?[0-9]{1,12}".prop_map(|s| s),
            "cursor=.{0,30}".prop_map(|s| s.replace(['#', ' ', '&', '?'], "")),
            "[a-z]{1,5}=[a-z0-9%]{0,10}".prop_map(|s| s),
        ]),
    )
        .prop_map(|(template, a, b, query)| {
            let p = template.replacen("{}", &a, 1).replacen("{}", &b, 1);
            match query {
                Some(q) => format!("{p}?{q}"),
                None => p,
            }
        })
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    Garbage(String),
    Admin,
    App,
    Malformed,
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        Just(Auth::None),
        "[ -~]{0,40}".prop_map(Auth::Garbage),
        Just(Auth::Admin),
        Just(Auth::App),
        Just(Auth::App),
        Just(Auth::Malformed),
    ]
}

#[test]
fn malformed_requests_never_produce_a_5xx_or_a_panic() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let stack = Stack::deploy("api-fuzz").unwrap();
    let (router, app_key) = rt.block_on(async {
        let mut vars: std::collections::HashMap<String, String> = stack.env.clone();
        vars.insert("HERALD_ADMIN_KEY".into(), ADMIN_KEY.into());
        vars.insert("HERALD_API_ALLOW_HTTP".into(), "true".into());
        vars.insert("HERALD_API_RATE_LIMIT".into(), "0".into());
        vars.insert("HERALD_HTTP_TIMEOUT".into(), "500ms".into());
        let config = herald_api::ApiConfig::from_vars(vars.clone()).unwrap();
        let state = herald_api::AppState::connect(config, &aws().await)
            .await
            .unwrap();
        let router = herald_api::router(state);
        let create = |path: &str, body: &str| {
            Request::post(path)
                .header("authorization", format!("Bearer {ADMIN_KEY}"))
                .body(Body::from(body.to_owned()))
                .unwrap()
        };
        let r = router
            .clone()
            .oneshot(create("/v1/apps", r#"{"id":"fuzz","name":"fuzz"}"#))
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = router
            .clone()
            .oneshot(create("/v1/apps/fuzz/keys", ""))
            .await
            .unwrap();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let key: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        (router, key["key"].as_str().unwrap().to_owned())
    });

    let cases = std::env::var("HERALD_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let methods = prop::sample::select(vec![
        Method::GET,
        Method::POST,
        Method::PATCH,
        Method::DELETE,
        Method::PUT,
    ]);
    let idempotency = prop::option::of("[!-~]{0,300}");
    let result = runner.run(
        &(methods, path(), auth(), body(), idempotency),
        |(method, path, auth, body, idem)| {
            let mut req = Request::builder().method(method.clone());
            req = match Request::builder().uri(path.as_str()).body(()) {
                Ok(_) => req.uri(path.as_str()),
                Err(_) => return Ok(()), // not a URI at all: never reaches a server
            };
            match &auth {
                Auth::None => {}
                Auth::Garbage(g) => {
                    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {g}")) {
                        req = req.header("authorization", v);
                    }
                }
                Auth::Admin => req = req.header("authorization", format!("Bearer {ADMIN_KEY}")),
                Auth::App => req = req.header("authorization", format!("Bearer {app_key}")),
                Auth::Malformed => {
                    req = req.header(
                        "authorization",
                        HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
                    )
                }
            }
            if let Some(k) = &idem {
                req = req.header("idempotency-key", k.as_str());
            }
            let request = req.body(Body::from(body.clone())).unwrap();
            let (status, bytes) = rt.block_on(async {
                let response = router
                    .clone()
                    .oneshot(request)
                    .await
                    .expect("the router never fails");
                let status = response.status();
                (
                    status,
                    axum::body::to_bytes(response.into_body(), 1 << 22)
                        .await
                        .unwrap_or_default(),
                )
            });
            if status.is_server_error() {
                return Err(TestCaseError::fail(format!(
                    "{method} {path} ({auth:?}) -> {status}: {}",
                    String::from_utf8_lossy(&bytes)
                )));
            }
            if status.is_client_error() {
                let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| {
                    TestCaseError::fail(format!("{method} {path} -> {status} without a JSON body"))
                })?;
                prop_assert!(
                    v["error"]["code"].is_string() && v["error"]["message"].is_string(),
                    "{} {} -> {}",
                    method,
                    path,
                    v
                );
            }
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
