//! The messages between an owner and its supervisor. Each is one packet on a SOCK_SEQPACKET
//! socket: a kind byte, the task's token (chosen by the owner), then the kind's fields. A
//! start also carries the two output pipes' write ends (SCM_RIGHTS). Reports travel in
//! batches, and a batch carries one descriptor per `Started` in it, in the same order: a
//! pidfd of the shell, taken while the supervisor held it unreaped, so the owner can end the
//! task safely should the supervisor die.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// What to start: `sh -c command` in `workdir`, with `env` (`None`: the same as the previous
/// start's, which it nearly always is), and this soft open-file limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub token: u64,
    pub nofile: u64,
    pub workdir: PathBuf,
    pub command: String,
    pub env: Option<Vec<(OsString, OsString)>>,
}

/// Owner -> supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    Start(Start),
    /// Send a signal to the task's process group (if any of it is left).
    Signal {
        token: u64,
        signal: i32,
    },
    /// The owner is done with the task: kill and reap whatever is left of its group.
    Release(u64),
    /// Remove this directory (the owner's temporary log directory) once the owner is gone,
    /// whatever ended it.
    RemoveAtExit(PathBuf),
}

/// Supervisor -> owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Started {
        token: u64,
        pid: i32,
    },
    /// The start failed with this errno.
    Failed {
        token: u64,
        errno: i32,
    },
    /// The shell ended with this wait status. `gone`: nothing was left of its group, and the
    /// supervisor has forgotten the task (no release follows). Otherwise what is left keeps
    /// the group's number taken (the dead are not reaped) until the task is released.
    Exited {
        token: u64,
        status: i32,
        gone: bool,
    },
    /// The group is gone.
    Released {
        token: u64,
    },
    /// The supervisor is set up and serving (sent once, first).
    Ready,
}

impl Order {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Order::Release(token) => head(b'R', *token),
            Order::Signal { token, signal } => {
                let mut out = head(b'K', *token);
                out.extend_from_slice(&signal.to_le_bytes());
                out
            }
            Order::Start(s) => s.encode(),
            Order::RemoveAtExit(dir) => {
                let mut out = head(b'D', 0);
                out.extend_from_slice(dir.as_os_str().as_bytes());
                out
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Option<Order> {
        let (kind, token, rest) = split_head(bytes)?;
        match kind {
            b'R' => Some(Order::Release(token)),
            b'D' if !rest.is_empty() && !rest.contains(&0) => {
                Some(Order::RemoveAtExit(PathBuf::from(OsStr::from_bytes(rest))))
            }
            b'K' => {
                let signal = i32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
                Some(Order::Signal { token, signal })
            }
            b'S' | b'T' => {
                let nofile = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
                let mut fields = rest[8..].split(|&b| b == 0);
                let workdir = PathBuf::from(OsStr::from_bytes(fields.next()?));
                let command = String::from_utf8(fields.next()?.to_vec()).ok()?;
                let env = fields
                    .filter(|f| !f.is_empty())
                    .filter_map(|f| {
                        let eq = f.iter().position(|&b| b == b'=')?;
                        Some((
                            OsString::from_vec(f[..eq].to_vec()),
                            OsString::from_vec(f[eq + 1..].to_vec()),
                        ))
                    })
                    .collect();
                let env = (kind == b'S').then_some(env);
                Some(Order::Start(Start { token, nofile, workdir, command, env }))
            }
            _ => None,
        }
    }
}

impl Start {
    /// The start as an order (encoded from a borrow: the owner encodes it once per send).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = head(if self.env.is_some() { b'S' } else { b'T' }, self.token);
        out.extend_from_slice(&self.nofile.to_le_bytes());
        for field in [self.workdir.as_os_str(), OsStr::new(&self.command)] {
            out.extend_from_slice(field.as_bytes());
            out.push(0);
        }
        for (key, value) in self.env.iter().flatten() {
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
            out.push(0);
        }
        out
    }

    /// `KEY=value` strings for execve.
    pub fn env_strings(&self) -> Option<Vec<CString>> {
        let env = self.env.as_ref()?;
        let strings = env
            .iter()
            .filter_map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).ok()
            })
            .collect();
        Some(strings)
    }
}

/// Reports travel in batches: one packet holds any number of them, each this long.
pub const REPORT_SIZE: usize = 13;
/// The most reports in one packet (so a packet's `Started` pidfds fit: the kernel passes at
/// most 253 descriptors in one message).
pub const REPORTS_PER_PACKET: usize = 250;

impl Report {
    /// Every report in a packet.
    pub fn decode_all(packet: &[u8]) -> impl Iterator<Item = Report> + '_ {
        packet.chunks_exact(REPORT_SIZE).filter_map(Report::decode)
    }

    pub fn encode(&self) -> Vec<u8> {
        let (kind, token, value) = match *self {
            Report::Started { token, pid } => (b's', token, pid),
            Report::Failed { token, errno } => (b'f', token, errno),
            Report::Exited { token, status, gone: false } => (b'x', token, status),
            Report::Exited { token, status, gone: true } => (b'g', token, status),
            Report::Released { token } => (b'r', token, 0),
            Report::Ready => (b'y', 0, 0),
        };
        let mut out = head(kind, token);
        out.extend_from_slice(&value.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Report> {
        let (kind, token, rest) = split_head(bytes)?;
        let value = i32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
        match kind {
            b's' => Some(Report::Started { token, pid: value }),
            b'f' => Some(Report::Failed { token, errno: value }),
            b'x' => Some(Report::Exited { token, status: value, gone: false }),
            b'g' => Some(Report::Exited { token, status: value, gone: true }),
            b'r' => Some(Report::Released { token }),
            b'y' => Some(Report::Ready),
            _ => None,
        }
    }

    pub fn token(&self) -> u64 {
        match *self {
            Report::Started { token, .. }
            | Report::Failed { token, .. }
            | Report::Exited { token, .. }
            | Report::Released { token } => token,
            Report::Ready => 0,
        }
    }
}

/// One packet as received, with the descriptors it carried (close-on-exec).
pub struct Received {
    /// Bytes of the packet in the buffer.
    pub bytes: usize,
    pub fds: Vec<OwnedFd>,
    /// Some of its descriptors did not fit (we are out of descriptors): those are lost.
    pub fds_cut: bool,
    /// The packet was longer than the buffer.
    pub truncated: bool,
}

/// Receives one packet (orders or reports) without waiting, with at most
/// [`REPORTS_PER_PACKET`] descriptors.
pub fn recv_packet(socket: RawFd, buf: &mut [u8]) -> nix::Result<Received> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut space = nix::cmsg_space!([RawFd; REPORTS_PER_PACKET]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
    let msg = recvmsg::<()>(socket, &mut iov, Some(&mut space), flags)?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().into_iter().flatten() {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            // SAFETY: descriptors the kernel just installed for us.
            fds.extend(received.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok(Received {
        bytes: msg.bytes,
        fds,
        fds_cut: msg.flags.contains(MsgFlags::MSG_CTRUNC),
        truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
    })
}

fn head(kind: u8, token: u64) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&token.to_le_bytes());
    out
}

fn split_head(bytes: &[u8]) -> Option<(u8, u64, &[u8])> {
    let (&kind, rest) = bytes.split_first()?;
    let token = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
    Some((kind, token, &rest[8..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_reports_survive_a_round_trip() {
        let start = Order::Start(Start {
            token: 7,
            nofile: 1024,
            workdir: PathBuf::from("/tmp/a b"),
            command: "echo 'x=y' && printf 'ü'".into(),
            env: Some(vec![("A".into(), "1=2".into()), ("EMPTY".into(), "".into())]),
        });
        let same_env = Order::Start(Start {
            token: 8,
            nofile: 1024,
            workdir: PathBuf::from("/"),
            command: "true".into(),
            env: None,
        });
        let signal = Order::Signal { token: 3, signal: libc::SIGTERM };
        let remove = Order::RemoveAtExit(PathBuf::from("/tmp/bgagent-1-x"));
        for order in [start, same_env, signal, Order::Release(u64::MAX - 9), remove] {
            assert_eq!(Order::decode(&order.encode()), Some(order));
        }
        let all = [
            Report::Started { token: 1, pid: 4242 },
            Report::Failed { token: 2, errno: libc::ENOENT },
            Report::Exited { token: 3, status: 9, gone: false },
            Report::Exited { token: 3, status: 256, gone: true },
            Report::Released { token: 4 },
            Report::Ready,
        ];
        for report in all {
            assert_eq!(report.encode().len(), REPORT_SIZE);
            assert_eq!(Report::decode(&report.encode()), Some(report));
        }
        let packet: Vec<u8> = all.iter().flat_map(Report::encode).collect();
        assert_eq!(Report::decode_all(&packet).collect::<Vec<_>>(), all);
    }

    #[test]
    fn short_or_unknown_packets_are_refused() {
        assert_eq!(Order::decode(b""), None);
        assert_eq!(Order::decode(b"R123"), None);
        assert_eq!(Order::decode(b"Z12345678"), None);
        assert_eq!(Report::decode(b"s12345678"), None);
        assert_eq!(Order::decode(b"D\0\0\0\0\0\0\0\0"), None); // no directory
        assert_eq!(Order::decode(b"D\0\0\0\0\0\0\0\0/a\0b"), None);
    }
}
