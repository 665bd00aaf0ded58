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
    /// a 1280×900 window); screenshots go to `shots` (created, emptied first).
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
        if shots.exists() {
            std::fs::remove_dir_all(shots)?;
        }
        std::fs::create_dir_all(shots)?;
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
