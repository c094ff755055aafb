//! [`StoreError`]: what went wrong with the state file, naming the file and
//! saying what the operator can do about it.

use std::io;
use std::path::{Path, PathBuf};

/// An error from the persistent store. Every variant names the state file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "state file {} is locked by another process: is another warden running with the same state_dir? \
         Stop it, or give this one its own state_dir",
        path.display()
    )]
    Locked { path: PathBuf },

    #[error(
        "cannot {doing} state file {}: permission denied; warden needs read and write access to the file \
         and its directory (run as the owner, or fix the ownership or mode)",
        path.display()
    )]
    PermissionDenied {
        path: PathBuf,
        doing: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("cannot {doing} state file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        doing: &'static str,
        #[source]
        source: io::Error,
    },

    #[error(
        "state file {} is corrupt ({detail}); move it aside to start with empty state \
         (active bans, ban history and source positions are then forgotten), or restore a backup",
        path.display()
    )]
    Corrupt { path: PathBuf, detail: String },

    #[error(
        "state file {} has schema version {found}, but this warden understands versions up to {supported}; \
         it was written by a newer warden: run that version, or move the file aside to start with empty state",
        path.display()
    )]
    NewerSchema { path: PathBuf, found: u64, supported: u64 },

    #[error(
        "{} is not a warden state file ({detail}); move it aside, or point state_dir at a directory of warden's own",
        path.display()
    )]
    NotWardenState { path: PathBuf, detail: String },

    #[error(
        "state file {}: cannot decode {table} record {key}: {detail}; the file was written by an incompatible warden, \
         or move it aside to start with empty state",
        path.display()
    )]
    Decode { path: PathBuf, table: &'static str, key: String, detail: String },

    #[error("cannot {doing} state file {}: {source}", path.display())]
    Database {
        path: PathBuf,
        doing: &'static str,
        // Boxed: redb's error is large and this variant is rare.
        #[source]
        source: Box<redb::Error>,
    },
}

impl StoreError {
    /// The state file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            StoreError::Locked { path }
            | StoreError::PermissionDenied { path, .. }
            | StoreError::Io { path, .. }
            | StoreError::Corrupt { path, .. }
            | StoreError::NewerSchema { path, .. }
            | StoreError::NotWardenState { path, .. }
            | StoreError::Decode { path, .. }
            | StoreError::Database { path, .. } => path,
        }
    }

    /// Sorts a redb error into the variant that tells the operator what to do.
    pub(crate) fn from_redb(path: &Path, doing: &'static str, err: impl Into<redb::Error>) -> Self {
        let path = path.to_path_buf();
        match err.into() {
            redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => {
                StoreError::Locked { path }
            }
            // redb's "not a redb database: magic number mismatch"
            redb::Error::Io(source) if source.kind() == io::ErrorKind::InvalidData => {
                StoreError::NotWardenState { path, detail: source.to_string() }
            }
            redb::Error::Io(source) => StoreError::from_io(&path, doing, source),
            redb::Error::Corrupted(detail) => StoreError::Corrupt { path, detail },
            redb::Error::RepairAborted => {
                StoreError::Corrupt { path, detail: "the repair after a crash did not complete".into() }
            }
            redb::Error::UpgradeRequired(version) => StoreError::NotWardenState {
                path,
                detail: format!("redb file format version {version}, which this warden cannot read"),
            },
            err @ (redb::Error::TableTypeMismatch { .. }
            | redb::Error::TableIsMultimap(_)
            | redb::Error::TableIsNotMultimap(_)
            | redb::Error::TypeDefinitionChanged { .. }) => {
                StoreError::NotWardenState { path, detail: err.to_string() }
            }
            source => StoreError::Database { path, doing, source: Box::new(source) },
        }
    }

    pub(crate) fn from_io(path: &Path, doing: &'static str, source: io::Error) -> Self {
        let path = path.to_path_buf();
        match source.kind() {
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                StoreError::PermissionDenied { path, doing, source }
            }
            _ => StoreError::Io { path, doing, source },
        }
    }
}

/// Attaches the state file and the operation to a redb error.
pub(crate) trait ResultExt<T> {
    fn doing(self, path: &Path, doing: &'static str) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> ResultExt<T> for Result<T, E> {
    fn doing(self, path: &Path, doing: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::from_redb(path, doing, e))
    }
}
