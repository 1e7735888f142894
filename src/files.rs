//! Writing files whole: every file gpu-doctor writes (the `--output` report, the Prometheus
//! textfile, the live-result cache, the GGUF test models, `init`'s files) goes through here.
//!
//! A regular file is written to a temporary file beside it and renamed over it, so a reader
//! sees the old file or the new one, never half of one ([`write_atomic`], [`Staged`]). Only a
//! regular file or a path that does not exist is ever replaced: a report sent to a device, a
//! FIFO or through a symbolic link is written into what the path names ([`write_report`]),
//! because renaming over `/dev/null` as root would turn it into a regular file for every
//! program on the machine.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The ending of every temporary file [`Staged`] makes; names also start with a dot, so a
/// collector that reads `*.prom` or a cache that reads `*.json` never takes one.
const TEMP_SUFFIX: &str = ".tmp";

/// Whether `name` is one of [`Staged`]'s temporary files (left behind only by a run that was
/// killed between writing and renaming).
pub fn is_temporary_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

/// A new file being written beside `path`; [`Staged::commit`] renames it over `path`. Dropped
/// without a commit, it is removed. An interrupt removes it too (crate::signals).
pub struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    file: Option<File>,
}

impl Staged {
    /// Create the temporary file beside `path` (unique per process and call).
    pub fn create(path: &Path) -> io::Result<Staged> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::other("the path names no file"))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let tmp = dir.join(format!(
            ".{}.{}.{}{TEMP_SUFFIX}",
            name.to_string_lossy(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = crate::signals::create_temp(&tmp, File::create)?;
        Ok(Staged {
            tmp,
            path: path.to_path_buf(),
            file: Some(file),
        })
    }

    pub fn file(&mut self) -> &mut File {
        self.file
            .as_mut()
            .expect("a staged file is open until committed")
    }

    /// Flush the file to disk when `sync` (not for caches, where a torn file is just ignored),
    /// then rename it over the path.
    pub fn commit(mut self, sync: bool) -> io::Result<()> {
        let file = self.file.take().expect("committed once");
        if sync {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&self.tmp, &self.path)?;
        crate::signals::forget_temp(&self.tmp);
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.file.take().is_some() || self.tmp.exists() {
            let _ = fs::remove_file(&self.tmp);
        }
        crate::signals::forget_temp(&self.tmp);
    }
}

/// Replace the regular file `path` (or create it) with `bytes`, atomically; `sync` as in
/// [`Staged::commit`].
pub fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let mut staged = Staged::create(path)?;
    staged.file().write_all(bytes)?;
    staged.commit(sync)
}

/// Write a report to `path`: atomically when it is a regular file or does not exist; through
/// the link when it is a symbolic link (the link stays, its target gets the report, atomically
/// when that is a regular file); into the device or FIFO otherwise, opened for writing and never
/// replaced. A FIFO that nobody reads is an error at once, not a wait. `/dev/stdout` and the
/// like are written to the descriptor they name, where the shell's redirection points.
pub fn write_report(path: &Path, bytes: &[u8]) -> io::Result<()> {
    #[cfg(unix)]
    if let Some(fd) = descriptor_named(path) {
        return write_to_descriptor(fd, bytes);
    }
    let target = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return write_atomic(path, bytes, true),
        Err(e) => return Err(e),
        Ok(m) if m.file_type().is_file() => return write_atomic(path, bytes, true),
        Ok(m) if m.file_type().is_symlink() => match fs::canonicalize(path) {
            Ok(real) if fs::metadata(&real).is_ok_and(|m| m.file_type().is_file()) => {
                return write_atomic(&real, bytes, true)
            }
            // A dangling link: create what it names, as a shell's `>` would.
            _ => path,
        },
        Ok(m) if m.is_dir() => {
            return Err(io::Error::other("it is a folder; name a file"));
        }
        Ok(_) => path,
    };
    write_into(target, bytes)
}

/// The descriptor `/dev/stdout`, `/dev/stderr`, `/dev/fd/N` or `/proc/self/fd/N` names: opening
/// one of those would start a new file offset (and truncate a log the shell appends to).
#[cfg(unix)]
fn descriptor_named(path: &Path) -> Option<i32> {
    let p = path.to_str()?;
    match p {
        "/dev/stdout" => Some(1),
        "/dev/stderr" => Some(2),
        _ => p
            .strip_prefix("/dev/fd/")
            .or_else(|| p.strip_prefix("/proc/self/fd/"))?
            .parse()
            .ok(),
    }
}

/// Write `bytes` to this process's descriptor `fd`, through a duplicate of it.
#[cfg(unix)]
fn write_to_descriptor(fd: i32, bytes: &[u8]) -> io::Result<()> {
    use std::os::fd::FromRawFd;
    // SAFETY: dup(2) returns a new descriptor (or -1), which the File below owns and closes.
    let copy = unsafe { libc::dup(fd) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `copy` is a descriptor nothing else owns.
    let mut file = unsafe { File::from_raw_fd(copy) };
    file.write_all(bytes)?;
    file.flush()
}

/// Open `path` for writing without replacing it, and write `bytes` into it.
fn write_into(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // A FIFO without a reader fails with ENXIO instead of blocking in open.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let mut file = options.open(path).map_err(|e| match e.raw_os_error() {
        #[cfg(unix)]
        Some(libc::ENXIO) => io::Error::other("it is a FIFO that nothing reads"),
        _ => e,
    })?;
    #[cfg(unix)]
    blocking(&file)?;
    file.write_all(bytes)?;
    file.flush()
}

/// Clear O_NONBLOCK again, so writing to a FIFO waits for its reader instead of failing.
#[cfg(unix)]
fn blocking(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function's caller owns; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_replaced_whole_and_no_temporary_file_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        fs::write(&path, "old").unwrap();
        write_report(&path, b"new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_staged_file_dropped_without_commit_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        let mut staged = Staged::create(&path).unwrap();
        staged.file().write_all(b"half").unwrap();
        drop(staged);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn temporary_names_are_recognised() {
        assert!(is_temporary_name(".facts.json.123.0.tmp"));
        assert!(!is_temporary_name("facts.json"));
    }
}
