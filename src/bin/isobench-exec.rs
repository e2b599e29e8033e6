//! `isobench-exec`: runs a command inside a root filesystem as a given user, the way a
//! container runtime does: `chroot`, `chdir`, supplementary groups dropped, `setgid`,
//! `setuid`, a fresh environment, then exec (the program looked up in the new `PATH`, inside
//! the root).
//!
//! It exists for the VM guest, whose init (busybox) has no tool that switches to a numeric
//! uid the image's `/etc/passwd` may not list; it is built static alongside
//! `isobench-server` and needs only libc.
//!
//! Usage: `isobench-exec SPEC_FILE`, where the file holds one `key value` per line:
//! `root DIR`, `uid N`, `gid N`, `workdir DIR`, `no_new_privs` (the container's
//! `no-new-privileges`, mirrored), then `env NAME=VALUE` and `arg ARG` lines in order (an
//! argument cannot hold a newline; isobench refuses such images for the VM).

use std::ffi::CString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.as_slice() {
        [spec] => std::fs::read_to_string(spec)
            .map_err(|error| format!("reading {spec}: {error}"))
            .and_then(|text| parse(&text))
            .and_then(|spec| exec(&spec)),
        _ => Err("usage: isobench-exec SPEC_FILE".into()),
    };
    let Err(error) = outcome;
    eprintln!("isobench-exec: {error}");
    ExitCode::from(127)
}

/// What to run, and where and as whom.
#[derive(Debug, Default, PartialEq)]
struct Spec {
    root: String,
    uid: libc::uid_t,
    gid: libc::gid_t,
    workdir: String,
    no_new_privs: bool,
    env: Vec<(String, String)>,
    argv: Vec<String>,
}

fn parse(text: &str) -> Result<Spec, String> {
    let mut spec = Spec {
        root: "/".into(),
        workdir: "/".into(),
        ..Spec::default()
    };
    for line in text.lines().filter(|line| !line.is_empty()) {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "root" => spec.root = value.into(),
            "uid" => spec.uid = value.parse().map_err(|_| format!("bad uid {value:?}"))?,
            "gid" => spec.gid = value.parse().map_err(|_| format!("bad gid {value:?}"))?,
            "workdir" if !value.is_empty() => spec.workdir = value.into(),
            "workdir" => {}
            "no_new_privs" => spec.no_new_privs = true,
            "env" => {
                let (name, val) = value
                    .split_once('=')
                    .ok_or_else(|| format!("env line without '=': {value:?}"))?;
                spec.env.push((name.into(), val.into()));
            }
            "arg" => spec.argv.push(value.into()),
            other => return Err(format!("unknown spec key {other:?}")),
        }
    }
    if spec.argv.is_empty() {
        return Err("the spec has no arg lines: nothing to run".into());
    }
    Ok(spec)
}

enum Never {}

fn exec(spec: &Spec) -> Result<Never, String> {
    let c = |s: &str| CString::new(s).map_err(|_| format!("{s:?} holds a NUL byte"));
    let root = c(&spec.root)?;
    let workdir = c(&spec.workdir)?;
    let argv: Vec<CString> = spec.argv.iter().map(|a| c(a)).collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let os = |what: String| format!("{what}: {}", std::io::Error::last_os_error());
    for (name, _) in std::env::vars_os() {
        // SAFETY: single-threaded: nothing else reads the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
    for (name, value) in &spec.env {
        // SAFETY: as above.
        unsafe { std::env::set_var(name, value) };
    }
    // SAFETY: plain system calls on valid NUL-terminated strings and a NULL-terminated argv.
    unsafe {
        if libc::chroot(root.as_ptr()) != 0 {
            return Err(os(format!("chroot {}", spec.root)));
        }
        if libc::chdir(workdir.as_ptr()) != 0 {
            return Err(os(format!("chdir {}", spec.workdir)));
        }
        let groups = [spec.gid];
        if libc::setgroups(1, groups.as_ptr()) != 0 {
            return Err(os("setgroups".into()));
        }
        if libc::setgid(spec.gid) != 0 {
            return Err(os(format!("setgid {}", spec.gid)));
        }
        if libc::setuid(spec.uid) != 0 {
            return Err(os(format!("setuid {}", spec.uid)));
        }
        if spec.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(os("prctl(PR_SET_NO_NEW_PRIVS)".into()));
        }
        libc::execvp(argv[0].as_ptr(), argv_ptrs.as_ptr());
    }
    Err(os(format!("exec {}", spec.argv[0])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_spec() {
        let spec = parse(
            "root /newroot\nuid 1000\ngid 100\nworkdir /app\nno_new_privs\nenv A=b=c\narg gunicorn\narg a b\n",
        )
        .unwrap();
        assert_eq!(
            spec,
            Spec {
                root: "/newroot".into(),
                uid: 1000,
                gid: 100,
                workdir: "/app".into(),
                no_new_privs: true,
                env: vec![("A".into(), "b=c".into())],
                argv: vec!["gunicorn".into(), "a b".into()],
            }
        );
        assert!(parse("uid x\narg a").unwrap_err().contains("bad uid"));
        assert!(parse("root /\n").unwrap_err().contains("nothing to run"));
        assert!(
            parse("what 1\narg a")
                .unwrap_err()
                .contains("unknown spec key")
        );
    }
}
