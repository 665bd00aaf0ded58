//! The web console in a real browser (headless Chromium over WebDriver): sign in with
//! an app key, create a webhook pointing at a real receiver, publish through the API and
//! watch the delivery appear (htmx refreshes the list), open the attempt, rotate the
//! secret, disable and enable, send a test ping, resend, recover after an outage; app
//! A's session cannot open app B's webhook; a post without the CSRF token is refused; a
//! description holding `<script>` renders as text; the cookie's flags and the security
//! headers. A screenshot of every page goes to target/console-screenshots/.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::Locator;
use herald_testing::{
    browser_or_skip, console_session, root, wait_until, ApiServer, Browser, Receiver, Stack, Worker,
};
use serde_json::json;

const XSS: &str = "<script>alert(1)</script>";

/// Waits up to `secs` seconds for `check` to hold (it is polled; the page is not
/// reloaded, so what changes on it changes by itself).
macro_rules! eventually {
    ($secs:expr, $what:expr, $check:expr) => {{
        let ok = wait_until(Duration::from_secs($secs), || async { $check }).await;
        assert!(ok, "{}", $what);
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_in_a_browser() {
    if !browser_or_skip() {
        return;
    }
    let stack = Stack::deploy("console").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key_a = api.app_with_key("shop").await;
    let key_b = api.app_with_key("rival").await;
    let theirs = api
        .create_webhook(
            &key_b,
            json!({"url": "http://127.0.0.1:9/b", "events": ["*"]}),
        )
        .await;
    let down = Arc::new(AtomicBool::new(false));
    let receiver = Receiver::with_outage(Arc::clone(&down)).await;
    // One attempt a delivery: a failure is parked at once, for the recovery.
    let _worker = Worker::spawn(&stack, &[("HERALD_RETRY_SCHEDULE", "0s")]).unwrap();
    let shots = root().join("target/console-screenshots");
    let mut b = Browser::start(&shots).await.unwrap();
    let base = format!("{}/console", api.base);

    // Signed out, every page leads to the sign-in form.
    b.client.goto(&format!("{base}/webhooks")).await.unwrap();
    assert!(b.path().await.unwrap().ends_with("/sign-in"));
    b.shot("sign-in").await.unwrap();
    b.client
        .find(Locator::Css("#key"))
        .await
        .unwrap()
        .send_keys("hk_wrong")
        .await
        .unwrap();
    b.follow("form button[type=submit]").await.unwrap();
    assert_eq!(b.text("p.error").await.unwrap(), "That key is not valid.");
    b.sign_in(&base, &key_a).await.unwrap();
    assert_eq!(b.text("h1").await.unwrap(), "Overview");
    assert!(
        !b.client.source().await.unwrap().contains(&key_a),
        "the key is never on a page"
    );
    assert!(!b
        .client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("hk_"));

    // The cookie: HttpOnly, SameSite=Strict, Secure, Path=/console.
    let cookie = b.client.get_named_cookie("herald_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.path(), Some("/console"));
    let session = cookie.value().to_owned();
    assert!(!session.contains(&key_a));

    // Create a webhook to the receiver, its description a script.
    b.follow("nav a[href='/console/webhooks']").await.unwrap();
    b.shot("webhooks-empty").await.unwrap();
    b.follow("a[href='/console/webhooks/new']").await.unwrap();
    let form = b.client.form(Locator::Css("main form")).await.unwrap();
    form.set_by_name("url", &receiver.url()).await.unwrap();
    form.set_by_name("description", XSS).await.unwrap();
    b.click("input[name=events][value=update]").await.unwrap();
    b.click("input[name=events][value=create]").await.unwrap();
    b.shot("webhook-new").await.unwrap();
    b.follow("main form button[type=submit]").await.unwrap();
    let secret = b.text("#secret-value").await.unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    b.shot("webhook-created").await.unwrap();
    b.follow("main a[href^='/console/webhooks/sub_']")
        .await
        .unwrap();
    let page = b.client.current_url().await.unwrap();
    let id = page.path().rsplit('/').next().unwrap().to_owned();
    // The script is text, not a script.
    assert_eq!(b.text("#description").await.unwrap(), XSS);
    assert_eq!(b.text("h1").await.unwrap(), XSS);
    assert_eq!(b.count("main script").await, 0);
    let scripts = b
        .client
        .execute("return document.scripts.length", vec![])
        .await
        .unwrap();
    assert_eq!(scripts, json!(1), "only htmx's own script element");
    assert!(
        !b.client.source().await.unwrap().contains(&secret),
        "shown once"
    );
    b.shot("webhook-detail").await.unwrap();

    // Publish through the API and watch the delivery appear: htmx refreshes the list.
    let (s, published) = api
        .call(
            "POST",
            "/v1/events",
            Some(&key_a),
            Some(json!({"type": "update", "object_type": "user", "data": {"id": "42"}})),
        )
        .await;
    assert_eq!(s, 202, "{published}");
    let event = published["ids"][0].as_str().unwrap().to_owned();
    b.follow("nav a[href='/console/deliveries']").await.unwrap();
    eventually!(40, "the delivery appears without a reload", {
        b.count("#deliveries tr.attempt").await > 0
    });
    b.shot("deliveries").await.unwrap();
    b.follow("#deliveries a.open-attempt").await.unwrap();
    assert_eq!(b.text("#status-code").await.unwrap(), "200");
    let headers = b.text("#request-headers").await.unwrap();
    assert!(
        headers.contains("webhook-signature: v1,… (not shown)"),
        "{headers}"
    );
    assert!(!headers.contains(&secret));
    b.shot("attempt").await.unwrap();

    // Rotate: a new secret, shown once.
    b.client
        .goto(&format!("{base}/webhooks/{id}"))
        .await
        .unwrap();
    b.follow("form[action$='/rotate'] button").await.unwrap();
    let rotated = b.text("#secret-value").await.unwrap();
    assert!(rotated.starts_with("whsec_") && rotated != secret);
    b.shot("secret-rotated").await.unwrap();

    // Disable and enable.
    b.client
        .goto(&format!("{base}/webhooks/{id}"))
        .await
        .unwrap();
    b.follow("form[action$='/disable'] button").await.unwrap();
    assert!(b.text("#state").await.unwrap().starts_with("disabled"));
    b.shot("webhook-disabled").await.unwrap();
    b.follow("form[action$='/enable'] button").await.unwrap();
    assert_eq!(b.text("#state").await.unwrap(), "active");
    let (_, w) = api
        .call("GET", &format!("/v1/webhooks/{id}"), Some(&key_a), None)
        .await;
    assert_eq!(w["active"], true);

    // A test ping, its result shown in place (htmx).
    b.click("form[action$='/test'] button").await.unwrap();
    eventually!(20, "the ping's result", {
        b.text("#ping-result")
            .await
            .is_ok_and(|t| t.contains("succeeded"))
    });
    b.shot("test-ping").await.unwrap();

    // The event, and a resend: the receiver gets it again.
    let before = receiver.count();
    b.client.goto(&format!("{base}/events")).await.unwrap();
    b.shot("events").await.unwrap();
    b.follow(&format!("#events a[href='/console/events/{event}']"))
        .await
        .unwrap();
    assert!(b.text("#payload").await.unwrap().contains("\"id\": \"42\""));
    assert_eq!(
        b.text("#webhook-status td:nth-child(2)").await.unwrap(),
        "succeeded"
    );
    b.shot("event").await.unwrap();
    b.follow("form[action$='/resend'] button").await.unwrap();
    assert!(b
        .text("p.notice")
        .await
        .unwrap()
        .contains("Queued again for 1 webhook"));
    assert!(
        wait_until(Duration::from_secs(30), || async {
            receiver.count() > before
        })
        .await
    );

    // An outage: a delivery fails and is parked; after it, recover sends it again.
    down.store(true, Ordering::SeqCst);
    let (s, _) = api
        .call(
            "POST",
            "/v1/events",
            Some(&key_a),
            Some(json!({"type": "create", "object_type": "user", "data": {"id": "43"}})),
        )
        .await;
    assert_eq!(s, 202);
    b.client
        .goto(&format!("{base}/deliveries?outcome=failed"))
        .await
        .unwrap();
    eventually!(40, "the failure appears", {
        b.count("#deliveries tr.attempt").await > 0
    });
    b.shot("deliveries-failed").await.unwrap();
    down.store(false, Ordering::SeqCst);
    let before = receiver
        .received()
        .iter()
        .filter(|r| r.status_is_success())
        .count();
    b.client
        .goto(&format!("{base}/webhooks/{id}"))
        .await
        .unwrap();
    b.follow("form[action$='/recover'] button").await.unwrap();
    let notice = b.text("p.notice").await.unwrap();
    assert!(notice.contains("Recovery: 1 queued again"), "{notice}");
    b.shot("recovered").await.unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || async {
            receiver
                .received()
                .iter()
                .filter(|r| r.status_is_success())
                .count()
                > before
        })
        .await
    );

    // The overview and the list, with health.
    b.client.goto(&format!("{base}/overview")).await.unwrap();
    assert!(b.client.find(Locator::Css("svg#chart rect")).await.is_ok());
    let attempts: u64 = b.text("#attempts-24h").await.unwrap().parse().unwrap();
    assert!(attempts >= 3, "{attempts}");
    b.shot("overview").await.unwrap();
    b.client.goto(&format!("{base}/webhooks")).await.unwrap();
    b.shot("webhooks").await.unwrap();
    b.client
        .goto(&format!("{base}/webhooks/{id}"))
        .await
        .unwrap();
    b.shot("webhook-health").await.unwrap();

    // App A's session cannot open app B's webhook: the same 404 as a missing one.
    let theirs = theirs["id"].as_str().unwrap();
    b.client
        .goto(&format!("{base}/webhooks/{theirs}"))
        .await
        .unwrap();
    assert_eq!(b.text("h1").await.unwrap(), "404 Not Found");
    b.shot("other-apps-webhook").await.unwrap();

    // A post without the CSRF token is refused; with it, it goes through.
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let disable = format!("{base}/webhooks/{id}/disable");
    let cookie = format!("herald_session={session}");
    let r = raw
        .post(&disable)
        .header("cookie", &cookie)
        .form(&[("x", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = raw
        .post(&disable)
        .header("cookie", &cookie)
        .form(&[("_csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    b.client
        .goto(&format!("{base}/webhooks/{id}"))
        .await
        .unwrap();
    let token = b
        .client
        .find(Locator::Css("input[name=_csrf]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    let r = raw
        .post(&disable)
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "a cross-site post is refused even with the token"
    );
    let (_, w) = api
        .call("GET", &format!("/v1/webhooks/{id}"), Some(&key_a), None)
        .await;
    assert_eq!(w["active"], true, "nothing refused took effect");
    let r = raw
        .post(&disable)
        .header("cookie", &cookie)
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // The security headers, and the Set-Cookie of a sign-in.
    let r = raw
        .get(format!("{base}/overview"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let set = console_session(&base, &key_a).await.unwrap().set_cookie;
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/console",
        "Max-Age=",
    ] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains(&key_a));

    // Revoking the key signs its sessions out.
    let (_, keys) = api
        .call(
            "GET",
            "/v1/apps/shop/keys",
            Some(herald_testing::ADMIN_KEY),
            None,
        )
        .await;
    let key_id = keys["data"][0]["id"].as_str().unwrap();
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/v1/apps/shop/keys/{key_id}"),
            Some(herald_testing::ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 204);
    b.client.goto(&format!("{base}/webhooks")).await.unwrap();
    assert!(b.path().await.unwrap().ends_with("/sign-in"));
    b.close().await;
    // Three pictures for the README, when asked.
    if std::env::var_os("HERALD_UPDATE_SCREENSHOTS").is_none() {
        return;
    }
    let docs = root().join("docs/console");
    std::fs::create_dir_all(&docs).unwrap();
    for entry in std::fs::read_dir(&shots).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for (suffix, to) in [
            ("-overview.png", "overview.png"),
            ("-webhooks.png", "webhooks.png"),
            ("-webhook-health.png", "webhook.png"),
        ] {
            if name.ends_with(suffix) {
                std::fs::copy(&path, docs.join(to)).unwrap();
            }
        }
    }
}
