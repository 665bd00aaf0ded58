//! The HTTP client's settings: timeouts, pool, address and port policies, egress proxy.

use std::time::Duration;

use herald_core::address::{AddressPolicy, PortPolicy};
use herald_core::settings;
use herald_runtime::config::{duration_in_range, ConfigError, Validate};

/// Timeouts and limits of the HTTP client: settings `HERALD_HTTP_CONNECT_TIMEOUT`
/// (default 5s), `HERALD_HTTP_TIMEOUT` (15s), `HERALD_ALLOW_PRIVATE_NETWORKS`,
/// `HERALD_EGRESS_PROXY` and `HERALD_ALLOWED_PORTS`, shared by the consumer and the
/// API's test pings (and its checks at registration).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Longest wait for a TCP connection (a TLS handshake after it counts against
    /// `total_timeout`).
    #[serde(
        rename = "http_connect_timeout",
        deserialize_with = "settings::duration",
        serialize_with = "settings::write_duration"
    )]
    pub connect_timeout: Duration,
    /// Longest a whole attempt may take, connecting and reading included.
    #[serde(
        rename = "http_timeout",
        deserialize_with = "settings::duration",
        serialize_with = "settings::write_duration"
    )]
    pub total_timeout: Duration,
    /// How long an idle pooled connection is kept.
    #[serde(skip)]
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per host. No host ever has more connections than
    /// deliveries in flight at once, so the consumer sets this to its concurrency cap:
    /// a smaller figure closes connections that the next delivery to a busy endpoint
    /// must open again (a TCP and TLS handshake per delivery above the figure).
    #[serde(skip)]
    pub pool_max_idle_per_host: usize,
    /// Which addresses deliveries may connect to (a comma-separated allowlist of
    /// networks; the default refuses every private address).
    #[serde(
        rename = "allow_private_networks",
        deserialize_with = "settings::parsed",
        serialize_with = "settings::write_display"
    )]
    pub address_policy: AddressPolicy,
    /// The proxy every delivery goes through (`HERALD_EGRESS_PROXY`, a URL; none by
    /// default). The environment's `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` are
    /// never used. With a proxy, the proxy resolves the destinations' names and must
    /// enforce the address policy itself; Herald still refuses IP literals outside
    /// it.
    #[serde(default, deserialize_with = "settings::optional_text")]
    pub egress_proxy: Option<String>,
    /// Which destination ports deliveries may use (`HERALD_ALLOWED_PORTS`, a
    /// comma-separated list of ports and ranges such as `443,8000-8999`; every port
    /// by default). A URL without a port uses its scheme's (80, 443).
    #[serde(
        deserialize_with = "settings::parsed",
        serialize_with = "settings::write_display"
    )]
    pub allowed_ports: PortPolicy,
}

impl Validate for HttpSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        duration_in_range(
            "http_connect_timeout",
            self.connect_timeout,
            Duration::from_millis(1)..=Duration::from_secs(60),
        )?;
        duration_in_range(
            "http_timeout",
            self.total_timeout,
            Duration::from_millis(1)..=Duration::from_secs(300),
        )?;
        if let Some(proxy) = &self.egress_proxy {
            check_proxy(proxy)?;
        }
        Ok(())
    }
}

/// A proxy URL the client can use: http(s) with a host (no SOCKS support is built). Its password is not
/// repeated in the error.
fn check_proxy(proxy: &str) -> Result<(), ConfigError> {
    let shown = |url: &url::Url| {
        let mut url = url.clone();
        if url.password().is_some() {
            let _ = url.set_password(Some("(hidden)"));
        }
        url.to_string()
    };
    let url = url::Url::parse(proxy.trim()).map_err(|e| {
        ConfigError::invalid("egress_proxy", "(not a URL)", format!("not a URL: {e}"))
    })?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(ConfigError::invalid(
            "egress_proxy",
            shown(&url),
            "a proxy URL such as http://proxy.internal:3128",
        ));
    }
    crate::client::check_proxy(url.as_str())
        .map_err(|e| ConfigError::invalid("egress_proxy", shown(&url), e))
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(15),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 64,
            address_policy: AddressPolicy::strict(),
            egress_proxy: None,
            allowed_ports: PortPolicy::any(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_proxy_settings_are_checked() {
        let with = |proxy: &str| HttpSettings {
            egress_proxy: Some(proxy.to_owned()),
            ..HttpSettings::default()
        };
        for good in [
            "http://proxy.internal:3128",
            "https://proxy.example.com",
            "http://10.0.0.2:8080",
        ] {
            assert!(with(good).validate().is_ok(), "{good}");
        }
        for bad in [
            "proxy:3128",
            "ftp://proxy/",
            "socks5://10.0.0.2:1080",
            "not a url",
        ] {
            assert!(with(bad).validate().is_err(), "{bad}");
        }
        let err = with("ftp://user:hunter2@proxy/").validate().unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(HttpSettings::default().egress_proxy.is_none());
    }
}
