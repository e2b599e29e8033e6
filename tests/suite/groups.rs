//! `harness::perf_trials_take_every_test_thread`: every trial of this suite whose name holds
//! `::perf::` (taken from the suite's own list of trials, not from its source) runs alone
//! under every profile of `.config/nextest.toml`: in a test group of one thread, taking every
//! test thread. A perf trial that ran beside a correctness trial (a VM booting under emulation,
//! say) would measure the other trial as much as its environment.
//!
//! The config is parsed with `toml` and resolved as nextest resolves it: for a test and a
//! setting, the first override that matches the test and sets the setting wins, the
//! profile's own overrides before the default profile's. Filters are evaluated for the forms
//! nextest's filterset language has (`test(…)` with `=`, `~`, `/regex/` or a bare substring,
//! `binary(…)`, `package(…)`, `all()`, `none()`, `not`, `&`, `|`, `-`, parentheses); a form
//! this evaluator does not know fails the trial and names it, rather than passing unread.

use std::path::Path;

use libtest_mimic::{Failed, Trial};

/// The trial over the suite's trial names.
pub fn trial(names: Vec<String>) -> Trial {
    Trial::test("harness::perf_trials_take_every_test_thread", move || {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".config/nextest.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let config: toml::Table = text
            .parse()
            .map_err(|e| format!("parsing {}: {e}", path.display()))?;
        check(&config, &names)?;
        check_fails_where_it_should(&config, &names)
    })
}

/// The check is not hollow: it fails on the config with the perf overrides' threads taken
/// away, and on one where an earlier override gives a perf trial one thread (the first match
/// wins); and the filter forms read as nextest reads them.
fn check_fails_where_it_should(config: &toml::Table, names: &[String]) -> Result<(), Failed> {
    let mut one_thread = config.clone();
    for profile in ["default", "ci"] {
        let overrides = one_thread
            .get_mut("profile")
            .and_then(|p| p.get_mut(profile))
            .and_then(|p| p.get_mut("overrides"))
            .and_then(toml::Value::as_array_mut)
            .ok_or_else(|| format!("no overrides in profile {profile}"))?;
        for entry in overrides.iter_mut() {
            let perf = entry
                .get("filter")
                .and_then(toml::Value::as_str)
                .is_some_and(|f| f.contains("::perf::"));
            if let (true, Some(table)) = (perf, entry.as_table_mut()) {
                table.remove("threads-required");
            }
        }
    }
    if check(&one_thread, names).is_ok() {
        return Err("the check passed a config whose perf trials take one thread".into());
    }
    let mut shadowed = config.clone();
    let earlier: toml::Value =
        toml::from_str("filter = 'test(/::perf::latency$/)'\nthreads-required = 1")
            .map_err(|e| e.to_string())?;
    shadowed
        .get_mut("profile")
        .and_then(|p| p.get_mut("ci"))
        .and_then(|p| p.get_mut("overrides"))
        .and_then(toml::Value::as_array_mut)
        .ok_or("no ci overrides")?
        .insert(0, earlier);
    if check(&shadowed, names).is_ok() {
        return Err(
            "the check passed a config whose first matching override gives one thread".into(),
        );
    }
    let cases = [
        ("test(/::perf::/)", "vm::perf::latency", true),
        ("test(/::perf::soak$/)", "vm::perf::soak_short", false),
        ("test(=harness::x)", "harness::x", true),
        (
            "test(~perf) & not test(/soak/)",
            "native::perf::soak",
            false,
        ),
        ("binary(suite) and (test(a) | test(b))", "xb", true),
        ("all() - test(native)", "native::perf::x", false),
    ];
    for (filter, name, expected) in cases {
        if matches(filter, name)? != expected {
            return Err(format!("{filter} on {name} should be {expected}").into());
        }
    }
    Ok(())
}

/// What `config` gives every `::perf::` trial among `names`, under every profile it defines.
fn check(config: &toml::Table, names: &[String]) -> Result<(), Failed> {
    let perf: Vec<&String> = names.iter().filter(|n| n.contains("::perf::")).collect();
    if perf.is_empty() {
        return Err("the suite lists no ::perf:: trial".into());
    }
    let profiles = config
        .get("profile")
        .and_then(toml::Value::as_table)
        .ok_or("no [profile] table")?;
    let mut problems = Vec::new();
    for profile in profiles.keys() {
        for name in &perf {
            let group = setting(config, profile, name, "test-group")?;
            let threads = setting(config, profile, name, "threads-required")?;
            let max_threads = group
                .as_ref()
                .and_then(|g| g.as_str())
                .and_then(|g| config.get("test-groups")?.get(g)?.get("max-threads"))
                .and_then(toml::Value::as_integer);
            if max_threads != Some(1) {
                problems.push(format!(
                    "{profile}: {name} is in test group {group:?} (max-threads {max_threads:?}), \
                     not one of one thread"
                ));
            }
            if threads.as_ref().and_then(|t| t.as_str()) != Some("num-test-threads") {
                problems.push(format!(
                    "{profile}: {name} requires {threads:?} threads, not every test thread \
                     (\"num-test-threads\")"
                ));
            }
        }
    }
    if problems.is_empty() {
        println!(
            "    {} perf trials, each alone under {} profiles",
            perf.len(),
            profiles.len()
        );
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

/// The value `profile` gives `key` for the test `name`: the first override of the profile,
/// then of `default`, whose filter matches and which sets the key; `None` when none does.
fn setting(
    config: &toml::Table,
    profile: &str,
    name: &str,
    key: &str,
) -> Result<Option<toml::Value>, Failed> {
    let overrides = |profile: &str| -> Vec<toml::Value> {
        config
            .get("profile")
            .and_then(|p| p.get(profile))
            .and_then(|p| p.get("overrides"))
            .and_then(toml::Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut chain = overrides(profile);
    if profile != "default" {
        chain.extend(overrides("default"));
    }
    for entry in chain {
        let Some(value) = entry.get(key) else {
            continue;
        };
        let filter = entry
            .get("filter")
            .and_then(toml::Value::as_str)
            .ok_or_else(|| format!("an override of {profile} without a filter: {entry}"))?;
        if matches(filter, name).map_err(|e| format!("filter {filter:?}: {e}"))? {
            return Ok(Some(value.clone()));
        }
    }
    Ok(None)
}

/// Whether the filterset `filter` selects the suite's trial `name`.
fn matches(filter: &str, name: &str) -> Result<bool, String> {
    let mut parser = Parser {
        rest: filter.trim(),
        name,
    };
    let value = parser.union()?;
    if parser.rest.trim().is_empty() {
        Ok(value)
    } else {
        Err(format!("cannot read {:?}", parser.rest))
    }
}

/// A recursive-descent reader of nextest's filterset language, evaluating as it reads.
struct Parser<'a> {
    rest: &'a str,
    name: &'a str,
}

impl<'a> Parser<'a> {
    fn eat(&mut self, token: &str) -> bool {
        let trimmed = self.rest.trim_start();
        let word = token.chars().all(char::is_alphabetic);
        let follows = trimmed.strip_prefix(token).filter(|after| {
            // A word operator must end there (`and`, not `android(`).
            !word || !after.starts_with(|c: char| c.is_alphanumeric() || c == '_')
        });
        match follows {
            Some(after) => {
                self.rest = after;
                true
            }
            None => false,
        }
    }

    fn union(&mut self) -> Result<bool, String> {
        let mut value = self.difference()?;
        while self.eat("|") || self.eat("+") || self.eat("or") {
            value |= self.difference()?;
        }
        Ok(value)
    }

    fn difference(&mut self) -> Result<bool, String> {
        let mut value = self.intersection()?;
        while self.eat("-") {
            value &= !self.intersection()?;
        }
        Ok(value)
    }

    fn intersection(&mut self) -> Result<bool, String> {
        let mut value = self.unary()?;
        while self.eat("&") || self.eat("and") {
            value &= self.unary()?;
        }
        Ok(value)
    }

    fn unary(&mut self) -> Result<bool, String> {
        if self.eat("not") || self.eat("!") {
            return Ok(!self.unary()?);
        }
        if self.eat("(") {
            let value = self.union()?;
            return if self.eat(")") {
                Ok(value)
            } else {
                Err("a parenthesis is not closed".into())
            };
        }
        let trimmed = self.rest.trim_start();
        let open = trimmed
            .find('(')
            .ok_or_else(|| format!("expected a predicate at {trimmed:?}"))?;
        let predicate = trimmed[..open].trim();
        let after = &trimmed[open + 1..];
        let close = closing(after).ok_or("a predicate's parenthesis is not closed")?;
        let argument = after[..close].trim();
        self.rest = &after[close + 1..];
        match predicate {
            "all" => Ok(true),
            "none" => Ok(false),
            "test" => matcher(argument, self.name, Default::Contains),
            // Every trial here is in the package's `suite` test binary.
            "binary" => matcher(argument, "suite", Default::Glob),
            "binary_id" => matcher(argument, "isobench::suite", Default::Glob),
            "package" => matcher(argument, "isobench", Default::Glob),
            "kind" => matcher(argument, "test", Default::Equal),
            other => Err(format!("this check does not know the predicate {other}()")),
        }
    }
}

/// Where the parenthesis opened just before `text` closes: a `/regex/` may hold parentheses.
fn closing(text: &str) -> Option<usize> {
    let start = text.trim_start();
    let offset = text.len() - start.len();
    if let Some(body) = start.strip_prefix('/') {
        let end = body.find('/')?;
        let rest = &body[end + 1..];
        return Some(offset + 1 + end + 1 + rest.find(')')?);
    }
    text.find(')')
}

/// What a matcher without a prefix means for its predicate.
enum Default {
    Contains,
    Equal,
    Glob,
}

fn matcher(argument: &str, value: &str, default: Default) -> Result<bool, String> {
    if let Some(exact) = argument.strip_prefix('=') {
        return Ok(value == exact);
    }
    if let Some(part) = argument.strip_prefix('~') {
        return Ok(value.contains(part));
    }
    if let Some(pattern) = argument.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
        let regex = regex::Regex::new(pattern).map_err(|e| format!("regex {pattern:?}: {e}"))?;
        return Ok(regex.is_match(value));
    }
    if argument.starts_with('#') || argument.contains(['*', '?', '[']) {
        return Err(format!("this check does not evaluate globs ({argument})"));
    }
    Ok(match default {
        Default::Contains => value.contains(argument),
        Default::Equal | Default::Glob => value == argument,
    })
}
