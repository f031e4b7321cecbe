//! A persisted high-water mark, so a restarted process with an earlier clock does not reissue
//! IDs.

use std::error::Error;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::StoreError;

/// Where a [`Snowflake`](crate::Snowflake) persists its high-water mark.
///
/// The mark is a wall-clock time in milliseconds since the Unix epoch such that every ID the
/// generator has issued, or will issue before it persists a new mark, has an earlier
/// timestamp. The generator reserves a window of time ahead (see
/// [`SnowflakeBuilder::high_water_mark`](crate::SnowflakeBuilder::high_water_mark)) and calls
/// [`store`](MarkStore::store) before it issues an ID beyond the reservation, so the store is
/// written about once per window, not once per ID. On start it [`load`](MarkStore::load)s the
/// mark and issues only IDs stamped at or after it; if the clock is earlier, the
/// [`ClockBackwards`](crate::ClockBackwards) policy applies, as for a step back.
///
/// `store` must be durable when it returns (the file store syncs to disk).
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_idgen::{Layout, MarkStore, Snowflake, StoreError};
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
///
/// // A store in memory (a real one must be durable, as `FileMark` is); 0 is "no mark".
/// #[derive(Debug, Default)]
/// struct Memory(Arc<AtomicU64>);
///
/// impl MarkStore for Memory {
///     fn load(&self) -> Result<Option<u64>, StoreError> {
///         Ok(Some(self.0.load(Ordering::Acquire)).filter(|mark| *mark != 0))
///     }
///     fn store(&self, unix_millis: u64) -> Result<(), StoreError> {
///         self.0.store(unix_millis, Ordering::Release);
///         Ok(())
///     }
/// }
///
/// let mark = Arc::new(AtomicU64::new(0));
/// let clock = ManualClock::new();
/// let generator = Snowflake::builder(Layout::twitter(), 1)
///     .clock(clock.clone())
///     .high_water_mark(Memory(mark.clone()), Duration::from_secs(1))
///     .build()?;
/// generator.next_id()?;
/// // The first ID reserved a second ahead: the mark is just past it.
/// let now = keel_core::Clock::unix_millis(&clock);
/// assert_eq!(mark.load(Ordering::Acquire), now + 1_001);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait MarkStore: Send + Sync + fmt::Debug {
    /// The last stored mark, or `None` if there is none yet.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] with the cause (for [`FileMark`], the I/O or parse error).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{FileMark, MarkStore};
    ///
    /// let dir = std::env::temp_dir().join(format!("keel-idgen-load-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mark = FileMark::new(dir.join("idgen.mark"));
    /// assert_eq!(mark.load()?, None);
    /// std::fs::write(mark.path(), "1767225600000\n")?;
    /// assert_eq!(mark.load()?, Some(1_767_225_600_000));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn load(&self) -> Result<Option<u64>, StoreError>;

    /// Durably replaces the mark.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] with the cause; the generator then refuses to issue IDs beyond the
    /// previous mark.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{FileMark, MarkStore};
    ///
    /// let dir = std::env::temp_dir().join(format!("keel-idgen-store-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mark = FileMark::new(dir.join("idgen.mark"));
    /// mark.store(1_767_225_600_000)?;
    /// mark.store(1_767_225_601_000)?;
    /// assert_eq!(mark.load()?, Some(1_767_225_601_000));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn store(&self, unix_millis: u64) -> Result<(), StoreError>;
}

/// A [`MarkStore`] in a small file, replaced atomically (write, sync, rename) on each store.
///
/// # Example
///
/// ```
/// use keel_idgen::{FileMark, MarkStore};
///
/// let dir = std::env::temp_dir().join(format!("keel-idgen-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let mark = FileMark::new(dir.join("idgen.mark"));
/// assert_eq!(mark.load()?, None);
/// mark.store(1_767_225_600_000)?;
/// assert_eq!(mark.load()?, Some(1_767_225_600_000));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct FileMark {
    path: PathBuf,
}

impl FileMark {
    /// A mark kept at `path`; the file is created on the first store.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{FileMark, MarkStore};
    ///
    /// let dir = std::env::temp_dir().join(format!("keel-idgen-new-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mark = FileMark::new(dir.join("worker-3.mark"));
    /// // Nothing is written until the first store.
    /// assert!(!mark.path().exists());
    /// mark.store(42)?;
    /// assert_eq!(std::fs::read_to_string(mark.path())?, "42\n");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> FileMark {
        FileMark { path: path.into() }
    }

    /// The file's path.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::FileMark;
    /// use std::path::Path;
    ///
    /// let mark = FileMark::new("/var/lib/orders/idgen.mark");
    /// assert_eq!(mark.path(), Path::new("/var/lib/orders/idgen.mark"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl MarkStore for FileMark {
    fn load(&self) -> Result<Option<u64>, StoreError> {
        match fs::read_to_string(&self.path) {
            Ok(text) => text.trim().parse::<u64>().map(Some).map_err(|error| {
                StoreError::new(FileMarkError {
                    action: "does not hold a mark",
                    path: self.path.clone(),
                    cause: Box::new(error),
                })
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(StoreError::new(FileMarkError {
                action: "cannot be read",
                path: self.path.clone(),
                cause: Box::new(error),
            })),
        }
    }

    fn store(&self, unix_millis: u64) -> Result<(), StoreError> {
        // The whole name plus ".tmp" (not `with_extension`): marks named `a.mark` and
        // `a.hwm` in one folder must not share a temporary file.
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&temporary)?;
            writeln!(file, "{unix_millis}")?;
            file.sync_all()?;
            fs::rename(&temporary, &self.path)?;
            if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                // The rename is durable only once the directory is synced.
                fs::File::open(parent)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|error| {
            StoreError::new(FileMarkError {
                action: "cannot be written",
                path: self.path.clone(),
                cause: Box::new(error),
            })
        })
    }
}

/// A [`FileMark`] failure: which file, what went wrong, and the I/O or parse error under it.
#[derive(Debug)]
struct FileMarkError {
    action: &'static str,
    path: PathBuf,
    cause: Box<dyn Error + Send + Sync>,
}

impl fmt::Display for FileMarkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mark file {} {}: {}",
            self.path.display(),
            self.action,
            self.cause
        )
    }
}

impl Error for FileMarkError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.cause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_file_is_an_error_not_a_zero() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("mark");
        fs::write(&path, "not a number").expect("write");
        let error = FileMark::new(&path).load().unwrap_err();
        assert!(
            error.to_string().contains("does not hold a mark"),
            "{error}"
        );
        let parse = error
            .source()
            .and_then(|cause| cause.downcast_ref::<std::num::ParseIntError>());
        assert!(parse.is_some(), "the parse error is kept: {error:?}");
    }
}
