//! The image's `USER`, resolved the way Docker resolves it: against the image's own
//! `/etc/passwd` and `/etc/group`, not the host's, since the chroot and the VM run the
//! image's files.

use std::path::Path;

/// Why a `USER` could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// A user name the image's `/etc/passwd` does not have.
    #[error("user {0:?} is not in the image's /etc/passwd")]
    UnknownUser(String),
    /// A group name the image's `/etc/group` does not have.
    #[error("group {0:?} is not in the image's /etc/group")]
    UnknownGroup(String),
}

/// Who the service runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory (`HOME` when the image does not set it).
    pub home: String,
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`, …) against the image's
/// root filesystem at `root`.
pub fn resolve(root: &Path, spec: &str) -> Result<ResolvedUser, UserError> {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap_or_default();
    resolve_in(&passwd, &group, spec)
}

fn resolve_in(passwd: &str, group: &str, spec: &str) -> Result<ResolvedUser, UserError> {
    let (user, group_spec) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "root" } else { user };
    // passwd lines: name:password:uid:gid:gecos:home:shell
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .filter(|fields| fields.len() >= 6)
        .collect();
    let entry = match user.parse::<u32>() {
        Ok(uid) => entries.iter().find(|fields| fields[2].parse() == Ok(uid)),
        Err(_) => entries.iter().find(|fields| fields[0] == user),
    };
    let (uid, mut gid, home) = match (user.parse::<u32>(), entry) {
        (_, Some(fields)) => (
            fields[2].parse().unwrap_or(0),
            fields[3].parse().unwrap_or(0),
            fields[5].to_owned(),
        ),
        // A numeric uid the image does not list: Docker runs it with gid 0 and home `/`.
        (Ok(uid), None) => (uid, 0, "/".to_owned()),
        (Err(_), None) if user == "root" => (0, 0, "/root".to_owned()),
        (Err(_), None) => return Err(UserError::UnknownUser(user.into())),
    };
    if let Some(group_spec) = group_spec {
        gid = match group_spec.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group
                .lines()
                .map(|line| line.split(':').collect::<Vec<_>>())
                .find(|fields| fields.len() >= 3 && fields[0] == group_spec)
                .and_then(|fields| fields[2].parse().ok())
                .ok_or_else(|| UserError::UnknownGroup(group_spec.into()))?,
        };
    }
    Ok(ResolvedUser { uid, gid, home })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000:app:/app:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n";

    fn user(uid: u32, gid: u32, home: &str) -> ResolvedUser {
        ResolvedUser {
            uid,
            gid,
            home: home.into(),
        }
    }

    #[test]
    fn resolves_docker_user_forms() {
        assert_eq!(resolve_in(PASSWD, GROUP, "").unwrap(), user(0, 0, "/root"));
        assert_eq!(
            resolve_in(PASSWD, GROUP, "app").unwrap(),
            user(1000, 1000, "/app")
        );
        assert_eq!(
            resolve_in(PASSWD, GROUP, "1000").unwrap(),
            user(1000, 1000, "/app")
        );
        assert_eq!(
            resolve_in(PASSWD, GROUP, "app:nogroup").unwrap(),
            user(1000, 65534, "/app")
        );
        assert_eq!(
            resolve_in(PASSWD, GROUP, "65534:65534").unwrap(),
            user(65534, 65534, "/nonexistent")
        );
        // A scratch image has no passwd at all.
        assert_eq!(
            resolve_in("", "", "65534:65534").unwrap(),
            user(65534, 65534, "/")
        );
        assert_eq!(resolve_in("", "", "4242").unwrap(), user(4242, 0, "/"));
    }

    #[test]
    fn unknown_names_are_errors() {
        assert_eq!(
            resolve_in(PASSWD, GROUP, "www"),
            Err(UserError::UnknownUser("www".into()))
        );
        assert_eq!(
            resolve_in(PASSWD, GROUP, "app:www"),
            Err(UserError::UnknownGroup("www".into()))
        );
    }
}
