//! Options of the kernel's sockets under every connection: no Nagle delay,
//! keepalive, buffer sizes. All best effort except where a caller needs the
//! outcome (`set_option` returns it).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use tokio::net::TcpStream;

/// TCP keepalive: a peer that vanished without closing (powered off, cut
/// off by the network, forgotten by a NAT) is noticed after about this
/// long idle plus `KEEPALIVE_PROBES` unanswered probes, instead of never.
const KEEPALIVE_IDLE_S: libc::c_int = 60;
const KEEPALIVE_INTERVAL_S: libc::c_int = 10;
const KEEPALIVE_PROBES: libc::c_int = 5;
#[cfg(not(target_vendor = "apple"))]
const TCP_KEEPIDLE: libc::c_int = libc::TCP_KEEPIDLE;
#[cfg(target_vendor = "apple")]
const TCP_KEEPIDLE: libc::c_int = libc::TCP_KEEPALIVE;

/// Kernel socket buffers (at most `net.core.wmem_max`, `rmem_max`): Unix
/// sockets' defaults (~200 KiB) make a large payload cross in many small
/// steps. Memory is taken only while data is in flight.
const SOCKET_BUFFER_BYTES: libc::c_int = 4 << 20;

/// Sets one integer option of the open socket `fd`.
pub(crate) fn set_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `fd` is an open socket of the caller's; the option value is a
    // c_int that outlives the call, and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// No Nagle delay, and keepalive (see `KEEPALIVE_IDLE_S`), on a TCP
/// connection of either side. Its buffers are left to the kernel's tuning:
/// setting one turns that off for it, and caps it at `net.core.wmem_max`
/// (about 200 KiB by default), which would bound a remote link's speed.
pub(crate) fn tune_tcp(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let options = [
        #[cfg(target_vendor = "apple")]
        (libc::SOL_SOCKET, libc::SO_NOSIGPIPE, 1),
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
        (libc::IPPROTO_TCP, TCP_KEEPIDLE, KEEPALIVE_IDLE_S),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, KEEPALIVE_INTERVAL_S),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, KEEPALIVE_PROBES),
    ];
    for (level, name, value) in options {
        let _ = set_option(fd, level, name, value);
    }
}

/// Sets the buffers `names` (SO_SNDBUF, SO_RCVBUF) of socket `fd` to
/// `SOCKET_BUFFER_BYTES`.
pub(crate) fn size_buffers(fd: RawFd, names: &[libc::c_int]) {
    for &name in names {
        let _ = set_option(fd, libc::SOL_SOCKET, name, SOCKET_BUFFER_BYTES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn option(stream: &impl AsRawFd, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let mut value: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: reads one c_int option of an open socket into `value`.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                level,
                name,
                &mut value as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        value
    }

    #[test]
    fn tcp_connections_keep_alive() {
        crate::runtime::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let stream = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            tune_tcp(&stream);
            assert_eq!(option(&stream, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
            assert_eq!(
                option(&stream, libc::IPPROTO_TCP, TCP_KEEPIDLE),
                KEEPALIVE_IDLE_S
            );
            assert_eq!(
                option(&stream, libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
                KEEPALIVE_PROBES
            );
            assert!(stream.nodelay().unwrap());
        });
    }

    #[test]
    fn unix_connections_get_large_buffers_where_the_system_allows() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let default = option(&a, libc::SOL_SOCKET, libc::SO_SNDBUF);
        size_buffers(a.as_raw_fd(), &[libc::SO_SNDBUF, libc::SO_RCVBUF]);
        let max = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
            .ok()
            .and_then(|v| v.trim().parse::<libc::c_int>().ok())
            .unwrap_or(0);
        // Linux reports twice what was set, for its own bookkeeping.
        if 2 * max > default {
            assert!(option(&a, libc::SOL_SOCKET, libc::SO_SNDBUF) > default);
        }
    }
}
