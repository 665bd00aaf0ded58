//! A real browser for the web console's tests: Debian's headless Chromium driven over
//! WebDriver (fantoccini) through a `chromedriver` this harness starts on a free port,
//! with a fresh profile, and stops when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};

use crate::process::free_port;
use crate::wait::wait_until;

/// Where Debian's `chromium` and `chromium-driver` packages put their binaries.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether Chromium and its driver are installed (`make browser` installs them).
pub fn browser_installed() -> bool {
    Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
}

/// Whether a browser test can run: Chromium and its driver are installed. When they
/// are not, says the test is skipped and answers false, except in CI, where it fails
/// the test (`make test` installs them).
pub fn browser_or_skip() -> bool {
    if browser_installed() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must have chromium and chromium-driver: `make test` installs them (make browser)"
    );
    eprintln!(
        "SKIPPED: chromium or chromium-driver is not installed; `make browser` installs them"
    );
    false
}

/// A console session got over plain HTTP: what `POST /console/sign-in` answered.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    /// The whole `Set-Cookie` header, flags included.
    pub set_cookie: String,
    /// `herald_session=…`, for a `Cookie` header.
    pub cookie: String,
}

/// Signs in to the console at `console` (its base URL, `…/console`) with `key`,
/// without a browser; fails unless the answer is the 303 that sets the cookie.
pub async fn console_session(console: &str, key: &str) -> Result<ConsoleSession> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = http
        .post(format!("{console}/sign-in"))
        .form(&[("key", key)])
        .send()
        .await?;
    if r.status() != 303 {
        bail!("signing in to {console} answered {}", r.status());
    }
    let set_cookie = r
        .headers()
        .get("set-cookie")
        .context("no Set-Cookie")?
        .to_str()?
        .to_owned();
    let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
    Ok(ConsoleSession { set_cookie, cookie })
}

/// Headless Chromium under WebDriver, saving numbered screenshots to a directory.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: tokio::process::Child,
    shots: PathBuf,
    taken: usize,
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium (no sandbox, a temporary profile,
    /// a 1280×900 window); screenshots go to `shots` (created; its files removed first).
    pub async fn start(shots: &Path) -> Result<Self> {
        if !browser_installed() {
            bail!("{CHROMIUM} or {CHROMEDRIVER} is missing: `make browser` installs Debian's chromium and chromium-driver");
        }
        let port = free_port()?;
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting chromedriver")?;
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        let http = reqwest::Client::new();
        let up = wait_until(Duration::from_secs(20), || async {
            http.get(&status).send().await.is_ok()
        })
        .await;
        if !up {
            bail!("chromedriver did not answer on {url} within 20 s");
        }
        let profile = crate::scratch_dir("chromium-profile")?;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&url)
            .await
            .context("opening a WebDriver session")?;
        // The files of an earlier run go; folders stay (another test's, maybe running).
        std::fs::create_dir_all(shots)?;
        for entry in std::fs::read_dir(shots)? {
            let path = entry?.path();
            if path.is_file() {
                std::fs::remove_file(path)?;
            }
        }
        Ok(Self {
            client,
            driver,
            shots: shots.to_path_buf(),
            taken: 0,
        })
    }

    /// Saves a screenshot of the page as `NN-name.png`; returns its path.
    pub async fn shot(&mut self, name: &str) -> Result<PathBuf> {
        self.taken += 1;
        let path = self.shots.join(format!("{:02}-{name}.png", self.taken));
        std::fs::write(&path, self.client.screenshot().await?)?;
        Ok(path)
    }

    /// The first element matching the CSS `selector`, waiting up to 10 s for it.
    pub async fn find(&self, selector: &str) -> Result<Element> {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(selector))
            .await
            .with_context(|| format!("no element {selector}"))
    }

    /// The text of the first element matching `selector` (waiting for it).
    pub async fn text(&self, selector: &str) -> Result<String> {
        Ok(self.find(selector).await?.text().await?)
    }

    /// Clicks the first element matching `selector` (waiting for it).
    pub async fn click(&self, selector: &str) -> Result<()> {
        Ok(self.find(selector).await?.click().await?)
    }

    /// Clicks the first element matching `selector` (a link, a form's button) and waits
    /// up to 10 s for the page it leads to to load: a click returns before the browser
    /// has followed it, so what is read next could still be the old page.
    pub async fn follow(&self, selector: &str) -> Result<()> {
        self.client
            .execute("window.__heraldOldPage = true", vec![])
            .await?;
        self.click(selector).await?;
        let loaded = wait_until(Duration::from_secs(10), || async {
            self.client
                .execute(
                    "return window.__heraldOldPage === undefined && document.readyState === 'complete'",
                    vec![],
                )
                .await
                .is_ok_and(|v| v == serde_json::Value::Bool(true))
        })
        .await;
        if !loaded {
            bail!("clicking {selector} loaded no new page within 10 s");
        }
        Ok(())
    }

    /// Signs in on the console at `console` (`…/console`) with `key`, through the form.
    pub async fn sign_in(&self, console: &str, key: &str) -> Result<()> {
        self.client.goto(&format!("{console}/sign-in")).await?;
        self.find("#key").await?.send_keys(key).await?;
        self.follow("form button[type=submit]").await
    }

    /// How many elements match `selector` now (0 on any error).
    pub async fn count(&self, selector: &str) -> usize {
        self.client
            .find_all(Locator::Css(selector))
            .await
            .map_or(0, |found| found.len())
    }

    /// The path of the page shown.
    pub async fn path(&self) -> Result<String> {
        Ok(self.client.current_url().await?.path().to_owned())
    }

    /// Ends the session and stops the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}
