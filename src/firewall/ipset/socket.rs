//! The `NETLINK_NETFILTER` socket an [`super::IpsetHandle`] talks through,
//! and the request/reply exchange on it.
//!
//! State: the socket, the next sequence number, and a receive buffer. Each
//! request gets fresh sequence numbers, and replies carrying any other
//! number (late leftovers of an earlier, failed exchange) are skipped, so one
//! failed exchange cannot confuse the next.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::proto::*;
use super::wire::{Malformed, Message, Messages};

/// How long a reply may take before the exchange fails. The kernel answers
/// synchronously, so this only trips if replies were lost.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Receive buffer requested from the kernel: room for the ACKs of a whole
/// batch chunk (each ACK is its own small socket buffer of about 1 KiB).
const RCVBUF_BYTES: usize = 8 << 20;

/// Size of one `recv`: the kernel builds dump messages up to 32 KiB.
const RECV_CHUNK: usize = 64 << 10;

/// Estimated kernel memory charged for one queued ACK (`skb` truesize).
pub const ACK_TRUESIZE: usize = 1024;

/// Why an exchange failed, before the caller adds what it was doing.
#[derive(Debug)]
pub enum NlError {
    /// The kernel answered with this errno (positive).
    Errno(i32),
    Io(io::Error),
    Malformed(Malformed),
}

impl From<Malformed> for NlError {
    fn from(m: Malformed) -> Self {
        NlError::Malformed(m)
    }
}

/// An open, bound netlink socket to the netfilter subsystems.
pub struct NetlinkSocket {
    fd: OwnedFd,
    seqs: SeqCounter,
    rcvbuf: usize,
    buf: Vec<u8>,
}

impl NetlinkSocket {
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before use.
        let raw = unsafe {
            libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_NETFILTER)
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: addr is a valid sockaddr_nl of the given length.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut sock = NetlinkSocket { fd, seqs: SeqCounter::default(), rcvbuf: 0, buf: vec![0; RECV_CHUNK] };
        // ACKs then carry only the header of the request, not all of it.
        // Older kernels lack the option; ACKs are just larger there.
        let _ = sock.set_int(libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, 1);
        // FORCE ignores rmem_max but needs CAP_NET_ADMIN, which ipset needs anyway.
        if sock.set_int(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF_BYTES as i32).is_err() {
            let _ = sock.set_int(libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF_BYTES as i32);
        }
        sock.rcvbuf = sock.get_int(libc::SOL_SOCKET, libc::SO_RCVBUF)?.max(0) as usize;
        sock.set_timeout(REPLY_TIMEOUT)?;
        Ok(sock)
    }

    /// The receive buffer the kernel granted, in bytes (as it counts them).
    pub fn rcvbuf(&self) -> usize {
        self.rcvbuf
    }

    fn set_int(&self, level: i32, name: i32, value: i32) -> io::Result<()> {
        // SAFETY: value is a live c_int of the length passed.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&value as *const i32).cast(),
                mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    fn get_int(&self, level: i32, name: i32) -> io::Result<i32> {
        let mut value: i32 = 0;
        let mut len = mem::size_of::<i32>() as libc::socklen_t;
        // SAFETY: value and len are live and sized for a c_int.
        let rc = unsafe {
            libc::getsockopt(self.fd.as_raw_fd(), level, name, (&mut value as *mut i32).cast(), &mut len)
        };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(value) }
    }

    fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: tv is a live timeval of the length passed.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Reserves `count` consecutive sequence numbers and returns the first.
    pub fn reserve_seqs(&mut self, count: u32) -> u32 {
        self.seqs.reserve(count)
    }

    /// Sends a buffer of whole messages to the kernel in one datagram.
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl is plain data; all-zero addresses the kernel.
        let mut kernel: libc::sockaddr_nl = unsafe { mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: bytes and kernel are live for the call with the lengths passed.
            let sent = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    0,
                    (&kernel as *const libc::sockaddr_nl).cast(),
                    mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if sent >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Receives one datagram (one or more messages) into the internal buffer
    /// and returns its length.
    fn recv(&mut self) -> io::Result<usize> {
        loop {
            // SAFETY: the buffer is live and its length is passed.
            let n = unsafe {
                libc::recv(self.fd.as_raw_fd(), self.buf.as_mut_ptr().cast(), self.buf.len(), libc::MSG_TRUNC)
            };
            if n >= 0 {
                let n = n as usize;
                if n > self.buf.len() {
                    return Err(io::Error::other(format!(
                        "netlink reply of {n} bytes exceeds the {} byte receive buffer",
                        self.buf.len()
                    )));
                }
                return Ok(n);
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no reply from the kernel within {REPLY_TIMEOUT:?}"),
                    ));
                }
                _ => return Err(err),
            }
        }
    }

    /// Sends one request (already encoded with sequence number `seq` and
    /// `NLM_F_ACK`) and hands each reply message to `on_reply` until the
    /// kernel's ACK. Fails with the kernel's errno if it refused.
    pub fn request(
        &mut self,
        bytes: &[u8],
        seq: u32,
        mut on_reply: impl FnMut(&Message<'_>),
    ) -> Result<(), NlError> {
        self.send(bytes).map_err(NlError::Io)?;
        self.receive(seq, false, |msg| {
            on_reply(msg);
            Ok(())
        })
    }

    /// Sends a dump request (encoded with `seq` and `NLM_F_DUMP`, without
    /// `NLM_F_ACK`) and hands each part to `on_part` until the dump ends.
    pub fn dump(
        &mut self,
        bytes: &[u8],
        seq: u32,
        on_part: impl FnMut(&Message<'_>) -> Result<(), Malformed>,
    ) -> Result<(), NlError> {
        self.send(bytes).map_err(NlError::Io)?;
        self.receive(seq, true, on_part)
    }

    /// Reads replies to request `seq` until its ACK (`NLMSG_ERROR`) or, when
    /// `done_ends`, the end of a dump (`NLMSG_DONE`), handing every other
    /// reply to `on_msg`. Fails with the kernel's errno if it refused.
    fn receive(
        &mut self,
        seq: u32,
        done_ends: bool,
        mut on_msg: impl FnMut(&Message<'_>) -> Result<(), Malformed>,
    ) -> Result<(), NlError> {
        loop {
            let n = self.recv().map_err(NlError::Io)?;
            for msg in Messages::new(&self.buf[..n]) {
                let msg = msg?;
                if msg.seq != seq {
                    continue;
                }
                let code = match msg.ty {
                    NLMSG_DONE if done_ends => msg.done_code(),
                    NLMSG_ERROR => msg.error_code()?,
                    _ => {
                        on_msg(&msg)?;
                        continue;
                    }
                };
                return match code {
                    0 => Ok(()),
                    errno => Err(NlError::Errno(errno)),
                };
            }
        }
    }

    /// Sends `count` requests already encoded in `bytes` with consecutive
    /// sequence numbers from `first_seq`, each with `NLM_F_ACK`, and collects
    /// one result per request: 0 or the kernel's errno, in order.
    ///
    /// A failed send or receive fails the whole chunk: an unknown subset of
    /// its requests may then have been applied.
    pub fn batch(&mut self, bytes: &[u8], first_seq: u32, count: usize) -> Result<Vec<i32>, NlError> {
        const PENDING: i32 = i32::MIN;
        self.send(bytes).map_err(NlError::Io)?;
        let mut results = vec![PENDING; count];
        let mut remaining = count;
        while remaining > 0 {
            let n = self.recv().map_err(NlError::Io)?;
            for msg in Messages::new(&self.buf[..n]) {
                let msg = msg?;
                let index = msg.seq.wrapping_sub(first_seq) as usize;
                if msg.ty != NLMSG_ERROR || index >= count || results[index] != PENDING {
                    continue;
                }
                let code = msg.error_code()?;
                results[index] = code;
                remaining -= 1;
                // nfnetlink checks the capability once per datagram, answers
                // the first request with EPERM and drops the rest unanswered.
                if code == libc::EPERM {
                    for r in results.iter_mut().filter(|r| **r == PENDING) {
                        *r = libc::EPERM;
                    }
                    remaining = 0;
                }
            }
        }
        Ok(results)
    }
}

/// Hands out runs of consecutive sequence numbers, never 0 (which the
/// kernel uses for messages that answer no request).
#[derive(Debug)]
struct SeqCounter {
    next: u32,
}

impl Default for SeqCounter {
    fn default() -> Self {
        SeqCounter { next: 1 }
    }
}

impl SeqCounter {
    fn reserve(&mut self, count: u32) -> u32 {
        if self.next.checked_add(count).is_none() {
            self.next = 1;
        }
        let first = self.next;
        self.next += count;
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_are_consecutive_and_wrap_without_zero() {
        let mut seqs = SeqCounter::default();
        let a = seqs.reserve(3);
        assert_eq!(a, 1);
        assert_eq!(seqs.reserve(1), a + 3);
        seqs.next = u32::MAX - 1;
        assert_eq!(seqs.reserve(5), 1);
        assert_eq!(seqs.reserve(1), 6);
    }
}
