//! A persisted high-water mark, so a restarted process with an earlier clock does not reissue
//! IDs.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

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
pub trait MarkStore: Send + Sync + fmt::Debug {
    /// The last stored mark, or `None` if there is none yet.
    ///
    /// # Errors
    ///
    /// A message saying why the mark could not be read.
    fn load(&self) -> Result<Option<u64>, String>;

    /// Durably replaces the mark.
    ///
    /// # Errors
    ///
    /// A message saying why the mark could not be written; the generator then refuses to issue
    /// IDs beyond the previous mark.
    fn store(&self, unix_millis: u64) -> Result<(), String>;
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
    pub fn new(path: impl Into<PathBuf>) -> FileMark {
        FileMark { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl MarkStore for FileMark {
    fn load(&self) -> Result<Option<u64>, String> {
        match fs::read_to_string(&self.path) {
            Ok(text) => {
                text.trim().parse::<u64>().map(Some).map_err(|error| {
                    format!("{} does not hold a mark: {error}", self.path.display())
                })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(format!("cannot read {}: {error}", self.path.display())),
        }
    }

    fn store(&self, unix_millis: u64) -> Result<(), String> {
        let temporary = self.path.with_extension("tmp");
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
        write().map_err(|error| format!("cannot write {}: {error}", self.path.display()))
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
        assert!(error.contains("does not hold a mark"), "{error}");
    }
}
