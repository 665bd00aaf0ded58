//! Settings: flags, then `HERALD_*` environment variables, then the profile file, then
//! defaults.
//!
//! The profile file (`~/.config/herald/config.toml`, or `--profile-file` /
//! `HERALD_PROFILE_FILE`) has a `[default]` section and named `[profiles.NAME]`
//! sections, chosen with `--profile` / `HERALD_PROFILE`. A named profile's values
//! override `[default]`'s. A key names a setting without its `HERALD_` prefix, in lower
//! case: `api_url`, `api_key`, `admin_key`, `events_queue_url`, `dlq_url`,
//! `subscriptions_table`, … (every variable of docs/configuration.md).
//!
//! ```toml
//! [default]
//! api_url = "http://127.0.0.1:8080"
//! api_key = "hk_..."
//!
//! [profiles.admin]
//! api_key = "my-admin-key-of-16-chars-or-more"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use herald_runtime::config::{key_name, var_name, Sources, PREFIX};

use crate::failure::usage;

/// The API's address when nothing else says.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8080";

/// Flags every command takes.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Print machine-readable JSON: one document, or JSON lines for `listen` and `tail`.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// Base URL of the Herald API [env: HERALD_API_URL] [default: http://127.0.0.1:8080].
    #[arg(
        long,
        global = true,
        value_name = "URL",
        help_heading = "Global options"
    )]
    pub api_url: Option<String>,
    /// An app's API key, for webhooks, publish, deliveries and tail [env: HERALD_API_KEY].
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        help_heading = "Global options"
    )]
    pub api_key: Option<String>,
    /// The admin key, for apps and keys [env: HERALD_ADMIN_KEY; --api-key also works].
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        help_heading = "Global options"
    )]
    pub admin_key: Option<String>,
    /// Profile to use from the profile file [env: HERALD_PROFILE] [default: `default`].
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        help_heading = "Global options"
    )]
    pub profile: Option<String>,
    /// Profile file [env: HERALD_PROFILE_FILE] [default: ~/.config/herald/config.toml].
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Global options"
    )]
    pub profile_file: Option<PathBuf>,
}

/// The settings Herald knows, as profile keys (`api_url`, `http_timeout`, …): read off
/// the settings structs of every role, plus the CLI's own. A profile key outside this
/// list is used anyway, with a warning, in case it is newer than this binary.
pub fn known_keys() -> BTreeSet<String> {
    use herald_runtime::config::keys;
    let mut known: BTreeSet<String> = CLI_KEYS.iter().map(|k| (*k).to_owned()).collect();
    known.extend(keys::<herald_consumer::ConsumerSettings>());
    known.extend(keys::<herald_api::ApiConfig>());
    known.extend(keys::<herald_redriver::RedriverConfig>());
    known
}

/// The settings only the CLI reads.
pub const CLI_KEYS: &[&str] = &["api_url", "api_key", "admin_key", "log_format"];

/// Resolved settings of one invocation.
pub struct Settings {
    /// `--json`.
    pub json: bool,
    /// The global flags.
    pub flags: GlobalArgs,
    /// The profile's values, then the environment's: what `herald serve` and
    /// `herald worker` load their configuration from.
    sources: Sources,
    /// Warnings met while reading the profile file.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Reads the process environment and the profile file.
    pub fn load(flags: GlobalArgs) -> Result<Self> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let xdg = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from);
        let default_file = xdg
            .filter(|p| p.is_absolute())
            .or_else(|| home.map(|h| h.join(".config")))
            .map(|d| d.join("herald").join("config.toml"));
        Self::load_with(flags, std::env::vars().collect(), default_file.as_deref())
    }

    /// Like [`Settings::load`] with the given environment variables and default
    /// profile file.
    pub fn load_with(
        flags: GlobalArgs,
        env_vars: Vec<(String, String)>,
        default_file: Option<&Path>,
    ) -> Result<Self> {
        let environment: Vec<(String, String)> = env_vars
            .into_iter()
            .filter(|(k, _)| k.starts_with(PREFIX))
            .collect();
        let get = |k: &str| {
            environment
                .iter()
                .find(|(name, v)| name == k && !v.trim().is_empty())
                .map(|(_, v)| v.clone())
        };
        let explicit_file = flags
            .profile_file
            .clone()
            .or_else(|| get("HERALD_PROFILE_FILE").map(PathBuf::from));
        let name = flags.profile.clone().or_else(|| get("HERALD_PROFILE"));
        let file = match (&explicit_file, default_file) {
            (Some(f), _) => Some(f.clone()),
            (None, Some(d)) if d.exists() => Some(d.to_path_buf()),
            _ => None,
        };
        let mut warnings = Vec::new();
        let profile = match file {
            Some(path) => read_profile(&path, name.as_deref(), &mut warnings)?,
            None => {
                if let Some(name) = name.as_deref().filter(|n| *n != "default") {
                    return Err(usage(format!(
                        "profile `{name}` was asked for, but there is no profile file \
                         (looked for {}; --profile-file or HERALD_PROFILE_FILE names one)",
                        default_file
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| "~/.config/herald/config.toml".into())
                    )));
                }
                BTreeMap::new()
            }
        };
        let sources = Sources::new()
            .vars("the profile file", profile)
            .vars("environment", environment);
        Ok(Self {
            json: flags.json,
            flags,
            sources,
            warnings,
        })
    }

    /// A variable from the environment, else from the profile.
    pub fn lookup(&self, var: &str) -> Option<String> {
        self.sources.get(var)
    }

    /// The profile's and the environment's settings, to load a role's configuration
    /// from.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// A flag's value, else the variable from the environment or the profile.
    pub fn resolve(&self, flag: Option<&str>, var: &str) -> Option<String> {
        flag.map(str::to_owned).or_else(|| self.lookup(var))
    }

    /// Like [`Settings::resolve`], but a usage error naming the flag and the variable
    /// when neither is set.
    pub fn require(&self, flag: Option<&str>, flag_name: &str, var: &str) -> Result<String> {
        self.resolve(flag, var).ok_or_else(|| {
            usage(format!(
                "{flag_name} is required: pass it, set {var}, or add `{}` to a profile \
                 (`herald up` writes the local stack's settings to .run/local.env)",
                var.trim_start_matches("HERALD_").to_ascii_lowercase()
            ))
        })
    }

    pub fn api_url(&self) -> String {
        self.resolve(self.flags.api_url.as_deref(), "HERALD_API_URL")
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned())
    }

    /// The key for app routes.
    pub fn app_key(&self) -> Result<String> {
        self.resolve(self.flags.api_key.as_deref(), "HERALD_API_KEY")
            .ok_or_else(|| {
                usage(
                    "no API key: pass --api-key, set HERALD_API_KEY, or add api_key to a profile \
                     (`herald keys create --app APP` makes one)",
                )
            })
    }

    /// The key for admin routes: `--admin-key`, `--api-key`, then the admin key
    /// (`HERALD_ADMIN_KEY`, the profile's `admin_key`), then the app key settings
    /// (`HERALD_API_KEY`, the profile's `api_key`). A dedicated admin setting wins over
    /// an app key exported for the other commands.
    pub fn admin_key(&self) -> Result<String> {
        self.flags
            .admin_key
            .clone()
            .or_else(|| self.flags.api_key.clone())
            .or_else(|| self.lookup("HERALD_ADMIN_KEY"))
            .or_else(|| self.lookup("HERALD_API_KEY"))
            .ok_or_else(|| {
                usage(
                    "no admin key: pass --admin-key, set HERALD_ADMIN_KEY (the key `herald serve` \
                     was started with), or add admin_key to a profile",
                )
            })
    }
}

fn read_profile(
    path: &Path,
    name: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("reading the profile file {}: {e}", path.display())))?;
    let table: toml::Table = text.parse().map_err(|e| {
        usage(format!(
            "the profile file {} is not TOML: {e}",
            path.display()
        ))
    })?;
    let shown = path.display();
    for key in table.keys() {
        if key != "default" && key != "profiles" {
            warnings.push(format!(
                "{shown}: top-level key `{key}` is ignored (use [default] or [profiles.NAME])"
            ));
        }
    }
    let section = |v: Option<&toml::Value>, what: &str| -> Result<toml::Table> {
        match v {
            None => Ok(toml::Table::new()),
            Some(toml::Value::Table(t)) => Ok(t.clone()),
            Some(_) => Err(usage(format!("{shown}: {what} must be a table"))),
        }
    };
    let mut values = BTreeMap::new();
    let default = section(table.get("default"), "[default]")?;
    merge(
        &mut values,
        &default,
        "[default]",
        &shown.to_string(),
        warnings,
    )?;
    if let Some(name) = name.filter(|n| *n != "default") {
        let profiles = section(table.get("profiles"), "[profiles]")?;
        let Some(chosen) = profiles.get(name) else {
            let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
            return Err(usage(format!(
                "no profile `{name}` in {shown} (it has: default{}{})",
                if known.is_empty() { "" } else { ", " },
                known.join(", ")
            )));
        };
        let chosen = section(Some(chosen), &format!("[profiles.{name}]"))?;
        merge(
            &mut values,
            &chosen,
            &format!("[profiles.{name}]"),
            &shown.to_string(),
            warnings,
        )?;
    }
    Ok(values)
}

fn merge(
    into: &mut BTreeMap<String, String>,
    section: &toml::Table,
    what: &str,
    file: &str,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let known = known_keys();
    for (key, value) in section {
        let bare = key_name(key);
        if !known.contains(&bare) {
            warnings.push(format!(
                "{file} {what}: `{key}` is not a Herald setting this version knows; passed on as {}",
                var_name(&bare)
            ));
        }
        let bad = || {
            usage(format!(
                "{file} {what}: `{key}` must be a string, number, boolean or a list of them"
            ))
        };
        let text = match value {
            toml::Value::Array(items) => items
                .iter()
                .map(|i| scalar(i).ok_or_else(bad))
                .collect::<Result<Vec<_>>>()?
                .join(","),
            other => scalar(other).ok_or_else(bad)?,
        };
        into.insert(bare, text);
    }
    Ok(())
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_reference_matches_the_settings_structs() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
        let text = std::fs::read_to_string(path).unwrap();
        let documented: BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("| `HERALD_"))
            .filter_map(|l| l.split('`').next())
            .map(|name| format!("HERALD_{name}"))
            .collect();
        let mut known: BTreeSet<String> = known_keys().iter().map(|k| var_name(k)).collect();
        known.extend([
            "HERALD_PROFILE".to_owned(),
            "HERALD_PROFILE_FILE".to_owned(),
        ]);
        let undocumented: Vec<_> = known.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&known).collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "docs/configuration.md and the settings structs disagree: \
             read but not documented {undocumented:?}; documented but not read {unknown:?}"
        );
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn load(
        flags: GlobalArgs,
        vars: Vec<(String, String)>,
        default_file: Option<&Path>,
    ) -> Result<Settings> {
        Settings::load_with(flags, vars, default_file)
    }

    fn file(text: &str) -> tempfile_path::TempPath {
        tempfile_path::TempPath::with(text)
    }

    /// A throwaway file, removed on drop (no tempfile dependency for one test).
    mod tempfile_path {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn with(text: &str) -> Self {
                static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let p = std::env::temp_dir().join(format!(
                    "herald-cli-config-{}-{}.toml",
                    std::process::id(),
                    SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                ));
                std::fs::write(&p, text).unwrap();
                Self(p)
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    const PROFILES: &str = r#"
[default]
api_url = "http://default:1"
api_key = "hk_default"
events_queue_url = "http://q/default"
allow_private_networks = ["127.0.0.1/32", "::1"]

[profiles.staging]
api_url = "http://staging:2"
admin_key = "admin-of-staging-0123"
worker_wait = "3s"
"#;

    #[test]
    fn flag_beats_env_beats_profile_beats_default() {
        let f = file(PROFILES);
        let flags = |api_url: Option<&str>| GlobalArgs {
            api_url: api_url.map(str::to_owned),
            profile_file: Some(f.0.clone()),
            ..GlobalArgs::default()
        };
        let s = load(
            flags(Some("http://flag:9")),
            env(&[("HERALD_API_URL", "http://env:8")]),
            None,
        )
        .unwrap();
        assert_eq!(s.api_url(), "http://flag:9");
        let s = load(
            flags(None),
            env(&[("HERALD_API_URL", "http://env:8")]),
            None,
        )
        .unwrap();
        assert_eq!(s.api_url(), "http://env:8");
        let s = load(flags(None), env(&[]), None).unwrap();
        assert_eq!(s.api_url(), "http://default:1");
        assert_eq!(s.app_key().unwrap(), "hk_default");
        assert_eq!(
            s.lookup("HERALD_ALLOW_PRIVATE_NETWORKS").as_deref(),
            Some("127.0.0.1/32,::1")
        );
        let s = load(GlobalArgs::default(), env(&[]), None).unwrap();
        assert_eq!(s.api_url(), DEFAULT_API_URL);
        assert!(s.app_key().is_err());
    }

    #[test]
    fn a_named_profile_overrides_the_default_section() {
        let f = file(PROFILES);
        let s = load(
            GlobalArgs::default(),
            env(&[
                ("HERALD_PROFILE_FILE", f.0.to_str().unwrap()),
                ("HERALD_PROFILE", "staging"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(s.api_url(), "http://staging:2");
        assert_eq!(
            s.lookup("HERALD_EVENTS_QUEUE_URL").as_deref(),
            Some("http://q/default")
        );
        assert_eq!(s.lookup("HERALD_WORKER_WAIT").as_deref(), Some("3s"));
        assert_eq!(s.admin_key().unwrap(), "admin-of-staging-0123");
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn admin_key_prefers_admin_sources() {
        let s = load(
            GlobalArgs::default(),
            env(&[
                ("HERALD_API_KEY", "hk_app"),
                ("HERALD_ADMIN_KEY", "admin-key-0123456789"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(s.admin_key().unwrap(), "admin-key-0123456789");
        assert_eq!(s.app_key().unwrap(), "hk_app");
        let s = load(
            GlobalArgs {
                api_key: Some("flag-key".into()),
                ..GlobalArgs::default()
            },
            env(&[("HERALD_ADMIN_KEY", "admin-key-0123456789")]),
            None,
        )
        .unwrap();
        assert_eq!(s.admin_key().unwrap(), "flag-key");
        // A profile's admin key beats an exported app key.
        let f = file("[default]\nadmin_key = \"admin-from-profile-0123\"\n");
        let s = load(
            GlobalArgs {
                profile_file: Some(f.0.clone()),
                ..GlobalArgs::default()
            },
            env(&[("HERALD_API_KEY", "hk_app")]),
            None,
        )
        .unwrap();
        assert_eq!(s.admin_key().unwrap(), "admin-from-profile-0123");
        assert_eq!(s.app_key().unwrap(), "hk_app");
    }

    #[test]
    fn missing_profiles_and_bad_files_are_usage_errors() {
        let f = file(PROFILES);
        let err = load(
            GlobalArgs {
                profile: Some("prod".into()),
                profile_file: Some(f.0.clone()),
                ..GlobalArgs::default()
            },
            env(&[]),
            None,
        )
        .err()
        .unwrap();
        assert_eq!(crate::failure::exit_code(&err), crate::failure::EXIT_USAGE);
        assert!(err.to_string().contains("staging"), "{err}");
        let err = load(
            GlobalArgs {
                profile: Some("prod".into()),
                ..GlobalArgs::default()
            },
            env(&[]),
            Some(Path::new("/nonexistent/config.toml")),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("no profile file"), "{err}");
        let bad = file("[default\napi_url=");
        assert!(load(
            GlobalArgs {
                profile_file: Some(bad.0.clone()),
                ..GlobalArgs::default()
            },
            env(&[]),
            None
        )
        .is_err());
        let odd = file("[default]\nfavourite_colour = \"blue\"\n");
        let s = load(
            GlobalArgs {
                profile_file: Some(odd.0.clone()),
                ..GlobalArgs::default()
            },
            env(&[]),
            None,
        )
        .unwrap();
        assert_eq!(s.warnings.len(), 1);
    }
}
