//! The management API served in-process over real HTTP.

use herald_runtime::Load;
use std::collections::HashMap;

use anyhow::Result;

use crate::aws::aws;
use crate::stack::Stack;

/// The admin key the test API servers use.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// The management API served in-process on 127.0.0.1 over real HTTP, against a stack.
pub struct ApiServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client for calling it.
    pub client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    /// Starts the API with the stack's settings plus `overrides` (`HERALD_*` names).
    pub async fn start(stack: &Stack, overrides: &[(&str, &str)]) -> Result<Self> {
        Self::start_with(stack, overrides, &aws().await).await
    }

    /// As [`ApiServer::start`], with the API's AWS calls made through `aws` (a
    /// configuration pointing at a [`crate::FaultProxy`], say).
    pub async fn start_with(
        stack: &Stack,
        overrides: &[(&str, &str)],
        aws: &aws_config::SdkConfig,
    ) -> Result<Self> {
        let config = test_config(stack.env.clone(), overrides)?;
        Self::serve(herald_api::AppState::connect(config, aws).await?).await
    }

    /// As [`ApiServer::start`], on an in-memory system (`herald dev --in-memory`'s);
    /// `vars` name its resources.
    pub async fn start_in_memory(
        system: &herald_memory::System,
        vars: HashMap<String, String>,
        overrides: &[(&str, &str)],
    ) -> Result<Self> {
        let config = test_config(vars, overrides)?;
        Self::serve(herald_api::AppState::with_backends(
            config,
            system.api_backends(),
        )?)
        .await
    }

    async fn serve(state: herald_api::AppState) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, herald_api::router(state)).await;
        });
        Ok(Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            task,
        })
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            format!("{}{path}", self.base),
        );
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("API request");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap_or_default();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    /// Creates a webhook with `key` from `body` (the `POST /v1/webhooks` document),
    /// expecting 201; returns the created webhook (its `id`, and its `secret` shown once).
    pub async fn create_webhook(&self, key: &str, body: serde_json::Value) -> serde_json::Value {
        let (s, w) = self
            .call("POST", "/v1/webhooks", Some(key), Some(body))
            .await;
        assert_eq!(s, 201, "create webhook: {w}");
        w
    }

    /// Creates an app and a key for it; returns the key.
    pub async fn app_with_key(&self, id: &str) -> String {
        let (s, _) = self
            .call(
                "POST",
                "/v1/apps",
                Some(ADMIN_KEY),
                Some(serde_json::json!({"id": id, "name": id})),
            )
            .await;
        assert_eq!(s, 201, "create app {id}");
        let (s, key) = self
            .call(
                "POST",
                &format!("/v1/apps/{id}/keys"),
                Some(ADMIN_KEY),
                None,
            )
            .await;
        assert_eq!(s, 201, "create key for {id}");
        key["key"].as_str().expect("key shown once").to_owned()
    }
}

/// The API's settings from `vars`, the test admin key, development mode and
/// deliveries to 127.0.0.1, then `overrides`.
fn test_config(
    mut vars: HashMap<String, String>,
    overrides: &[(&str, &str)],
) -> Result<herald_api::ApiConfig> {
    vars.insert("HERALD_ADMIN_KEY".into(), ADMIN_KEY.into());
    vars.insert("HERALD_API_ALLOW_HTTP".into(), "true".into());
    vars.insert(
        "HERALD_ALLOW_PRIVATE_NETWORKS".into(),
        "127.0.0.1/32".into(),
    );
    for (k, v) in overrides {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Ok(herald_api::ApiConfig::from_vars(vars)?)
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
