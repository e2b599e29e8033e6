//! The uncompressed kernel (`vmlinux`, an ELF) inside a `vmlinuz` bzImage, so QEMU can boot
//! it through its PVH entry point and the guest skips decompressing itself.
//!
//! Decompressing the kernel is the guest's first job after the firmware; under TCG that
//! emulated xz decompression costs seconds. The kernel's own `scripts/extract-vmlinux` finds
//! the payload by scanning for compression magics; here the x86 boot protocol's setup header
//! says exactly where it is (`payload_offset` and `payload_length`, boot protocol ≥ 2.08,
//! Documentation/x86/boot.rst), and the build appends the decompressed size as four
//! little-endian bytes, which is checked against the result. Debian's generic kernel is xz,
//! its cloud kernel lz4 (the legacy frame format: 32-bit block lengths, each block raw LZ4),
//! Ubuntu's zstd; gzip is decoded too.

/// Why no ELF could be extracted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    /// Not a bzImage this code understands.
    #[error("not a bzImage with a payload (boot protocol 2.08 or later): {0}")]
    NotBzImage(String),
    /// The payload's compression is not one this code decodes.
    #[error(
        "unsupported kernel compression (payload starts with {0:02x?}); xz, lz4, zstd and gzip are"
    )]
    Unsupported(Vec<u8>),
    /// Decompressing failed or did not give an ELF.
    #[error("decompressing the kernel failed: {0}")]
    Corrupt(String),
}

const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const LZ4_LEGACY_MAGIC: &[u8] = &[0x02, 0x21, 0x4c, 0x18];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// The legacy LZ4 frame's blocks decompress to at most 8 MiB each.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The compressed payload of a bzImage, without the appended size, and that size.
fn payload(bzimage: &[u8]) -> Result<(&[u8], usize), ExtractError> {
    let not = |why: &str| ExtractError::NotBzImage(why.to_owned());
    if bzimage.get(0x202..0x206) != Some(b"HdrS") {
        return Err(not("no HdrS signature at 0x202"));
    }
    let version = u16::from_le_bytes([bzimage[0x206], bzimage[0x207]]);
    if version < 0x0208 {
        return Err(not(&format!("boot protocol {version:#06x}")));
    }
    let setup_sects = match bzimage.get(0x1f1).copied().unwrap_or(0) {
        0 => 4,
        n => usize::from(n),
    };
    let setup_size = (setup_sects + 1) * 512;
    let offset = le_u32(bzimage, 0x248).ok_or_else(|| not("short header"))? as usize;
    let length = le_u32(bzimage, 0x24c).ok_or_else(|| not("short header"))? as usize;
    let start = setup_size + offset;
    let whole = bzimage
        .get(start..start + length)
        .filter(|p| p.len() > 4)
        .ok_or_else(|| not("payload outside the file"))?;
    let (compressed, size) = whole.split_at(whole.len() - 4);
    Ok((compressed, le_u32(size, 0).unwrap_or(0) as usize))
}

/// The ELF kernel inside `bzimage`.
pub fn extract(bzimage: &[u8]) -> Result<Vec<u8>, ExtractError> {
    let (compressed, size) = payload(bzimage)?;
    let elf = if compressed.starts_with(XZ_MAGIC) {
        use std::io::Read;
        let mut out = Vec::with_capacity(size);
        xz2::read::XzDecoder::new(compressed)
            .read_to_end(&mut out)
            .map_err(|e| ExtractError::Corrupt(format!("xz: {e}")))?;
        out
    } else if compressed.starts_with(LZ4_LEGACY_MAGIC) {
        lz4_legacy(&compressed[LZ4_LEGACY_MAGIC.len()..], size)?
    } else if compressed.starts_with(ZSTD_MAGIC) {
        use std::io::Read;
        let mut out = Vec::with_capacity(size);
        ruzstd::decoding::StreamingDecoder::new(compressed)
            .map_err(|e| ExtractError::Corrupt(format!("zstd: {e}")))?
            .read_to_end(&mut out)
            .map_err(|e| ExtractError::Corrupt(format!("zstd: {e}")))?;
        out
    } else if compressed.starts_with(GZIP_MAGIC) {
        use std::io::Read;
        let mut out = Vec::with_capacity(size);
        flate2::read::GzDecoder::new(compressed)
            .read_to_end(&mut out)
            .map_err(|e| ExtractError::Corrupt(format!("gzip: {e}")))?;
        out
    } else {
        return Err(ExtractError::Unsupported(
            compressed.iter().take(6).copied().collect(),
        ));
    };
    if !elf.starts_with(b"\x7fELF") {
        return Err(ExtractError::Corrupt(
            "the result is not an ELF file".into(),
        ));
    }
    if size != 0 && elf.len() != size {
        return Err(ExtractError::Corrupt(format!(
            "{} bytes, the bzImage says {size}",
            elf.len()
        )));
    }
    Ok(elf)
}

/// LZ4's legacy frame: 32-bit little-endian block lengths, each block raw LZ4; the kernel's
/// build concatenates frames, so a repeated magic starts the next one.
fn lz4_legacy(mut data: &[u8], size_hint: usize) -> Result<Vec<u8>, ExtractError> {
    let mut out = Vec::with_capacity(size_hint);
    let mut block = vec![0u8; LZ4_LEGACY_BLOCK];
    while data.len() >= 4 {
        if data.starts_with(LZ4_LEGACY_MAGIC) {
            data = &data[4..];
            continue;
        }
        let length = le_u32(data, 0).unwrap_or(0) as usize;
        let Some(compressed) = data.get(4..4 + length) else {
            return Err(ExtractError::Corrupt(format!(
                "lz4 block of {length} bytes, {} left",
                data.len() - 4
            )));
        };
        let n = lz4_flex::block::decompress_into(compressed, &mut block)
            .map_err(|e| ExtractError::Corrupt(format!("lz4: {e}")))?;
        out.extend_from_slice(&block[..n]);
        data = &data[4 + length..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal bzImage around `payload`: setup header fields only.
    fn bzimage(compressed: &[u8], size: u32) -> Vec<u8> {
        let setup_sects = 1u8;
        let setup_size = (usize::from(setup_sects) + 1) * 512;
        let mut image = vec![0u8; setup_size + 16];
        image[0x1f1] = setup_sects;
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        image[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        image[0x24c..0x250].copy_from_slice(&((compressed.len() + 4) as u32).to_le_bytes());
        image.extend_from_slice(compressed);
        image.extend_from_slice(&size.to_le_bytes());
        image.extend_from_slice(b"trailing setup data");
        image
    }

    fn fake_elf() -> Vec<u8> {
        let mut elf = b"\x7fELF".to_vec();
        elf.extend((0..100_000u32).map(|i| (i % 251) as u8));
        elf
    }

    #[test]
    fn an_xz_payload_gives_back_the_elf() {
        let elf = fake_elf();
        use std::io::Read;
        let mut xz = Vec::new();
        xz2::read::XzEncoder::new(&elf[..], 6)
            .read_to_end(&mut xz)
            .unwrap();
        let image = bzimage(&xz, elf.len() as u32);
        assert_eq!(extract(&image).unwrap(), elf);
        // A size that disagrees is caught.
        let wrong = bzimage(&xz, 7);
        assert!(matches!(extract(&wrong), Err(ExtractError::Corrupt(_))));
    }

    #[test]
    fn a_gzip_payload_gives_back_the_elf() {
        use std::io::Write;
        let elf = fake_elf();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&elf).unwrap();
        let image = bzimage(&gz.finish().unwrap(), elf.len() as u32);
        assert_eq!(extract(&image).unwrap(), elf);
    }

    #[test]
    fn an_lz4_legacy_payload_gives_back_the_elf() {
        let elf = fake_elf();
        let mut frame = LZ4_LEGACY_MAGIC.to_vec();
        for chunk in elf.chunks(40_000) {
            let block = lz4_flex::block::compress(chunk);
            frame.extend_from_slice(&(block.len() as u32).to_le_bytes());
            frame.extend_from_slice(&block);
        }
        let image = bzimage(&frame, elf.len() as u32);
        assert_eq!(extract(&image).unwrap(), elf);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(
            extract(b"short"),
            Err(ExtractError::NotBzImage(_))
        ));
        assert!(matches!(
            extract(&bzimage(b"BZh91AY&SY", 1)),
            Err(ExtractError::Unsupported(_))
        ));
        assert!(matches!(
            extract(&bzimage(b"\x28\xb5\x2f\xfdgarbage", 1)),
            Err(ExtractError::Corrupt(_))
        ));
        let mut truncated = bzimage(b"\xfd7zXZ\x00garbage", 1);
        truncated.truncate(600);
        assert!(extract(&truncated).is_err());
        assert!(matches!(
            extract(&bzimage(b"\xfd7zXZ\x00garbage", 1)),
            Err(ExtractError::Corrupt(_))
        ));
    }

    /// The host's own kernels, where installed: each gives an ELF of the announced size.
    #[test]
    fn the_hosts_debian_kernels_extract() {
        let Ok(entries) = std::fs::read_dir("/boot") else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.to_string_lossy().contains("vmlinuz-") {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let elf = extract(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(elf.len() > bytes.len(), "{}", path.display());
        }
    }
}
