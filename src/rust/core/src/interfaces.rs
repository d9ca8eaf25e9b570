//! This machine's network interfaces, and the addresses a host URL listens
//! at.
//!
//! A URL names an address (it listens at that one interface), names this
//! machine for other machines to resolve (it listens at every interface:
//! resolving the name here says nothing about where they arrive, and on a
//! stock Debian or Ubuntu install this machine's own name resolves to
//! 127.0.1.1), or is a wildcard: an empty host (`tcp://:5555`, as mirai 2.x
//! writes it) or `*`, at every interface. Only a name that resolves to
//! loopback alone, other than this machine's own (`localhost`), listens at
//! loopback.

use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use crate::url::Url;
use crate::Error;

/// An address of one of this machine's network interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub address: IpAddr,
}

/// The addresses by which other machines may reach this one: those of the
/// interfaces that are up, without loopback and link-local addresses;
/// IPv4 before IPv6, and the interface of the default route first.
pub fn interface_addresses() -> Vec<Interface> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that is read here
    // and freed once with freeifaddrs; each node's fields are valid while it
    // lives, and `ifa_addr` (when not null) points at a sockaddr of the
    // family it names.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return found;
        }
        let mut node = list;
        while !node.is_null() {
            let entry = &*node;
            node = entry.ifa_next;
            let up = entry.ifa_flags & (libc::IFF_UP as libc::c_uint) != 0;
            if !up || entry.ifa_addr.is_null() || entry.ifa_name.is_null() {
                continue;
            }
            let address = match i32::from((*entry.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(entry.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
                }
                libc::AF_INET6 => {
                    let sin6 = &*(entry.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
                }
                _ => continue,
            };
            if !reachable_from_elsewhere(address) {
                continue;
            }
            let name = CStr::from_ptr(entry.ifa_name)
                .to_string_lossy()
                .into_owned();
            found.push(Interface { name, address });
        }
        libc::freeifaddrs(list);
    }
    let default = default_route_interfaces();
    found.sort_by_key(|i| (!i.address.is_ipv4(), !default.contains(&i.name)));
    found
}

/// Neither loopback, unspecified, nor link-local (which needs a scope to
/// be dialled).
fn reachable_from_elsewhere(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_unspecified() || v4.is_link_local()),
        IpAddr::V6(v6) => {
            !(v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// The interfaces holding a default route (Linux: /proc/net/route and
/// /proc/net/ipv6_route); none where these cannot be read.
fn default_route_interfaces() -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(table) = std::fs::read_to_string("/proc/net/route") {
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 7 && fields[1] == "00000000" && fields[7] == "00000000" {
                names.push(fields[0].to_string());
            }
        }
    }
    if let Ok(table) = std::fs::read_to_string("/proc/net/ipv6_route") {
        for line in table.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() == 10 && fields[0].bytes().all(|b| b == b'0') && fields[1] == "00" {
                names.push(fields[9].to_string());
            }
        }
    }
    names
}

/// This machine's host name, if it has one.
fn own_name() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `buffer.len()` bytes into it.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        return None;
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let name = String::from_utf8_lossy(&buffer[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

/// Whether `name` is this machine's own name (or its first label).
fn is_own_name(name: &str) -> bool {
    own_name().is_some_and(|own| {
        let short = own.split('.').next().unwrap_or(&own);
        name.eq_ignore_ascii_case(&own) || name.eq_ignore_ascii_case(short)
    })
}

/// Every interface: IPv6 and IPv4 at once where the system allows (see
/// `transport::bind_tcp`), else IPv4 alone.
fn every_interface(port: u16) -> Vec<SocketAddr> {
    vec![
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
    ]
}

/// The addresses to listen at for `url` (tcp, tls+tcp, ws, wss), to try in
/// order until one binds (see the module's rules).
pub(crate) fn listen_addresses(url: &Url) -> Result<Vec<SocketAddr>, Error> {
    let host = url.host.as_str();
    if host.is_empty() || host == "*" {
        return Ok(every_interface(url.port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, url.port)]);
    }
    let resolved: Vec<SocketAddr> = (host, url.port)
        .to_socket_addrs()
        .map_err(|e| Error::Io(format!("cannot resolve {url}: {e}")))?
        .collect();
    let loopback_only = !resolved.is_empty() && resolved.iter().all(|a| a.ip().is_loopback());
    if loopback_only && !is_own_name(host) {
        Ok(resolved)
    } else {
        Ok(every_interface(url.port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_is_listened_at_alone() {
        assert_eq!(
            listen_addresses(&url("tcp://127.0.0.1:5555")).unwrap(),
            [SocketAddr::from(([127, 0, 0, 1], 5555))]
        );
        assert_eq!(
            listen_addresses(&url("ws://[::1]:0/x")).unwrap(),
            [SocketAddr::from((Ipv6Addr::LOCALHOST, 0))]
        );
        assert_eq!(
            listen_addresses(&url("tcp://0.0.0.0:1")).unwrap(),
            [SocketAddr::from(([0, 0, 0, 0], 1))]
        );
    }

    #[test]
    fn a_wildcard_or_empty_host_listens_at_every_interface() {
        for text in [
            "tcp://:5555",
            "tcp://*:5555",
            "ws://:5555/path",
            "tls+tcp://:5555",
        ] {
            assert_eq!(
                listen_addresses(&url(text)).unwrap(),
                every_interface(5555),
                "{text}"
            );
        }
    }

    #[test]
    fn this_machines_name_listens_at_every_interface_and_localhost_at_loopback() {
        let own = own_name().expect("a host name");
        assert_eq!(
            listen_addresses(&url(&format!("tcp://{own}:7"))).unwrap(),
            every_interface(7)
        );
        let local = listen_addresses(&url("tcp://localhost:7")).unwrap();
        assert!(!local.is_empty());
        assert!(local.iter().all(|a| a.ip().is_loopback()), "{local:?}");
    }

    #[test]
    fn interfaces_exclude_loopback_and_link_local_and_put_ipv4_first() {
        let found = interface_addresses();
        for interface in &found {
            assert!(reachable_from_elsewhere(interface.address), "{interface:?}");
            assert!(!interface.name.is_empty());
        }
        if let Some(first_v6) = found.iter().position(|i| i.address.is_ipv6()) {
            assert!(found[first_v6..].iter().all(|i| i.address.is_ipv6()));
        }
        assert!(!reachable_from_elsewhere("169.254.1.1".parse().unwrap()));
        assert!(!reachable_from_elsewhere("fe80::1".parse().unwrap()));
        assert!(!reachable_from_elsewhere("127.0.1.1".parse().unwrap()));
        assert!(reachable_from_elsewhere("10.0.0.1".parse().unwrap()));
        assert!(reachable_from_elsewhere("fd00::2".parse().unwrap()));
    }
}
