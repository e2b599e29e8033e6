//! Which local addresses listen on a TCP port, from the kernel's socket tables
//! (`/proc/net/tcp`, `/proc/net/tcp6`): a container on the host's network must listen on
//! 127.0.0.1 only, and this is how that is checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The `st` column's value for a listening socket.
const TCP_LISTEN: &str = "0A";

/// Addresses with a socket listening on `port` in this process's network namespace.
pub fn listening_on(port: u16) -> std::io::Result<Vec<IpAddr>> {
    let mut addresses = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(table) {
            Ok(text) => addresses.extend(parse(&text, port)),
            // No IPv6 in this kernel: nothing can listen there.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(addresses)
}

/// Listening addresses on `port` in one `/proc/net/tcp{,6}` table; malformed lines are
/// skipped.
pub fn parse(table: &str, port: u16) -> Vec<IpAddr> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            if state != TCP_LISTEN {
                return None;
            }
            let (address, local_port) = local.split_once(':')?;
            (u16::from_str_radix(local_port, 16).ok()? == port).then_some(())?;
            decode_address(address)
        })
        .collect()
}

/// The kernel prints addresses as 32-bit words in host (little-endian) byte order.
fn decode_address(hex: &str) -> Option<IpAddr> {
    let words: Option<Vec<u32>> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect();
    let bytes: Vec<u8> = words?.iter().flat_map(|w| w.to_le_bytes()).collect();
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(bytes).ok()?,
        ))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
   garbage
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st
   0: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000
   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000
";

    #[test]
    fn listening_sockets_are_decoded() {
        assert_eq!(parse(TCP, 8080), vec![IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(parse(TCP, 8081), vec![IpAddr::from([0, 0, 0, 0])]);
        assert_eq!(parse(TCP, 9), Vec::<IpAddr>::new());
        assert_eq!(parse(TCP6, 8081), vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
        assert_eq!(parse(TCP6, 8080), vec![IpAddr::V6(Ipv6Addr::UNSPECIFIED)]);
    }

    #[test]
    fn a_listener_of_this_process_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(
            listening_on(port).unwrap(),
            vec![IpAddr::from([127, 0, 0, 1])]
        );
    }
}
