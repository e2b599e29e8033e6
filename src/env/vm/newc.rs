//! A writer for the cpio "newc" format (SVR4 without CRC), the format the Linux kernel
//! unpacks an initramfs from (`Documentation/driver-api/early-userspace/buffer-format.rst`).
//!
//! Hand-written rather than driving `cpio`: the format is a 110-byte ASCII header, the name and
//! the data, each padded to 4 bytes, so it is shorter than staging a directory tree with the
//! right owners and modes. It also makes the archive a pure function of its entries (fixed
//! mtime, owner root, inode numbers in order), so equal inputs give an identical image.

use std::io::{self, Write};

/// File type bits of `st_mode`.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;

/// Builds one newc archive in memory.
#[derive(Debug, Default)]
pub struct NewcArchive {
    bytes: Vec<u8>,
    next_ino: u32,
}

impl NewcArchive {
    /// An empty archive.
    pub fn new() -> Self {
        Self {
            bytes: Vec::new(),
            next_ino: 1,
        }
    }

    /// Adds a directory (`path` without a leading slash, e.g. `proc`).
    pub fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        self.entry(path, S_IFDIR | (perm & 0o7777), 2, (0, 0), &[])
    }

    /// Adds a regular file with the given contents and permission bits.
    /// Fails if `data` does not fit the format's 32-bit size field (4 GiB).
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, S_IFREG | (perm & 0o7777), 1, (0, 0), data)
    }

    /// Adds a character device node (e.g. `dev/console`, 5:1), so the kernel has a console to
    /// open for init before devtmpfs is mounted.
    pub fn char_device(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(path, S_IFCHR | (perm & 0o7777), 1, (major, minor), &[])
    }

    fn entry(
        &mut self,
        path: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> io::Result<()> {
        let name = path.trim_start_matches('/');
        let ino = self.next_ino;
        self.next_ino += 1;
        self.header(ino, mode, nlink, rdev, data.len(), name)?;
        self.bytes.extend_from_slice(data);
        self.pad();
        Ok(())
    }

    fn header(
        &mut self,
        ino: u32,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        size: usize,
        name: &str,
    ) -> io::Result<()> {
        let too_big = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("newc: {what} of {name} exceeds 32 bits"),
            )
        };
        // namesize counts the terminating NUL.
        let fields = [
            ino,
            mode,
            0, // uid: root
            0, // gid: root
            nlink,
            0, // mtime: fixed, so the archive depends on contents only
            u32::try_from(size).map_err(|_| too_big("size"))?,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).map_err(|_| too_big("name length"))?,
            0, // check: unused by newc
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        Ok(())
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    /// Appends the `TRAILER!!!` entry and writes the archive out.
    pub fn finish(mut self, out: &mut impl Write) -> io::Result<()> {
        self.header(0, 0, 1, (0, 0), 0, "TRAILER!!!")?;
        out.write_all(&self.bytes)
    }
}

/// One member read back from an archive (used by tests and to list an image's contents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Path inside the archive.
    pub name: String,
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    /// The member's data.
    pub data: Vec<u8>,
}

/// Reads a newc archive back into its members, stopping at the trailer.
pub fn read_members(mut bytes: &[u8]) -> io::Result<Vec<Member>> {
    fn bad(what: &str) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("newc: {what}"))
    }
    fn field(header: &[u8], index: usize) -> io::Result<u32> {
        let start = 6 + 8 * index;
        let text = std::str::from_utf8(&header[start..start + 8]).map_err(|_| bad("header"))?;
        u32::from_str_radix(text, 16).map_err(|_| bad("hex field"))
    }
    let padded = |n: usize| n.div_ceil(4) * 4;
    let mut members = Vec::new();
    loop {
        if bytes.len() < 110 {
            return Err(bad("truncated header"));
        }
        if &bytes[..6] != b"070701" {
            return Err(bad("bad magic"));
        }
        let mode = field(bytes, 1)?;
        let size = field(bytes, 6)? as usize;
        let namesize = field(bytes, 11)? as usize;
        let name_end = 110 + namesize;
        if bytes.len() < name_end || namesize == 0 {
            return Err(bad("truncated name"));
        }
        let name = String::from_utf8_lossy(&bytes[110..name_end - 1]).into_owned();
        // Padding is relative to the start of the archive, and every member starts aligned,
        // so padding relative to the member is the same.
        let data_start = padded(name_end);
        let data_end = data_start + size;
        if bytes.len() < data_end {
            return Err(bad("truncated data"));
        }
        if name == "TRAILER!!!" {
            return Ok(members);
        }
        members.push(Member {
            name,
            mode,
            data: bytes[data_start..data_end].to_vec(),
        });
        bytes = &bytes[padded(data_end).min(bytes.len())..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_files_dirs_and_devices() {
        let mut archive = NewcArchive::new();
        archive.dir("proc", 0o755).unwrap();
        archive
            .file("init", 0o755, b"#!/bin/sh\necho hi\n")
            .unwrap();
        archive.file("odd", 0o644, b"12345").unwrap();
        archive.char_device("dev/console", 0o600, 5, 1).unwrap();
        let mut bytes = Vec::new();
        archive.finish(&mut bytes).unwrap();
        assert_eq!(bytes.len() % 4, 0);

        let members = read_members(&bytes).unwrap();
        let names: Vec<_> = members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["proc", "init", "odd", "dev/console"]);
        assert_eq!(members[0].mode, S_IFDIR | 0o755);
        assert_eq!(members[1].mode, S_IFREG | 0o755);
        assert_eq!(members[1].data, b"#!/bin/sh\necho hi\n");
        assert_eq!(members[2].data, b"12345");
        assert_eq!(members[3].mode, S_IFCHR | 0o600);
    }

    #[test]
    fn equal_inputs_give_identical_archives() {
        let build = || {
            let mut archive = NewcArchive::new();
            archive.file("a", 0o644, b"x").unwrap();
            let mut bytes = Vec::new();
            archive.finish(&mut bytes).unwrap();
            bytes
        };
        assert_eq!(build(), build());
    }

    #[test]
    fn busybox_cpio_lists_what_we_wrote() {
        // An independent reader: skip where busybox is not installed.
        if !std::path::Path::new("/bin/busybox").exists() {
            return;
        }
        let mut archive = NewcArchive::new();
        archive.dir("bin", 0o755).unwrap();
        archive.file("bin/hello", 0o755, b"hello").unwrap();
        let mut bytes = Vec::new();
        archive.finish(&mut bytes).unwrap();
        let mut child = std::process::Command::new("/bin/busybox")
            .args(["cpio", "-t"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        assert_eq!(String::from_utf8_lossy(&output.stdout), "bin\nbin/hello\n");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(read_members(b"not an archive").is_err());
        assert!(read_members(&[b'0'; 200]).is_err());
    }
}
