//! The few libsystemd journal calls warden needs, loaded at run time.
//!
//! `libsystemd.so.0` is opened with `dlopen` the first time a journald
//! source starts, not linked: warden builds without libsystemd's headers,
//! runs on hosts without libsystemd as long as no journald source is
//! configured, and links no LGPL code statically. The library stays loaded
//! for the life of the process.
//!
//! [`Journal`] owns one `sd_journal` handle. libsystemd handles are not
//! thread-safe, so a `Journal` is `Send` (moved to its reader thread once)
//! but not `Sync`.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::OnceLock;
use std::time::Duration;

/// The library's soname in Debian's `libsystemd0` (and every distribution).
const LIBRARY: &CStr = c"libsystemd.so.0";

#[repr(C)]
struct SdJournal {
    _opaque: [u8; 0],
}

type OpenFn = unsafe extern "C" fn(*mut *mut SdJournal, c_int) -> c_int;
type OpenDirectoryFn = unsafe extern "C" fn(*mut *mut SdJournal, *const c_char, c_int) -> c_int;
type CloseFn = unsafe extern "C" fn(*mut SdJournal);
type HandleFn = unsafe extern "C" fn(*mut SdJournal) -> c_int;
type AddMatchFn = unsafe extern "C" fn(*mut SdJournal, *const c_void, usize) -> c_int;
type CursorFn = unsafe extern "C" fn(*mut SdJournal, *const c_char) -> c_int;
type GetCursorFn = unsafe extern "C" fn(*mut SdJournal, *mut *mut c_char) -> c_int;
type GetDataFn = unsafe extern "C" fn(*mut SdJournal, *const c_char, *mut *const c_void, *mut usize) -> c_int;
type GetRealtimeFn = unsafe extern "C" fn(*mut SdJournal, *mut u64) -> c_int;
type GetMonotonicFn = unsafe extern "C" fn(*mut SdJournal, *mut u64, *mut [u8; 16]) -> c_int;
type SetThresholdFn = unsafe extern "C" fn(*mut SdJournal, usize) -> c_int;
type GetTimeoutFn = unsafe extern "C" fn(*mut SdJournal, *mut u64) -> c_int;

/// The resolved entry points.
struct Api {
    open: OpenFn,
    open_directory: OpenDirectoryFn,
    close: CloseFn,
    add_match: AddMatchFn,
    add_disjunction: HandleFn,
    seek_head: HandleFn,
    seek_tail: HandleFn,
    seek_cursor: CursorFn,
    test_cursor: CursorFn,
    next: HandleFn,
    previous: HandleFn,
    get_cursor: GetCursorFn,
    get_data: GetDataFn,
    get_realtime_usec: GetRealtimeFn,
    get_monotonic_usec: GetMonotonicFn,
    set_data_threshold: SetThresholdFn,
    get_fd: HandleFn,
    get_timeout: GetTimeoutFn,
    process: HandleFn,
}

/// Why libsystemd could not be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot use libsystemd.so.0 ({reason}); the journald source needs it: apt-get install libsystemd0")]
pub struct LoadError {
    reason: String,
}

fn api() -> Result<&'static Api, LoadError> {
    static API: OnceLock<Result<Api, LoadError>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until
    // the next dl* call on this thread; it is copied at once.
    let msg = unsafe { libc::dlerror() };
    if msg.is_null() {
        "unknown dlopen error".into()
    } else {
        // SAFETY: non-null, NUL-terminated (see above).
        unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned()
    }
}

fn load() -> Result<Api, LoadError> {
    // SAFETY: dlopen with a valid C string; the handle is never closed, so
    // every symbol resolved from it stays valid for the process's life.
    let lib = unsafe { libc::dlopen(LIBRARY.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if lib.is_null() {
        return Err(LoadError { reason: dl_error() });
    }
    macro_rules! sym {
        ($name:literal, $ty:ty) => {{
            // SAFETY: `lib` is a live handle and the name a C string.
            let p = unsafe { libc::dlsym(lib, concat!($name, "\0").as_ptr().cast()) };
            if p.is_null() {
                return Err(LoadError { reason: format!("{} is missing: {}", $name, dl_error()) });
            }
            // SAFETY: the symbol is libsystemd's function of that name, whose
            // C signature (sd-journal.h, stable since systemd 209) the
            // target type spells out; function and data pointers have the
            // same size on every platform systemd runs on.
            unsafe { std::mem::transmute::<*mut c_void, $ty>(p) }
        }};
    }
    Ok(Api {
        open: sym!("sd_journal_open", OpenFn),
        open_directory: sym!("sd_journal_open_directory", OpenDirectoryFn),
        close: sym!("sd_journal_close", CloseFn),
        add_match: sym!("sd_journal_add_match", AddMatchFn),
        add_disjunction: sym!("sd_journal_add_disjunction", HandleFn),
        seek_head: sym!("sd_journal_seek_head", HandleFn),
        seek_tail: sym!("sd_journal_seek_tail", HandleFn),
        seek_cursor: sym!("sd_journal_seek_cursor", CursorFn),
        test_cursor: sym!("sd_journal_test_cursor", CursorFn),
        next: sym!("sd_journal_next", HandleFn),
        previous: sym!("sd_journal_previous", HandleFn),
        get_cursor: sym!("sd_journal_get_cursor", GetCursorFn),
        get_data: sym!("sd_journal_get_data", GetDataFn),
        get_realtime_usec: sym!("sd_journal_get_realtime_usec", GetRealtimeFn),
        get_monotonic_usec: sym!("sd_journal_get_monotonic_usec", GetMonotonicFn),
        set_data_threshold: sym!("sd_journal_set_data_threshold", SetThresholdFn),
        get_fd: sym!("sd_journal_get_fd", HandleFn),
        get_timeout: sym!("sd_journal_get_timeout", GetTimeoutFn),
        process: sym!("sd_journal_process", HandleFn),
    })
}

/// An error from a libsystemd call.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{call}: {source}")]
    Call { call: &'static str, source: io::Error },
}

/// Turns a libsystemd return value (negative errno on failure) into a result.
fn check(call: &'static str, r: c_int) -> Result<c_int, JournalError> {
    if r < 0 { Err(JournalError::Call { call, source: io::Error::from_raw_os_error(-r) }) } else { Ok(r) }
}

/// What [`Journal::process`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing relevant.
    None,
    /// Entries were appended.
    Append,
    /// Files were added or removed (rotation, vacuum).
    Invalidate,
}

/// An open journal (a set of journal files), positioned at one entry.
pub struct Journal {
    api: &'static Api,
    handle: NonNull<SdJournal>,
}

// SAFETY: an sd_journal may be used from any thread as long as one thread
// at a time does; `Journal` is not Sync and every call takes `&mut self`
// or `&self` on the owning thread only.
unsafe impl Send for Journal {}

impl Journal {
    /// Opens the system's journal: every journal file under
    /// `/run/log/journal` and `/var/log/journal`, whatever machine wrote it
    /// (a container reading its host's journal has another machine id).
    pub fn open_system() -> Result<Journal, JournalError> {
        let api = api()?;
        let mut handle = ptr::null_mut();
        // SAFETY: `handle` is a valid out pointer; flags 0 means all files.
        check("sd_journal_open", unsafe { (api.open)(&mut handle, 0) })?;
        Self::wrap(api, handle, "sd_journal_open")
    }

    /// Opens the journal files in `dir` and its machine-id subdirectories.
    pub fn open_directory(dir: &Path) -> Result<Journal, JournalError> {
        let api = api()?;
        let path = CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| JournalError::Call {
            call: "sd_journal_open_directory",
            source: io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"),
        })?;
        let mut handle = ptr::null_mut();
        // SAFETY: valid out pointer and C string; flags 0.
        check("sd_journal_open_directory", unsafe { (api.open_directory)(&mut handle, path.as_ptr(), 0) })?;
        Self::wrap(api, handle, "sd_journal_open_directory")
    }

    fn wrap(api: &'static Api, handle: *mut SdJournal, call: &'static str) -> Result<Journal, JournalError> {
        let handle = NonNull::new(handle)
            .ok_or(JournalError::Call { call, source: io::Error::other("returned success but no handle") })?;
        Ok(Journal { api, handle })
    }

    fn raw(&self) -> *mut SdJournal {
        self.handle.as_ptr()
    }

    /// Adds a `FIELD=value` match (see `sd_journal_add_match(3)`).
    pub fn add_match(&mut self, field_eq_value: &[u8]) -> Result<(), JournalError> {
        // SAFETY: pointer and length describe a live slice.
        let r =
            unsafe { (self.api.add_match)(self.raw(), field_eq_value.as_ptr().cast(), field_eq_value.len()) };
        check("sd_journal_add_match", r).map(drop)
    }

    /// Starts a new OR group of matches.
    pub fn add_disjunction(&mut self) -> Result<(), JournalError> {
        // SAFETY: live handle.
        check("sd_journal_add_disjunction", unsafe { (self.api.add_disjunction)(self.raw()) }).map(drop)
    }

    /// Caps how much of a (compressed) field value is returned.
    pub fn set_data_threshold(&mut self, bytes: usize) -> Result<(), JournalError> {
        // SAFETY: live handle.
        check("sd_journal_set_data_threshold", unsafe { (self.api.set_data_threshold)(self.raw(), bytes) })
            .map(drop)
    }

    pub fn seek_head(&mut self) -> Result<(), JournalError> {
        // SAFETY: live handle.
        check("sd_journal_seek_head", unsafe { (self.api.seek_head)(self.raw()) }).map(drop)
    }

    pub fn seek_tail(&mut self) -> Result<(), JournalError> {
        // SAFETY: live handle.
        check("sd_journal_seek_tail", unsafe { (self.api.seek_tail)(self.raw()) }).map(drop)
    }

    /// Seeks to the entry `cursor` names, or the nearest one if it is gone.
    pub fn seek_cursor(&mut self, cursor: &CStr) -> Result<(), JournalError> {
        // SAFETY: live handle and C string.
        check("sd_journal_seek_cursor", unsafe { (self.api.seek_cursor)(self.raw(), cursor.as_ptr()) })
            .map(drop)
    }

    /// Whether the current entry is the one `cursor` names.
    pub fn test_cursor(&mut self, cursor: &CStr) -> Result<bool, JournalError> {
        // SAFETY: live handle and C string.
        check("sd_journal_test_cursor", unsafe { (self.api.test_cursor)(self.raw(), cursor.as_ptr()) })
            .map(|r| r > 0)
    }

    /// Moves to the next matching entry; `false` at the end for now.
    pub fn next_entry(&mut self) -> Result<bool, JournalError> {
        // SAFETY: live handle.
        check("sd_journal_next", unsafe { (self.api.next)(self.raw()) }).map(|r| r > 0)
    }

    /// Moves to the previous matching entry; `false` at the start.
    pub fn previous_entry(&mut self) -> Result<bool, JournalError> {
        // SAFETY: live handle.
        check("sd_journal_previous", unsafe { (self.api.previous)(self.raw()) }).map(|r| r > 0)
    }

    /// The current entry's cursor, as journalctl prints it.
    pub fn cursor(&mut self) -> Result<CString, JournalError> {
        let mut out: *mut c_char = ptr::null_mut();
        // SAFETY: live handle, valid out pointer.
        check("sd_journal_get_cursor", unsafe { (self.api.get_cursor)(self.raw(), &mut out) })?;
        if out.is_null() {
            return Err(JournalError::Call {
                call: "sd_journal_get_cursor",
                source: io::Error::other("no cursor"),
            });
        }
        // SAFETY: on success `out` is a malloc'ed C string we now own.
        let cursor = unsafe { CStr::from_ptr(out) }.to_owned();
        // SAFETY: allocated by libsystemd with malloc, freed once.
        unsafe { libc::free(out.cast()) };
        Ok(cursor)
    }

    /// The value of `field` (a NUL-terminated name) in the current entry,
    /// without the `FIELD=` prefix; `None` when the entry lacks it or it
    /// cannot be read. Valid until the journal moves.
    pub fn field(&mut self, field: &CStr) -> Option<&[u8]> {
        let mut data: *const c_void = ptr::null();
        let mut len: usize = 0;
        // SAFETY: live handle, C string, valid out pointers.
        let r = unsafe { (self.api.get_data)(self.raw(), field.as_ptr(), &mut data, &mut len) };
        if r < 0 || data.is_null() {
            return None;
        }
        // SAFETY: libsystemd returns `len` readable bytes at `data`, valid
        // until the next call that moves or reads the journal, which needs
        // `&mut self` and so ends this borrow first.
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        let name = field.to_bytes();
        bytes.strip_prefix(name).and_then(|rest| rest.strip_prefix(b"="))
    }

    /// The current entry's reception time, in µs since the epoch.
    pub fn realtime_usec(&mut self) -> Result<u64, JournalError> {
        let mut usec = 0;
        // SAFETY: live handle, valid out pointer.
        check("sd_journal_get_realtime_usec", unsafe {
            (self.api.get_realtime_usec)(self.raw(), &mut usec)
        })?;
        Ok(usec)
    }

    /// The current entry's monotonic time, in µs since its boot.
    pub fn monotonic_usec(&mut self) -> Result<u64, JournalError> {
        let mut usec = 0;
        // SAFETY: live handle, valid out pointer; a null boot id pointer is
        // allowed and means "don't return it".
        let r = unsafe { (self.api.get_monotonic_usec)(self.raw(), &mut usec, ptr::null_mut()) };
        check("sd_journal_get_monotonic_usec", r)?;
        Ok(usec)
    }

    /// The descriptor that becomes readable when the journal changes
    /// (inotify on its directories).
    pub fn fd(&self) -> Result<BorrowedFd<'_>, JournalError> {
        // SAFETY: live handle.
        let fd = check("sd_journal_get_fd", unsafe { (self.api.get_fd)(self.raw()) })?;
        // SAFETY: the descriptor belongs to the handle, which outlives the
        // borrow.
        Ok(unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// How long to wait at most before calling [`Journal::process`] even
    /// without news (libsystemd's fallback when inotify is not enough).
    pub fn timeout(&mut self) -> Result<Option<Duration>, JournalError> {
        let mut usec = 0u64;
        // SAFETY: live handle, valid out pointer.
        check("sd_journal_get_timeout", unsafe { (self.api.get_timeout)(self.raw(), &mut usec) })?;
        if usec == u64::MAX {
            return Ok(None);
        }
        // The value is an absolute CLOCK_MONOTONIC time.
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: valid out pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let now_usec = (now.tv_sec as u64).saturating_mul(1_000_000) + (now.tv_nsec as u64) / 1_000;
        Ok(Some(Duration::from_micros(usec.saturating_sub(now_usec))))
    }

    /// Takes in what changed since the last call (after the descriptor was
    /// readable or the timeout passed).
    pub fn process(&mut self) -> Result<Change, JournalError> {
        // SAFETY: live handle.
        let r = check("sd_journal_process", unsafe { (self.api.process)(self.raw()) })?;
        Ok(match r {
            1 => Change::Append,
            2 => Change::Invalidate,
            _ => Change::None,
        })
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // SAFETY: the handle is live and closed exactly once.
        unsafe { (self.api.close)(self.raw()) };
    }
}
