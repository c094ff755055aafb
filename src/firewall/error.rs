//! [`FirewallError`]: a failed iptables command or ipset operation, with
//! everything the underlying error names (command line, exit status and
//! stderr; or set, entry and kernel reason).

use super::exec::ExecError;
use super::ipset::IpsetError;

/// Variants are boxed: errors are rare and results stay small.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error(transparent)]
    Exec(Box<ExecError>),

    #[error(transparent)]
    Ipset(Box<IpsetError>),

    #[error("`{command}` printed more than warden reads ({limit} bytes), so its ruleset cannot be trusted")]
    Truncated { command: String, limit: usize },

    #[error("cannot fill set {set}: {refused} of {total} entries refused; first: {first}")]
    Refused { set: String, refused: usize, total: usize, first: Box<IpsetError> },
}

impl From<ExecError> for FirewallError {
    fn from(e: ExecError) -> Self {
        FirewallError::Exec(Box::new(e))
    }
}

impl From<IpsetError> for FirewallError {
    fn from(e: IpsetError) -> Self {
        FirewallError::Ipset(Box::new(e))
    }
}
