//! How a link that died without closing (its peer's machine gone, its
//! network cut) is noticed within a bound, even with data in flight:
//! each side sends HEARTBEAT on a link that has been quiet for an eighth of
//! the bound (see `Outbox`), so that there is always data for the peer's
//! kernel to acknowledge; and the kernel closes a TCP connection whose data
//! stays unacknowledged for three quarters of it (`TCP_USER_TIMEOUT`). A
//! dead link is so closed at most the bound after the last byte the peer
//! acknowledged.
//!
//! A peer whose process is stopped (`kill -STOP`) or busy is still
//! acknowledged by its kernel: its link stays. Local links (ipc, abstract)
//! need none of this: the kernel closes them when their process ends.

use std::os::fd::RawFd;
use std::time::Duration;

#[cfg(target_os = "linux")]
use crate::socket::set_option;

/// The bound when none is given.
pub(crate) const DEFAULT_BOUND: Duration = Duration::from_secs(60);

/// The shortest bound accepted: shorter ones are raised to it.
pub(crate) const SHORTEST_BOUND: Duration = Duration::from_millis(500);

/// How long a link may be quiet before a heartbeat is sent on it.
pub(crate) fn heartbeat_interval(bound: Duration) -> Duration {
    bound.max(SHORTEST_BOUND) / 8
}

/// How long data sent may stay unacknowledged before the kernel closes
/// the connection.
pub(crate) fn unacknowledged_limit(bound: Duration) -> Duration {
    bound.max(SHORTEST_BOUND) * 3 / 4
}

/// Sets `TCP_USER_TIMEOUT` on `socket` for `bound` (Linux only; elsewhere
/// keepalive alone applies). Best effort: a failure leaves the default.
pub(crate) fn set_liveness(socket: RawFd, bound: Duration) {
    #[cfg(target_os = "linux")]
    {
        let ms = libc::c_int::try_from(unacknowledged_limit(bound).as_millis())
            .unwrap_or(libc::c_int::MAX);
        let _ = set_option(socket, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, ms);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (socket, bound);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn the_bound_covers_a_quiet_interval_and_the_kernels_wait() {
        let bound = Duration::from_secs(60);
        // The longest quiet gap is two intervals (see `Outbox`).
        assert_eq!(
            2 * heartbeat_interval(bound) + unacknowledged_limit(bound),
            bound
        );
        assert_eq!(
            heartbeat_interval(Duration::ZERO),
            Duration::from_millis(62) + Duration::from_micros(500)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_is_told_the_limit() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        set_liveness(stream.as_raw_fd(), Duration::from_secs(8));
        let mut value: libc::c_uint = 0;
        let mut len = std::mem::size_of::<libc::c_uint>() as libc::socklen_t;
        // SAFETY: reads one c_uint option of an open socket into `value`.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_USER_TIMEOUT,
                &mut value as *mut libc::c_uint as *mut libc::c_void,
                &mut len,
            )
        };
        assert_eq!((rc, value), (0, 6000));
    }
}
