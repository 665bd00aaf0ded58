//! The deliverer ignores the proxy variables of its environment. Its own binary: the
//! variables are set for the whole process (a client that honoured them would read them once per process).

use std::sync::{Arc, Mutex};

use herald_core::address::AddressPolicy;
use herald_delivery::{Deliverer, HttpDeliverer, HttpSettings, PreparedRoute};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers every request with `status` and keeps each request's first line.
async fn server(status: u16) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                log.lock()
                    .unwrap()
                    .push(text.lines().next().unwrap_or_default().to_owned());
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn proxy_variables_of_the_environment_are_ignored() {
    let (trap, trapped) = server(200).await;
    let (receiver, received) = server(204).await;
    let proxy = format!("http://{trap}");
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        std::env::set_var(var, &proxy);
    }
    for var in ["NO_PROXY", "no_proxy", "REQUEST_METHOD"] {
        std::env::remove_var(var);
    }
    let deliverer = HttpDeliverer::new(&HttpSettings {
        address_policy: AddressPolicy::with_allowlist("127.0.0.1/32").unwrap(),
        ..HttpSettings::default()
    })
    .unwrap();
    let route = Arc::new(PreparedRoute::new(herald_core::testing::route(&format!(
        "http://{receiver}/hook"
    ))));
    let event = herald_core::testing::event("shop", "update");
    let request = route.sign(
        herald_core::webhook_id(&event.id, &route.id),
        bytes::Bytes::from_static(b"{}").into(),
        chrono::Utc::now(),
    );
    let outcome = deliverer.deliver(request).await;
    assert_eq!(outcome.status(), Some(204), "{outcome:?}");
    assert_eq!(*received.lock().unwrap(), ["POST /hook HTTP/1.1"]);
    assert!(
        trapped.lock().unwrap().is_empty(),
        "went through the environment's proxy: {:?}",
        trapped.lock().unwrap()
    );
}
