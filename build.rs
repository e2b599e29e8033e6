//! Passes the target triple to the crate, so it can build its static server for the same
//! target.
fn main() {
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    println!("cargo:rustc-env=ISOBENCH_TARGET={target}");
}
