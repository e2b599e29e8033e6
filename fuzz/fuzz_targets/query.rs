//! Fuzzes the service's query-string parser (`isobench::service::query`) with arbitrary
//! input: it must never panic, must keep every accepted value inside its bounds, must name
//! a parameter in every error, and must accept its own canonical rendering of what it
//! accepted. Run with `cargo +nightly fuzz run query` from `fuzz/`.
#![no_main]

use isobench::service::query::{UintParam, parse_uints};
use libfuzzer_sys::fuzz_target;

const PARAMS: [UintParam; 2] = [
    UintParam {
        name: "tasks",
        default: 8,
        min: 1,
        max: 64,
    },
    UintParam {
        name: "n",
        default: 50_000,
        min: 1,
        max: 5_000_000,
    },
];

fuzz_target!(|data: &[u8]| {
    // hyper hands the service only ASCII targets; anything else cannot reach the parser.
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    match parse_uints(Some(query), &PARAMS) {
        Ok(values) => {
            for (param, value) in PARAMS.iter().zip(values) {
                assert!(
                    (param.min..=param.max).contains(&value),
                    "{} = {value} out of bounds for {query:?}",
                    param.name
                );
            }
            let canonical = format!("tasks={}&n={}", values[0], values[1]);
            assert_eq!(parse_uints(Some(&canonical), &PARAMS), Ok(values));
        }
        Err(error) => {
            assert!(!error.param.is_empty(), "no parameter named for {query:?}");
            assert!(error.to_string().len() < 1_024, "error echoes too much");
        }
    }
});
