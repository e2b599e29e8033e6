//! Strict query-string parsing for the service's endpoints: a pure function over the raw
//! query, so it is unit-tested, property-tested and fuzzed (`fuzz/`) without a server.
//!
//! Stricter than `application/x-www-form-urlencoded` decoders such as `form_urlencoded`,
//! which pass malformed escapes through silently: here a bad `%` escape, a name or value that
//! is not UTF-8 once decoded, an unknown name, a repeated name, an empty value and anything
//! that is not a plain decimal whole number inside its bounds are all errors that name the
//! parameter, so a client always learns exactly what it got wrong. `+` decodes to a space (as
//! in HTML forms), which is then not a digit; empty segments (`a=1&&b=2`, a trailing `&`)
//! are ignored.

use std::fmt;

/// Longest parameter name or value echoed back in an error message, in characters: errors
/// name the problem without reflecting a hostile client's megabyte back at it.
const ECHO_MAX_CHARS: usize = 64;

/// A query-string error: which parameter, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{param}`: {problem}")]
pub struct QueryError {
    /// The parameter concerned, as the client spelt it (decoded if it could be, shortened).
    pub param: String,
    /// What is wrong with it.
    pub problem: Problem,
}

/// The kinds of query-string mistakes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A `%` not followed by two hexadecimal digits.
    BadPercentEncoding,
    /// The percent-decoded bytes are not UTF-8.
    NotUtf8,
    /// `=value` with no name (the error's `param` is then the whole segment).
    NoName,
    /// A parameter this endpoint does not take; carries the ones it does take.
    Unknown {
        /// The parameters the endpoint accepts, comma-separated (or `none`).
        allowed: String,
    },
    /// The same parameter given more than once.
    Repeated,
    /// `name=` or a bare `name` without a value.
    Empty,
    /// A negative number.
    Negative,
    /// Not a plain decimal whole number.
    NotANumber {
        /// The offending value (shortened).
        value: String,
    },
    /// Smaller than the endpoint's minimum.
    BelowMin {
        /// The smallest accepted value.
        min: u64,
    },
    /// Larger than the cap (including numbers that overflow 64 bits).
    AboveMax {
        /// The largest accepted value (the configured cap).
        max: u64,
    },
    /// Not `true`, `false`, `1` or `0`.
    NotABool {
        /// The offending value (shortened).
        value: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::BadPercentEncoding => {
                f.write_str("invalid percent-encoding (a `%` must be followed by two hex digits)")
            }
            Problem::NotUtf8 => f.write_str("not valid UTF-8 once percent-decoded"),
            Problem::NoName => f.write_str("a parameter without a name"),
            Problem::Unknown { allowed } => write!(f, "unknown parameter (accepted: {allowed})"),
            Problem::Repeated => f.write_str("given more than once"),
            Problem::Empty => f.write_str("empty value (expected a whole number)"),
            Problem::Negative => f.write_str("must not be negative"),
            Problem::NotANumber { value } => {
                write!(f, "expected a decimal whole number, got {value:?}")
            }
            Problem::BelowMin { min } => write!(f, "must be at least {min}"),
            Problem::AboveMax { max } => write!(f, "too large: must be at most {max}"),
            Problem::NotABool { value } => {
                write!(f, "expected true, false, 1 or 0, got {value:?}")
            }
        }
    }
}

/// One unsigned integer parameter an endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UintParam {
    /// Its name in the query string.
    pub name: &'static str,
    /// The value used when the parameter is absent.
    pub default: u64,
    /// The smallest accepted value.
    pub min: u64,
    /// The largest accepted value (the configured cap).
    pub max: u64,
}

/// Parses `query` (the part of the URI after `?`, if any) against the parameters an endpoint
/// accepts and returns their values in the same order, defaults filled in.
///
/// Pure and total: any input yields `Ok` or a [`QueryError`], never a panic.
pub fn parse_uints<const N: usize>(
    query: Option<&str>,
    params: &[UintParam; N],
) -> Result<[u64; N], QueryError> {
    let names: [&'static str; N] = std::array::from_fn(|i| params[i].name);
    let raw = parse_pairs(query, &names)?;
    let mut values = [0u64; N];
    for (i, (param, value)) in params.iter().zip(raw).enumerate() {
        values[i] = match value {
            None => param.default,
            Some(value) => parse_uint(param, &value)?,
        };
    }
    Ok(values)
}

/// Splits and percent-decodes `query`, accepting only the names in `allowed`, each at most
/// once; returns each allowed name's decoded value (or `None` if absent), in `allowed`'s
/// order.
pub fn parse_pairs<const N: usize>(
    query: Option<&str>,
    allowed: &[&'static str; N],
) -> Result<[Option<String>; N], QueryError> {
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    let Some(query) = query else {
        return Ok(values);
    };
    for segment in query.split('&').filter(|segment| !segment.is_empty()) {
        let (raw_name, raw_value) = segment.split_once('=').unwrap_or((segment, ""));
        let name = decode(raw_name).map_err(|problem| QueryError {
            param: echo(raw_name),
            problem,
        })?;
        if name.is_empty() {
            return Err(QueryError {
                param: echo(segment),
                problem: Problem::NoName,
            });
        }
        let Some(index) = allowed.iter().position(|allowed| *allowed == name) else {
            return Err(QueryError {
                param: echo(&name),
                problem: Problem::Unknown {
                    allowed: if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    },
                },
            });
        };
        let value = decode(raw_value).map_err(|problem| QueryError {
            param: name.clone(),
            problem,
        })?;
        if values[index].is_some() {
            return Err(QueryError {
                param: name,
                problem: Problem::Repeated,
            });
        }
        values[index] = Some(value);
    }
    Ok(values)
}

/// Parses one decoded value as a yes/no flag: `true` or `1`, `false` or `0`, nothing else
/// (no `yes`, no case folding), so a typo is an error rather than a silent `false`.
pub fn parse_bool(name: &str, value: &str) -> Result<bool, QueryError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(QueryError {
            param: name.to_owned(),
            problem: Problem::NotABool { value: echo(other) },
        }),
    }
}

/// Parses one decoded value as a plain decimal whole number inside `param`'s bounds.
pub fn parse_uint(param: &UintParam, value: &str) -> Result<u64, QueryError> {
    let error = |problem| QueryError {
        param: param.name.to_owned(),
        problem,
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if value.is_empty() {
        return Err(error(Problem::Empty));
    }
    if value.strip_prefix('-').is_some_and(all_digits) {
        return Err(error(Problem::Negative));
    }
    if !all_digits(value) {
        return Err(error(Problem::NotANumber { value: echo(value) }));
    }
    // Only digits remain, so the one way parsing can fail is overflow: too large.
    let number = value
        .parse::<u64>()
        .map_err(|_| error(Problem::AboveMax { max: param.max }))?;
    if number < param.min {
        return Err(error(Problem::BelowMin { min: param.min }));
    }
    if number > param.max {
        return Err(error(Problem::AboveMax { max: param.max }));
    }
    Ok(number)
}

/// Percent-decodes one name or value strictly (`+` is a space).
fn decode(raw: &str) -> Result<String, Problem> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |offset: usize| {
                    bytes
                        .get(i + offset)
                        .and_then(|b| (*b as char).to_digit(16))
                };
                let (Some(high), Some(low)) = (hex(1), hex(2)) else {
                    return Err(Problem::BadPercentEncoding);
                };
                // Two hex digits are at most 0xff, so the cast is exact.
                decoded.push((high * 16 + low) as u8);
                i += 3;
            }
            b'+' => {
                decoded.push(b' ');
                i += 1;
            }
            byte => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).map_err(|_| Problem::NotUtf8)
}

/// Shortens client-supplied text before it is echoed in an error message.
fn echo(text: &str) -> String {
    let mut chars = text.chars();
    let mut shortened: String = chars.by_ref().take(ECHO_MAX_CHARS).collect();
    if chars.next().is_some() {
        shortened.push('…');
    }
    shortened
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: UintParam = UintParam {
        name: "n",
        default: 10,
        min: 1,
        max: 1000,
    };
    const T: UintParam = UintParam {
        name: "tasks",
        default: 4,
        min: 1,
        max: 8,
    };

    fn parse(query: &str) -> Result<[u64; 2], QueryError> {
        parse_uints(Some(query), &[N, T])
    }

    fn problem(query: &str) -> (String, Problem) {
        let error = parse(query).expect_err(query);
        (error.param, error.problem)
    }

    #[test]
    fn flags_are_true_false_one_or_zero_and_nothing_else() {
        assert_eq!(parse_bool("fsync", "true"), Ok(true));
        assert_eq!(parse_bool("fsync", "1"), Ok(true));
        assert_eq!(parse_bool("fsync", "false"), Ok(false));
        assert_eq!(parse_bool("fsync", "0"), Ok(false));
        for bad in ["", "yes", "TRUE", "2", "true "] {
            let error = parse_bool("fsync", bad).expect_err(bad);
            assert_eq!(error.param, "fsync");
            assert!(matches!(error.problem, Problem::NotABool { .. }), "{bad:?}");
        }
    }

    #[test]
    fn defaults_fill_missing_parameters() {
        assert_eq!(parse_uints(None, &[N, T]), Ok([10, 4]));
        assert_eq!(parse(""), Ok([10, 4]));
        assert_eq!(parse("tasks=2"), Ok([10, 2]));
        assert_eq!(parse("&n=7&&tasks=3&"), Ok([7, 3]));
    }

    #[test]
    fn accepts_bounds_and_percent_encoded_names() {
        assert_eq!(parse("n=1&tasks=8"), Ok([1, 8]));
        assert_eq!(parse("n=1000"), Ok([1000, 4]));
        assert_eq!(parse("%6e=0012"), Ok([12, 4]));
        assert_eq!(parse("n=%31%32"), Ok([12, 4]));
    }

    #[test]
    fn rejects_values_outside_bounds() {
        assert_eq!(problem("n=0"), ("n".into(), Problem::BelowMin { min: 1 }));
        assert_eq!(
            problem("n=1001"),
            ("n".into(), Problem::AboveMax { max: 1000 })
        );
        assert_eq!(
            problem("n=99999999999999999999999999"),
            ("n".into(), Problem::AboveMax { max: 1000 })
        );
        assert_eq!(problem("tasks=-3"), ("tasks".into(), Problem::Negative));
    }

    #[test]
    fn rejects_malformed_values() {
        assert_eq!(problem("n="), ("n".into(), Problem::Empty));
        assert_eq!(problem("n"), ("n".into(), Problem::Empty));
        for bad in ["abc", "1.5", "1e3", " 5", "0x10", "5-", "--5"] {
            let (param, problem) = problem(&format!("n={}", bad.replace(' ', "+")));
            assert_eq!(param, "n");
            assert!(
                matches!(problem, Problem::NotANumber { .. }),
                "{bad}: {problem:?}"
            );
        }
    }

    #[test]
    fn rejects_unknown_repeated_and_badly_encoded_parameters() {
        assert_eq!(
            problem("n=5&bogus=1"),
            (
                "bogus".into(),
                Problem::Unknown {
                    allowed: "n, tasks".into()
                }
            )
        );
        assert_eq!(problem("n=5&n=5"), ("n".into(), Problem::Repeated));
        assert_eq!(problem("n=%zz"), ("n".into(), Problem::BadPercentEncoding));
        assert_eq!(problem("n=%4"), ("n".into(), Problem::BadPercentEncoding));
        assert_eq!(
            problem("%g1=4"),
            ("%g1".into(), Problem::BadPercentEncoding)
        );
        assert_eq!(problem("n=%ff"), ("n".into(), Problem::NotUtf8));
        assert_eq!(problem("=5"), ("=5".into(), Problem::NoName));
        assert_eq!(problem("n=1&="), ("=".into(), Problem::NoName));
    }

    #[test]
    fn endpoints_without_parameters_reject_any() {
        assert_eq!(parse_uints(Some(""), &[]), Ok([]));
        let error = parse_uints(Some("x=1"), &[]).unwrap_err();
        assert_eq!(error.param, "x");
        assert_eq!(
            error.problem,
            Problem::Unknown {
                allowed: "none".into()
            }
        );
    }

    #[test]
    fn echoed_text_is_shortened() {
        let long = "x".repeat(10_000);
        let error = parse(&format!("{long}=1")).unwrap_err();
        assert_eq!(error.param.chars().count(), ECHO_MAX_CHARS + 1);
        assert!(error.to_string().len() < 200);
    }
}
