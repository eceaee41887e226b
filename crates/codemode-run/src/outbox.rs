//! Files a script hands back: what it leaves in `/workspace/out` comes to
//! the host only as a stream that a collector inside the sandbox sends
//! (`collect.py`) on a Unix socket of the run's bridge directory. The host
//! never opens a path of the sandbox's filesystem, so nothing the script
//! made there (a symlink to `/etc/shadow`, a FIFO, a name full of `../`) is
//! ever followed, opened or trusted by codemode: every record is checked
//! here against the caps, names are made safe, and files are written by
//! codemode itself, with `create_new`, into a staging directory of its own.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use codemode_sandbox::RunDir;

use crate::RunError;

/// The collector's socket, next to the bridge's.
pub(crate) const OUT_SOCKET: &str = "out.sock";
/// The collector (standard library only), run as the script's parent or
/// included in the session's kernel.
pub(crate) const COLLECTOR: &str = include_str!("collect.py");

/// A header line longer than this is not one the collector writes.
const MAX_HEADER: u64 = 16 * 1024;
/// Skipped entries listed by name; past these they are counted.
const MAX_SKIPPED: usize = 100;
/// A path below `out/` may have this many parts and this many bytes once
/// made safe; a part this many bytes.
const MAX_DEPTH: usize = 32;
const MAX_NAME_BYTES: usize = 1024;
const MAX_PART_BYTES: usize = 200;

/// How much of `out/` comes back from one collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputCaps {
    /// All files together.
    pub max_bytes: u64,
    /// Files; past these, files are counted as dropped.
    pub max_files: usize,
}

impl Default for OutputCaps {
    fn default() -> Self {
        OutputCaps {
            max_bytes: 64 * 1024 * 1024,
            max_files: 1000,
        }
    }
}

/// The collector as the script's parent ([`codemode_sandbox::RunSpec::parent`]).
pub(crate) fn parent_source(caps: OutputCaps) -> String {
    format!(
        "{COLLECTOR}\nMAX_BYTES = {}\nMAX_FILES = {}\nparent_main()\n",
        caps.max_bytes, caps.max_files
    )
}

/// One file that came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutFile {
    /// Its path below `out/`, made safe ([`safe_name`]), `/` between parts.
    pub name: String,
    pub size: u64,
    /// From the magic bytes for images (PNG, JPEG, GIF, WebP), else from the
    /// name's extension; never an image type the bytes do not prove.
    pub media_type: String,
    /// Lowercase hex, computed while the bytes arrived.
    pub sha256: String,
    /// Whether the bytes are UTF-8.
    #[serde(skip)]
    pub text: bool,
}

/// Something in `out/` that did not come back, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedFile {
    pub name: String,
    pub reason: String,
}

/// What one collection brought back. Files received before a stream broke
/// off are kept; `error` says why it did.
#[derive(Debug, Clone, Default)]
pub struct Collection {
    pub files: Vec<OutFile>,
    pub skipped: Vec<SkippedFile>,
    /// Entries neither sent nor listed: past the file cap, or past the
    /// skipped entries listed.
    pub dropped: u64,
    pub error: Option<String>,
    pub staging: Option<Arc<Staging>>,
}

/// Why a stream was not taken to its end.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("a header line longer than {MAX_HEADER} bytes")]
    HeaderTooLong,
    #[error("a header that is not one: {0}")]
    BadHeader(String),
    #[error("the stream ended before its end record")]
    NoEnd,
    #[error("the stream ended inside `{name}`, {got} of {size} bytes in")]
    ShortFile { name: String, got: u64, size: u64 },
    #[error("`{name}` declared {size} bytes, over the {left} left of the cap")]
    OverCap { name: String, size: u64, left: u64 },
    #[error("more than the {0} files the cap allows")]
    TooManyFiles(usize),
    #[error("not done within {0:?}")]
    TimedOut(Duration),
    #[error("reading the stream: {0}")]
    Read(std::io::Error),
    #[error("writing {path}: {source}")]
    Staging {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The host's copies of one collection's files, in a directory only
/// codemode can read (0700); removed when the last holder drops it.
#[derive(Debug)]
pub struct Staging {
    dir: tempfile::TempDir,
}

impl Staging {
    fn create() -> std::io::Result<Staging> {
        let dir = tempfile::Builder::new().prefix("codemode-out-").tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        Ok(Staging { dir })
    }

    /// Where the copy of `file` is.
    pub fn path(&self, file: &OutFile) -> PathBuf {
        self.dir.path().join(&file.name)
    }

    pub fn read(&self, file: &OutFile) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(file))
    }
}

/// The socket a collector connects to, 0600 and the run's user's.
pub(crate) struct Outbox {
    listener: tokio::net::UnixListener,
}

impl Outbox {
    pub(crate) fn bind(dirs: &RunDir) -> Result<Outbox, RunError> {
        let path = dirs.bridge().join(OUT_SOCKET);
        let listener = tokio::net::UnixListener::bind(&path)
            .and_then(|listener| {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                dirs.give(&path).map(|()| listener)
            })
            .map_err(RunError::io(format!("binding {}", path.display())))?;
        Ok(Outbox { listener })
    }

    /// Takes the next connection and reads it to its end, within `within`.
    pub(crate) async fn collect(&self, caps: OutputCaps, within: Duration) -> Collection {
        let stream = match self.listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => return Collection::failed(format!("accepting the collector: {err}")),
        };
        receive_socket(stream, caps, within).await
    }
}

impl Collection {
    fn failed(why: String) -> Collection {
        Collection {
            error: Some(why),
            ..Collection::default()
        }
    }

    /// What a collection that never came says.
    pub(crate) fn not_collected(why: impl Into<String>) -> Collection {
        Collection::failed(why.into())
    }
}

async fn receive_socket(
    stream: tokio::net::UnixStream,
    caps: OutputCaps,
    within: Duration,
) -> Collection {
    let stream = match stream.into_std().and_then(|s| {
        s.set_nonblocking(false)?;
        Ok(s)
    }) {
        Ok(stream) => stream,
        Err(err) => return Collection::failed(format!("reading the collector: {err}")),
    };
    let deadline = Instant::now() + within;
    let joined = tokio::task::spawn_blocking(move || {
        let mut reader = Timed {
            stream,
            deadline,
            within,
        };
        receive(&mut reader, caps, deadline)
    })
    .await;
    joined.unwrap_or_else(|err| Collection::failed(format!("reading the collector: {err}")))
}

/// A socket whose every read gives up at the deadline.
struct Timed {
    stream: std::os::unix::net::UnixStream,
    deadline: Instant,
    within: Duration,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{:?}", self.within),
            ));
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

/// Reads one collector stream into a fresh staging directory, checking
/// every record against `caps`. Never fails: what came before a fault is
/// kept, and the fault is the collection's `error`.
pub(crate) fn receive(stream: &mut impl Read, caps: OutputCaps, deadline: Instant) -> Collection {
    let staging = match Staging::create() {
        Ok(staging) => staging,
        Err(err) => {
            return Collection::failed(format!("making a directory for the files: {err}"));
        }
    };
    let mut receiver = Receiver {
        caps,
        left: caps.max_bytes,
        staging: &staging,
        used: Used::default(),
        collection: Collection::default(),
    };
    let mut reader = BufReader::new(stream);
    if let Err(err) = receiver.run(&mut reader) {
        let err = match err {
            OutboxError::Read(err) if err.kind() == std::io::ErrorKind::TimedOut => {
                OutboxError::TimedOut(deadline.saturating_duration_since(Instant::now()))
            }
            err => err,
        };
        receiver.collection.error = Some(format!("the collection broke off: {err}"));
    }
    let mut collection = receiver.collection;
    collection.staging = Some(Arc::new(staging));
    collection
}

struct Receiver<'a> {
    caps: OutputCaps,
    left: u64,
    staging: &'a Staging,
    used: Used,
    collection: Collection,
}

impl Receiver<'_> {
    fn run(&mut self, reader: &mut impl BufRead) -> Result<(), OutboxError> {
        loop {
            let mut line = Vec::new();
            let read = reader
                .take(MAX_HEADER + 1)
                .read_until(b'\n', &mut line)
                .map_err(OutboxError::Read)?;
            if read == 0 {
                return Err(OutboxError::NoEnd);
            }
            if line.last() != Some(&b'\n') {
                return Err(if line.len() as u64 > MAX_HEADER {
                    OutboxError::HeaderTooLong
                } else {
                    OutboxError::NoEnd
                });
            }
            let header: serde_json::Value = serde_json::from_slice(&line)
                .map_err(|err| OutboxError::BadHeader(err.to_string()))?;
            let text = |key: &str| header.get(key).and_then(serde_json::Value::as_str);
            if header.get("end").and_then(serde_json::Value::as_bool) == Some(true) {
                let dropped = header.get("dropped").and_then(serde_json::Value::as_u64);
                self.collection.dropped =
                    self.collection.dropped.saturating_add(dropped.unwrap_or(0));
                return Ok(());
            }
            if let (Some(name), Some(reason)) = (text("skip"), text("reason")) {
                self.skip(shown(name), one_line(reason));
                continue;
            }
            match (
                text("file"),
                header.get("size").and_then(serde_json::Value::as_u64),
            ) {
                (Some(name), Some(size)) => self.file(reader, name, size)?,
                _ => {
                    return Err(OutboxError::BadHeader(shown(&String::from_utf8_lossy(
                        &line,
                    ))))
                }
            }
        }
    }

    fn skip(&mut self, name: String, reason: String) {
        if self.collection.skipped.len() < MAX_SKIPPED {
            self.collection.skipped.push(SkippedFile { name, reason });
        } else {
            self.collection.dropped += 1;
        }
    }

    fn file(&mut self, reader: &mut impl BufRead, raw: &str, size: u64) -> Result<(), OutboxError> {
        if self.collection.files.len() >= self.caps.max_files {
            return Err(OutboxError::TooManyFiles(self.caps.max_files));
        }
        if size > self.left {
            return Err(OutboxError::OverCap {
                name: shown(raw),
                size,
                left: self.left,
            });
        }
        let parts = match safe_name(raw) {
            Ok(parts) => parts,
            Err(why) => {
                // Its bytes are on the wire all the same.
                std::io::copy(&mut reader.take(size), &mut std::io::sink())
                    .map_err(OutboxError::Read)?;
                self.skip(shown(raw), why.into());
                return Ok(());
            }
        };
        let name = self.used.claim(parts);
        let path = self.staging.dir.path().join(&name);
        let staging = |source| OutboxError::Staging {
            path: PathBuf::from(&name),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(staging)?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(staging)?;
        let mut hash = Sha256::new();
        let mut utf8 = Utf8::default();
        let mut head = Vec::new();
        let mut got = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        while got < size {
            let want = usize::try_from((size - got).min(buf.len() as u64)).unwrap_or(buf.len());
            let n = reader.read(&mut buf[..want]).map_err(OutboxError::Read)?;
            if n == 0 {
                drop(out);
                let _ = std::fs::remove_file(&path);
                return Err(OutboxError::ShortFile { name, got, size });
            }
            let chunk = &buf[..n];
            hash.update(chunk);
            utf8.feed(chunk);
            if head.len() < 16 {
                head.extend(chunk.iter().take(16 - head.len()));
            }
            out.write_all(chunk).map_err(staging)?;
            got += n as u64;
        }
        let text = utf8.finish();
        self.left -= size;
        self.collection.files.push(OutFile {
            media_type: media_type(&name, &head, text),
            name,
            size,
            sha256: hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
            text,
        });
        Ok(())
    }
}

/// Names given out in one staging directory: two raw names that become the
/// same safe one, or a file where a directory's name went, get `~2`, `~3`…
#[derive(Default)]
struct Used {
    files: BTreeSet<String>,
    dirs: BTreeSet<String>,
}

impl Used {
    fn claim(&mut self, parts: Vec<String>) -> String {
        let mut path = String::new();
        let last = parts.len() - 1;
        for (i, part) in parts.into_iter().enumerate() {
            let prefix = if path.is_empty() {
                String::new()
            } else {
                format!("{path}/")
            };
            let taken = |candidate: &str, used: &Used| {
                if i == last {
                    used.files.contains(candidate) || used.dirs.contains(candidate)
                } else {
                    used.files.contains(candidate)
                }
            };
            let mut candidate = format!("{prefix}{part}");
            let mut n = 2;
            while taken(&candidate, self) {
                candidate = format!("{prefix}{}", numbered(&part, n));
                n += 1;
            }
            if i == last {
                self.files.insert(candidate.clone());
            } else {
                self.dirs.insert(candidate.clone());
            }
            path = candidate;
        }
        path
    }
}

/// `report.txt` → `report~2.txt`.
fn numbered(part: &str, n: u32) -> String {
    match part.rfind('.') {
        Some(dot) if dot > 0 => format!("{}~{n}{}", &part[..dot], &part[dot..]),
        _ => format!("{part}~{n}"),
    }
}

/// Names Windows gives to devices, whatever the extension.
const DEVICE_NAMES: [&str; 4] = ["CON", "PRN", "AUX", "NUL"];

/// `raw` (a path below `out/` as the collector sent it) as parts that are
/// safe to create on any host: no `..`, `.` or empty part, no `/` or `\`
/// inside one, control characters and the characters Windows refuses
/// replaced by `_`, no trailing dot or space, Windows device names (`CON`,
/// `nul.txt`, `COM1`) prefixed with `_`, each part at most
/// [`MAX_PART_BYTES`] (keeping its extension). A name that still says
/// nothing, or nests too deep or too long, is refused with the reason.
pub fn safe_name(raw: &str) -> Result<Vec<String>, &'static str> {
    let mut parts = Vec::new();
    for part in raw.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        if part == ".." {
            parts.push("__".to_string());
            continue;
        }
        let mut safe: String = part
            .chars()
            .map(|c| {
                if c.is_control() || "\\<>:\"|?*".contains(c) {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        // Windows drops trailing dots and spaces, which would merge names.
        if safe.ends_with(['.', ' ']) {
            safe.pop();
            safe.push('_');
        }
        let stem = safe
            .split('.')
            .next()
            .unwrap_or("")
            .trim_end()
            .to_ascii_uppercase();
        let device = DEVICE_NAMES.contains(&stem.as_str())
            || ((stem.starts_with("COM") || stem.starts_with("LPT"))
                && stem.len() == 4
                && stem.as_bytes()[3].is_ascii_digit());
        if device {
            safe.insert(0, '_');
        }
        parts.push(cut(safe));
    }
    if parts.is_empty() {
        return Err("no usable name");
    }
    if parts.len() > MAX_DEPTH {
        return Err("nested too deep");
    }
    if parts.iter().map(|p| p.len() + 1).sum::<usize>() > MAX_NAME_BYTES {
        return Err("name too long");
    }
    Ok(parts)
}

/// A part cut to [`MAX_PART_BYTES`], its extension (if short) kept.
fn cut(part: String) -> String {
    if part.len() <= MAX_PART_BYTES {
        return part;
    }
    let ext = match part.rfind('.') {
        Some(dot) if part.len() - dot <= 16 => &part[dot..],
        _ => "",
    };
    let mut end = MAX_PART_BYTES - ext.len();
    while !part.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ext}", &part[..end])
}

/// A name or reason for a message: one line, at most 200 bytes.
fn shown(raw: &str) -> String {
    let mut line: String = raw
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    if line.len() > 200 {
        let mut end = 200;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}

fn one_line(text: &str) -> String {
    shown(&codemode_text::one_line(text))
}

/// The media type of a file named `name` that starts with `head`.
pub fn media_type(name: &str, head: &[u8], utf8: bool) -> String {
    let magic: [(&[u8], usize, &str); 5] = [
        (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
        (b"\xff\xd8\xff", 0, "image/jpeg"),
        (b"GIF87a", 0, "image/gif"),
        (b"GIF89a", 0, "image/gif"),
        (b"WEBP", 8, "image/webp"),
    ];
    for (bytes, at, kind) in magic {
        let riff = at == 0 || head.starts_with(b"RIFF");
        if riff && head.len() >= at + bytes.len() && &head[at..at + bytes.len()] == bytes {
            return kind.into();
        }
    }
    let fallback = if utf8 {
        "text/plain"
    } else {
        "application/octet-stream"
    };
    match mime_guess::from_path(name).first() {
        // Only the bytes may say it is an image.
        Some(guess) if guess.type_() == mime_guess::mime::IMAGE => fallback.into(),
        Some(guess) if guess.type_() == mime_guess::mime::TEXT && !utf8 => {
            "application/octet-stream".into()
        }
        Some(guess) => guess.essence_str().to_string(),
        None => fallback.into(),
    }
}

/// Checks UTF-8 across chunks.
#[derive(Default)]
struct Utf8 {
    carry: Vec<u8>,
    bad: bool,
}

impl Utf8 {
    fn feed(&mut self, chunk: &[u8]) {
        if self.bad {
            return;
        }
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(chunk);
        match std::str::from_utf8(&bytes) {
            Ok(_) => {}
            Err(err) if err.error_len().is_none() => {
                self.carry = bytes[err.valid_up_to()..].to_vec();
            }
            Err(_) => self.bad = true,
        }
    }

    fn finish(self) -> bool {
        !self.bad && self.carry.is_empty()
    }
}

/// A directory on the host that files are saved into (`exec --out`,
/// `ask --out`), held open so that every name is resolved below it.
pub struct OutDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl OutDir {
    /// Creates `path` (and its parents) unless it exists.
    pub fn create(path: &Path) -> std::io::Result<OutDir> {
        std::fs::create_dir_all(path)?;
        let dir = File::open(path)?;
        if !dir.metadata()?.is_dir() {
            return Err(std::io::Error::other(format!(
                "{} is not a directory",
                path.display()
            )));
        }
        Ok(OutDir {
            fd: OwnedFd::from(dir),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Saves `file` from `staging` as `DIR/NAME`: written to a temporary
    /// file beside it and renamed over it, so a symlink already at the name
    /// is replaced, never followed; a directory part that is a symlink is
    /// refused (opened with `O_NOFOLLOW`).
    /// Saves each file from its staging directory; what could not be saved
    /// comes back as notes.
    pub fn save_all<'a>(
        &self,
        files: impl IntoIterator<Item = (&'a OutFile, &'a Staging)>,
    ) -> Vec<String> {
        files
            .into_iter()
            .filter_map(|(file, staging)| {
                self.save(file, staging).err().map(|err| {
                    format!(
                        "{} not saved in {}: {err}",
                        file.name,
                        self.path().display()
                    )
                })
            })
            .collect()
    }

    pub fn save(&self, file: &OutFile, staging: &Staging) -> std::io::Result<()> {
        use nix::fcntl::{openat, renameat, OFlag};
        use nix::sys::stat::{mkdirat, Mode};
        let parts: Vec<&str> = file.name.split('/').collect();
        let Some((last, dirs)) = parts.split_last() else {
            return Ok(());
        };
        let nofollow_dir =
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut dir: Option<OwnedFd> = None;
        for part in dirs {
            let parent = dir.as_ref().map_or(self.fd.as_fd(), AsFd::as_fd);
            let opened = match openat(parent, *part, nofollow_dir, Mode::empty()) {
                Err(nix::errno::Errno::ENOENT) => {
                    match mkdirat(parent, *part, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                        Err(err) => return Err(err.into()),
                    }
                    openat(parent, *part, nofollow_dir, Mode::empty())
                }
                other => other,
            };
            dir = Some(opened.map_err(|err| {
                std::io::Error::other(format!("{part}/ is not a plain directory ({err})"))
            })?);
        }
        let parent = dir.as_ref().map_or(self.fd.as_fd(), AsFd::as_fd);
        let mut from = File::open(staging.path(file))?;
        let temp = format!(
            ".{last}.codemode-{}",
            crate::random_hex(6).unwrap_or_default()
        );
        let created = openat(
            parent,
            temp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )?;
        let mut to = File::from(created);
        let written = std::io::copy(&mut from, &mut to).and_then(|_| to.sync_all());
        let renamed = written.and_then(|()| {
            renameat(parent, temp.as_str(), parent, *last).map_err(std::io::Error::from)
        });
        if renamed.is_err() {
            let _ = nix::unistd::unlinkat(
                parent,
                temp.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        renamed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> OutputCaps {
        OutputCaps {
            max_bytes: 1000,
            max_files: 3,
        }
    }

    fn file(name: &str, bytes: &[u8]) -> Vec<u8> {
        let mut record = serde_json::json!({"file": name, "size": bytes.len()})
            .to_string()
            .into_bytes();
        record.push(b'\n');
        record.extend_from_slice(bytes);
        record
    }

    const END: &[u8] = b"{\"end\": true, \"dropped\": 0}\n";

    fn run(stream: &[u8], caps: OutputCaps) -> Collection {
        let deadline = Instant::now() + Duration::from_secs(5);
        receive(&mut &stream[..], caps, deadline)
    }

    #[test]
    fn files_arrive_with_their_hash_media_type_and_bytes() {
        let png = b"\x89PNG\r\n\x1a\n rest";
        let stream = [
            file("a.png", png),
            file("notes/x.txt", b"hi\n"),
            END.to_vec(),
        ]
        .concat();
        let got = run(&stream, caps());
        assert_eq!(got.error, None);
        let names: Vec<_> = got.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a.png", "notes/x.txt"]);
        assert_eq!(got.files[0].media_type, "image/png");
        assert_eq!(got.files[1].media_type, "text/plain");
        assert_eq!(
            got.files[1].sha256,
            "98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4"
        );
        let staging = got.staging.unwrap();
        assert_eq!(staging.read(&got.files[0]).unwrap(), png);
    }

    #[test]
    fn a_stream_without_its_end_keeps_what_came_and_says_so() {
        let stream = file("a.txt", b"abc");
        let got = run(&stream, caps());
        assert_eq!(got.files.len(), 1);
        assert!(got.error.unwrap().contains("end record"));
    }

    #[test]
    fn a_file_shorter_than_declared_is_dropped_and_breaks_the_stream() {
        let mut stream = file("a.txt", b"abcdef");
        stream.truncate(stream.len() - 2);
        let got = run(&stream, caps());
        assert!(got.files.is_empty());
        assert!(got.error.unwrap().contains("4 of 6 bytes"));
        // Nothing half-written is left in staging.
        let staging = got.staging.unwrap();
        assert!(!staging.dir.path().join("a.txt").exists());
    }

    #[test]
    fn bytes_past_a_declared_size_are_a_malformed_header() {
        let mut stream = file("a.txt", b"abc");
        stream.extend_from_slice(b"EXTRA");
        stream.extend_from_slice(END);
        let got = run(&stream, caps());
        assert_eq!(got.files.len(), 1);
        assert!(got.error.unwrap().contains("not one"));
    }

    #[test]
    fn a_declared_size_over_the_cap_is_refused_before_reading() {
        let stream = b"{\"file\": \"big\", \"size\": 1073741824}\n".to_vec();
        let got = run(&stream, caps());
        assert!(got.files.is_empty());
        assert!(got.error.unwrap().contains("over the 1000 left"));
    }

    #[test]
    fn files_past_the_count_cap_are_refused() {
        let stream = [
            file("1", b"a"),
            file("2", b"b"),
            file("3", b"c"),
            file("4", b"d"),
            END.to_vec(),
        ]
        .concat();
        let got = run(&stream, caps());
        assert_eq!(got.files.len(), 3);
        assert!(got.error.unwrap().contains("3 files"));
    }

    #[test]
    fn garbage_and_endless_headers_are_refused() {
        let got = run(b"not json\n", caps());
        assert!(got.error.unwrap().contains("not one"));
        let got = run(&vec![b'x'; 20_000], caps());
        assert!(got.error.unwrap().contains("header line longer"));
        let got = run(b"{\"file\": 3, \"size\": 1}\n", caps());
        assert!(got.error.is_some());
    }

    #[test]
    fn skips_are_listed_and_counted_past_their_limit() {
        let mut stream = Vec::new();
        for i in 0..(MAX_SKIPPED + 5) {
            stream.extend(format!("{{\"skip\": \"l{i}\", \"reason\": \"a symlink\"}}\n").bytes());
        }
        stream.extend_from_slice(b"{\"end\": true, \"dropped\": 7}\n");
        let got = run(&stream, caps());
        assert_eq!(got.error, None);
        assert_eq!(got.skipped.len(), MAX_SKIPPED);
        assert_eq!(got.dropped, 12);
    }

    #[test]
    fn names_that_collide_once_made_safe_get_numbers() {
        let stream = [
            file("a\u{1}.txt", b"1"),
            file("a\u{2}.txt", b"2"),
            file("d_", b"3"),
            file("d\u{3}/f", b"4"),
            END.to_vec(),
        ]
        .concat();
        let got = run(
            &stream,
            OutputCaps {
                max_bytes: 100,
                max_files: 10,
            },
        );
        let names: Vec<_> = got.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a_.txt", "a_~2.txt", "d_", "d_~2/f"]);
    }

    #[test]
    fn unsafe_names_are_made_safe_part_by_part() {
        let safe = |raw: &str| safe_name(raw).map(|p| p.join("/"));
        assert_eq!(safe("../../etc/passwd"), Ok("__/__/etc/passwd".into()));
        assert_eq!(safe("/abs//./x"), Ok("abs/x".into()));
        assert_eq!(safe("a\u{7}b\nc"), Ok("a_b_c".into()));
        assert_eq!(safe("back\\slash:x?.txt"), Ok("back_slash_x_.txt".into()));
        assert_eq!(safe("CON"), Ok("_CON".into()));
        assert_eq!(safe("nul.txt"), Ok("_nul.txt".into()));
        assert_eq!(safe("dir/com1.log"), Ok("dir/_com1.log".into()));
        assert_eq!(safe("console.txt"), Ok("console.txt".into()));
        assert_eq!(safe("trailing. "), Ok("trailing._".into()));
        assert_eq!(safe(""), Err("no usable name"));
        assert_eq!(safe("./."), Err("no usable name"));
        let long = format!("{}.png", "é".repeat(300));
        let cut = safe(&long).unwrap();
        assert!(cut.len() <= MAX_PART_BYTES && cut.ends_with(".png"));
        assert_eq!(safe(&"d/".repeat(40)), Err("nested too deep"));
    }

    #[test]
    fn only_magic_bytes_make_an_image() {
        assert_eq!(
            media_type("x.bin", b"\xff\xd8\xff\xe0", false),
            "image/jpeg"
        );
        assert_eq!(media_type("x", b"GIF89a..", false), "image/gif");
        assert_eq!(
            media_type("x", b"RIFF\0\0\0\0WEBPVP8 ", false),
            "image/webp"
        );
        assert_eq!(media_type("fake.png", b"hello", true), "text/plain");
        assert_eq!(
            media_type("fake.png", b"\0\x01", false),
            "application/octet-stream"
        );
        assert_eq!(media_type("data.json", b"{}", true), "application/json");
        assert_eq!(
            media_type("a.csv", b"\xff\xfe", false),
            "application/octet-stream"
        );
        assert_eq!(media_type("README", b"hi", true), "text/plain");
    }

    #[test]
    fn utf8_is_checked_across_chunk_boundaries() {
        let mut check = Utf8::default();
        let bytes = "é".as_bytes();
        check.feed(&bytes[..1]);
        check.feed(&bytes[1..]);
        assert!(check.finish());
        let mut check = Utf8::default();
        check.feed(&bytes[..1]);
        assert!(!check.finish());
    }

    #[test]
    fn saving_replaces_a_symlink_at_the_name_and_refuses_one_as_a_directory() {
        let stream = [file("x.txt", b"new"), file("sub/y.txt", b"y"), END.to_vec()].concat();
        let got = run(&stream, caps());
        let staging = got.staging.clone().unwrap();
        let host = tempfile::tempdir().unwrap();
        let secret = host.path().join("secret");
        std::fs::write(&secret, "keep").unwrap();
        let dir = host.path().join("out");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink(&secret, dir.join("x.txt")).unwrap();
        std::os::unix::fs::symlink(host.path(), dir.join("sub")).unwrap();
        let out = OutDir::create(&dir).unwrap();
        out.save(&got.files[0], &staging).unwrap();
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(dir.join("x.txt")).unwrap(), "new");
        assert!(!std::fs::symlink_metadata(dir.join("x.txt"))
            .unwrap()
            .is_symlink());
        assert!(out.save(&got.files[1], &staging).is_err());
        assert!(!host.path().join("y.txt").exists());
    }
}
