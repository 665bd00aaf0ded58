//! Reads a parameter's `Default:` out of infra/herald.yaml, so tests can check that the
//! bench's assumptions match the template.

/// infra/herald.yaml, as compiled in.
const HERALD_YAML: &str = include_str!("../../../infra/herald.yaml");

/// The `Default:` of the template parameter `name` (the first `Default:` line after
/// the line `  {name}:`, before the next parameter).
pub fn default_of(name: &str) -> Option<String> {
    let mut lines = HERALD_YAML
        .lines()
        .skip_while(|l| l.trim_end() != format!("  {name}:"));
    lines.next()?;
    lines
        .take_while(|l| l.starts_with("    ") || l.trim().is_empty())
        .find_map(|l| {
            l.trim()
                .strip_prefix("Default:")
                .map(|v| v.trim().to_owned())
        })
}

#[test]
fn defaults_are_read_from_the_template() {
    assert!(default_of("ConsumerMemoryMB").is_some());
    assert_eq!(default_of("NoSuchParameter"), None);
}
