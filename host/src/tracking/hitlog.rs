//! Where the tracking journal keeps hits: append-only segment files of framed,
//! checksummed records.
//!
//! Why files and not a database: a hit is written once, read once in order and dropped
//! once applied. One append and one `fdatasync` per group of hits is all its durability
//! needs; a SQLite table added a B-tree insert, WAL frames, checkpoints and a delete per
//! hit, on the path every visitor waits for.
//!
//! A journal directory holds `id` (the journal's random id, which names its mark in the
//! main database), segments named by their first hit id (`<20 digits>.hits`) and
//! `failed.jsonl` (hits that could not be applied, kept for inspection). A record is
//! `len: u32 LE | crc32(payload): u32 LE | payload`, where payload is
//! `id: i64 LE | new_device: u8 | device_len: u16 LE | device id | body (JSON)`.
//! Only the newest segment is ever written; a crash can leave a torn record at its end,
//! which `open` cuts off (its hits were never acknowledged).
//!
//! Segments after the first of a run are made ahead of need (`SPARE`): zero-filled to
//! their full size and synced, so an append overwrites blocks the file already has and
//! its `fdatasync` writes the data alone. Appending to a growing file also writes its
//! size and block map at every commit: a fifth of the journal's CPU under load. Records
//! end where zeros begin (no record has length 0).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A segment is closed and a new one started once it holds this many bytes.
const SEGMENT_BYTES: u64 = 64 << 20;
const HEADER: usize = 8;
const FIXED: usize = 8 + 1 + 2;
/// A payload larger than this is corruption (a hit's body is capped far below it).
const MAX_PAYLOAD: usize = 16 << 20;
/// How much the reader reads from a segment at a time.
const READ_CHUNK: usize = 1 << 20;
/// The next segment while it is made: not a `.hits` name, so it is no segment yet.
const SPARE: &str = "next-segment.tmp";

/// A journaled hit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub id: i64,
    /// The device id was handed out with this hit (not sent by the visitor).
    pub new_device: bool,
    pub device_id: String,
    pub body: String,
}

impl Record {
    fn encode_into(&self, out: &mut Vec<u8>) {
        let device = &self.device_id.as_bytes()[..self.device_id.len().min(u16::MAX as usize)];
        let len = FIXED + device.len() + self.body.len();
        let start = out.len();
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.id.to_le_bytes());
        out.push(self.new_device as u8);
        out.extend_from_slice(&(device.len() as u16).to_le_bytes());
        out.extend_from_slice(device);
        out.extend_from_slice(self.body.as_bytes());
        let crc = crc32fast::hash(&out[start + HEADER..]);
        out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    }

    /// A record from its payload (checksum already verified).
    fn decode(payload: &[u8]) -> Option<Record> {
        let id = i64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
        let new_device = *payload.get(8)? != 0;
        let device_len = u16::from_le_bytes(payload.get(9..11)?.try_into().ok()?) as usize;
        let device = payload.get(FIXED..FIXED + device_len)?;
        let body = payload.get(FIXED + device_len..)?;
        Some(Record {
            id,
            new_device,
            device_id: String::from_utf8(device.to_vec()).ok()?,
            body: String::from_utf8(body.to_vec()).ok()?,
        })
    }
}

/// What a frame at the start of `bytes` is.
enum Frame<'a> {
    /// A whole record with a good checksum, and its size in bytes.
    Record(&'a [u8], usize),
    /// Not all of it is there (yet).
    Incomplete,
    /// Zeros: the unwritten rest of a segment made ahead of need.
    Unwritten,
    /// A length or checksum that cannot be right.
    Corrupt,
}

fn frame(bytes: &[u8]) -> Frame<'_> {
    if bytes.len() < HEADER {
        return Frame::Incomplete;
    }
    let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    if len == 0 {
        return Frame::Unwritten;
    }
    if !(FIXED..=MAX_PAYLOAD).contains(&len) {
        return Frame::Corrupt;
    }
    if bytes.len() < HEADER + len {
        return Frame::Incomplete;
    }
    let crc = u32::from_le_bytes(bytes[4..HEADER].try_into().expect("4 bytes"));
    let payload = &bytes[HEADER..HEADER + len];
    if crc32fast::hash(payload) != crc {
        return Frame::Corrupt;
    }
    Frame::Record(payload, HEADER + len)
}

fn segment_name(first_id: i64) -> String {
    format!("{first_id:020}.hits")
}

/// The segments of a journal directory, by first hit id, oldest first.
fn segments(dir: &Path) -> io::Result<Vec<i64>> {
    let mut firsts = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".hits"))
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        firsts.push(first);
    }
    firsts.sort_unstable();
    Ok(firsts)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The journal's id: read from `id`, or made and written durably (with the directory) on
/// first use.
pub fn journal_id(dir: &Path, new_id: impl FnOnce() -> String) -> io::Result<String> {
    fs::create_dir_all(dir)?;
    let path = dir.join("id");
    match fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let id = new_id();
    let tmp = dir.join("id.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(id.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(id)
}

/// The id of the last valid record of a segment, the byte length of its valid part, and
/// whether anything but zeros follows it (a torn record).
fn scan(path: &Path) -> io::Result<(Option<i64>, u64, bool)> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let (mut last, mut at) = (None, 0usize);
    while let Frame::Record(payload, size) = frame(&bytes[at..]) {
        let Some(record) = Record::decode(payload) else {
            break;
        };
        last = Some(record.id);
        at += size;
    }
    let torn = bytes[at..].iter().any(|b| *b != 0);
    Ok((last, at as u64, torn))
}

/// An opened journal directory.
pub struct Opened {
    pub appender: Appender,
    /// The last hit id the journal holds (at least `applied`).
    pub last_id: i64,
}

/// Opens the journal in `dir` (made by `journal_id`), whose hits up to `applied` are
/// applied: cuts off a torn tail, and starts a fresh segment when every hit it holds is
/// applied.
pub fn open(dir: &Path, applied: i64) -> io::Result<Opened> {
    let mut last_id = applied;
    let mut current = None;
    if let Some(&first) = segments(dir)?.last() {
        let path = dir.join(segment_name(first));
        let (last, valid, torn) = scan(&path)?;
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let size = file.metadata()?.len();
        if torn {
            tracing::warn!(
                segment = %path.display(),
                bytes = size - valid,
                "tracking journal: cutting off a torn record (never acknowledged)"
            );
            file.set_len(valid)?;
            file.sync_all()?;
        }
        let segment_last = last.unwrap_or(first - 1);
        if segment_last > applied {
            last_id = segment_last;
            current = Some((file, valid));
        }
    }
    // A spare left by an earlier run is made again when needed.
    match fs::remove_file(dir.join(SPARE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let appender = match current {
        Some((file, len)) => Appender::new(dir, file, len),
        None => Appender::new(dir, plain_segment(dir, last_id + 1)?, 0),
    };
    Ok(Opened { appender, last_id })
}

/// An empty file at `path`, for reading and writing.
fn create_empty(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// A new, empty segment (appends grow it).
fn plain_segment(dir: &Path, first_id: i64) -> io::Result<File> {
    let file = create_empty(&dir.join(segment_name(first_id)))?;
    sync_dir(dir)?;
    Ok(file)
}

/// Starts making the next segment (`SPARE`) of `bytes` zeros on a thread of its own.
fn make_spare(dir: &Path, bytes: u64) -> Option<std::thread::JoinHandle<io::Result<File>>> {
    let path = dir.join(SPARE);
    let made = std::thread::Builder::new()
        .name("journal-spare".into())
        .spawn(move || {
            let mut file = create_empty(&path)?;
            // A quarter megabyte at a time, each synced, with pauses: one large flush
            // would hold the disk for a tenth of a second, and every journal commit
            // waiting behind it (measured: p99 21–80 ms instead of 4 ms).
            let zeros = vec![0u8; 256 << 10];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(zeros.len() as u64);
                file.write_all(&zeros[..n as usize])?;
                file.sync_data()?;
                left -= n;
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
            file.sync_all()?;
            Ok(file)
        });
    // Without a thread the next segment is a plain one.
    made.ok()
}

/// Writes hits to the newest segment.
pub struct Appender {
    dir: PathBuf,
    file: File,
    len: u64,
    /// A segment holding this many bytes is full: the next append starts a new one.
    segment_bytes: u64,
    /// The next segment, being made ahead of need (from the middle of this one on).
    spare: Option<std::thread::JoinHandle<io::Result<File>>>,
}

impl Appender {
    fn new(dir: &Path, file: File, len: u64) -> Appender {
        Appender {
            dir: dir.to_owned(),
            file,
            len,
            segment_bytes: SEGMENT_BYTES,
            spare: None,
        }
    }

    /// Starts the segment whose first hit is `first_id`: the spare when it is ready,
    /// otherwise a plain one.
    fn next_segment(&mut self, first_id: i64) -> io::Result<()> {
        let path = self.dir.join(segment_name(first_id));
        let spare = match self.spare.take() {
            Some(making) if making.is_finished() => match making.join() {
                Ok(Ok(file)) => Some(file),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "tracking journal: no spare segment");
                    None
                }
                Err(_) => None,
            },
            unfinished => {
                self.spare = unfinished;
                None
            }
        };
        self.file = match spare {
            Some(file) => {
                fs::rename(self.dir.join(SPARE), &path)?;
                sync_dir(&self.dir)?;
                file
            }
            None => plain_segment(&self.dir, first_id)?,
        };
        self.len = 0;
        Ok(())
    }

    /// Appends records (ids ascending, following the last one) and makes them durable.
    /// On failure nothing of them stays in the journal.
    pub fn append(&mut self, records: &[Record]) -> io::Result<()> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        if self.len >= self.segment_bytes {
            self.next_segment(first.id)?;
        }
        let mut bytes = Vec::with_capacity(records.iter().map(|r| 64 + r.body.len()).sum());
        for r in records {
            r.encode_into(&mut bytes);
        }
        let written = (|| {
            self.file.seek(SeekFrom::Start(self.len))?;
            self.file.write_all(&bytes)?;
            self.file.sync_data()
        })();
        match written {
            Ok(()) => {
                self.len += bytes.len() as u64;
                if self.spare.is_none() && self.len >= self.segment_bytes / 2 {
                    self.spare = make_spare(&self.dir, self.segment_bytes);
                }
                Ok(())
            }
            Err(e) => {
                // Leave no partial record for a later append to follow.
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }
}

/// Reads hits in id order, from any number of segments.
pub struct Reader {
    dir: PathBuf,
    /// The segment being read: its first id and file.
    segment: Option<(i64, File)>,
    /// File offset of `buf[0]`, and how far into `buf` records were taken.
    buf_start: u64,
    buf: Vec<u8>,
    pos: usize,
    /// Hits up to this id were read (or were applied before).
    through: i64,
}

impl Reader {
    /// A reader of the hits after `applied`.
    pub fn new(dir: &Path, applied: i64) -> Reader {
        Reader {
            dir: dir.to_owned(),
            segment: None,
            buf_start: 0,
            buf: Vec::new(),
            pos: 0,
            through: applied,
        }
    }

    fn open_segment(&mut self, first: i64) -> io::Result<()> {
        let file = File::open(self.dir.join(segment_name(first)))?;
        self.segment = Some((first, file));
        self.buf_start = 0;
        self.buf.clear();
        self.pos = 0;
        Ok(())
    }

    /// Reads more of the current segment into the buffer; false at its end.
    fn fill(&mut self) -> io::Result<bool> {
        let Some((_, file)) = self.segment.as_mut() else {
            return Ok(false);
        };
        self.buf_start += self.pos as u64;
        self.buf.drain(..self.pos);
        self.pos = 0;
        let have = self.buf.len();
        self.buf.resize(have + READ_CHUNK, 0);
        file.seek(SeekFrom::Start(self.buf_start + have as u64))?;
        let n = file.read(&mut self.buf[have..])?;
        self.buf.truncate(have + n);
        Ok(n > 0)
    }

    /// The next hits after those already read, up to `committed` (every hit up to it is
    /// durable) and at most `max` of them.
    pub fn read(&mut self, committed: i64, max: usize) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        while out.len() < max && self.through < committed {
            if self.segment.is_none() {
                let want = self.through + 1;
                let firsts = segments(&self.dir)?;
                let Some(&first) = firsts.iter().rev().find(|f| **f <= want).or(firsts.first())
                else {
                    return Err(io::Error::other(format!(
                        "tracking journal: no segment holds hit {want}"
                    )));
                };
                self.open_segment(first)?;
            }
            match frame(&self.buf[self.pos..]) {
                Frame::Record(payload, size) => {
                    let record = Record::decode(payload).ok_or_else(|| {
                        io::Error::other("tracking journal: a record that cannot be decoded")
                    })?;
                    self.pos += size;
                    if record.id > self.through {
                        self.through = record.id;
                        out.push(record);
                    }
                }
                Frame::Corrupt => {
                    return Err(io::Error::other(format!(
                        "tracking journal: corrupt record in segment {} at byte {}",
                        self.segment.as_ref().map_or(0, |s| s.0),
                        self.buf_start + self.pos as u64
                    )));
                }
                // Every hit committed before this call was written before it: zeros
                // are the end of the segment, not bytes still to come.
                end @ (Frame::Incomplete | Frame::Unwritten) => {
                    if matches!(end, Frame::Incomplete) && self.fill()? {
                        continue;
                    }
                    // This segment is read to its end: the hits that follow are in the next.
                    let current = self.segment.as_ref().map_or(0, |s| s.0);
                    match segments(&self.dir)?.into_iter().find(|f| *f > current) {
                        Some(next) => self.open_segment(next)?,
                        None => {
                            return Err(io::Error::other(format!(
                                "tracking journal: hit {} is committed but not found",
                                self.through + 1
                            )));
                        }
                    }
                }
            }
        }
        // Bytes read past the last committed hit may belong to an append that is failing
        // (and will be cut off and written again): the next call reads them afresh.
        self.buf.truncate(self.pos);
        Ok(out)
    }
}

/// Deletes the segments whose hits are all applied (never the newest).
pub fn prune(dir: &Path, applied: i64) -> io::Result<()> {
    let firsts = segments(dir)?;
    for pair in firsts.windows(2) {
        if pair[1] - 1 <= applied {
            fs::remove_file(dir.join(segment_name(pair[0])))?;
        }
    }
    Ok(())
}

/// Keeps a hit that could not be applied, durably, in `failed.jsonl`.
pub fn set_aside(dir: &Path, record: &serde_json::Value) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("failed.jsonl"))?;
    let mut line = record.to_string();
    line.push('\n');
    f.write_all(line.as_bytes())?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: i64, body: &str) -> Record {
        Record {
            id,
            new_device: id % 2 == 0,
            device_id: format!("dev{id}"),
            body: body.to_owned(),
        }
    }

    fn fresh(dir: &Path) -> Opened {
        fs::create_dir_all(dir).unwrap();
        open(dir, 0).unwrap()
    }

    /// The ids of the next hits up to `committed`.
    fn ids(r: &mut Reader, committed: i64) -> Vec<i64> {
        r.read(committed, 10)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect()
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("magpie-hitlog-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn records_come_back_in_order_across_reopen() {
        let dir = temp("order");
        assert_eq!(journal_id(&dir, || "j1".into()).unwrap(), "j1");
        let opened = open(&dir, 0).unwrap();
        assert_eq!(opened.last_id, 0);
        let mut a = opened.appender;
        a.append(&[record(1, "{\"a\":1}"), record(2, "é")]).unwrap();
        a.append(&[record(3, "")]).unwrap();
        let mut r = Reader::new(&dir, 0);
        assert_eq!(
            r.read(3, 2).unwrap(),
            vec![record(1, "{\"a\":1}"), record(2, "é")]
        );
        assert_eq!(r.read(3, 10).unwrap(), vec![record(3, "")]);
        assert!(r.read(3, 10).unwrap().is_empty());
        drop(a);
        // Reopened with hit 1 applied: the id is kept, hits 2 and 3 are still there.
        assert_eq!(journal_id(&dir, || unreachable!()).unwrap(), "j1");
        let opened = open(&dir, 1).unwrap();
        assert_eq!(opened.last_id, 3);
        let mut r = Reader::new(&dir, 1);
        assert_eq!(ids(&mut r, 3), [2, 3]);
        let _ = fs::remove_dir_all(&dir);
    }

    /// A fresh journal holding hits 1 and 2: its segment's path and bytes.
    fn two_hits(dir: &Path) -> (PathBuf, Vec<u8>) {
        let mut a = fresh(dir).appender;
        a.append(&[record(1, "one"), record(2, "two")]).unwrap();
        let path = dir.join(segment_name(1));
        let bytes = fs::read(&path).unwrap();
        (path, bytes)
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_writing_goes_on_after_it() {
        let dir = temp("torn");
        let (path, mut bytes) = two_hits(&dir);
        let whole = bytes.len();
        bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2]); // half a header of hit 3
        fs::write(&path, &bytes).unwrap();
        let opened = open(&dir, 0).unwrap();
        assert_eq!(opened.last_id, 2);
        assert_eq!(fs::metadata(&path).unwrap().len() as usize, whole);
        let mut a = opened.appender;
        a.append(&[record(3, "three")]).unwrap();
        let mut r = Reader::new(&dir, 0);
        assert_eq!(ids(&mut r, 3), [1, 2, 3]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_record_is_an_error_not_skipped() {
        let dir = temp("crc");
        let (path, mut bytes) = two_hits(&dir);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let mut r = Reader::new(&dir, 0);
        assert!(r.read(2, 10).is_err());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn segments_rotate_and_applied_ones_are_pruned() {
        let dir = temp("rotate");
        let mut a = fresh(&dir).appender;
        a.append(&[record(1, "x")]).unwrap();
        a.len = SEGMENT_BYTES; // as if full
        a.append(&[record(2, "y"), record(3, "z")]).unwrap();
        assert_eq!(segments(&dir).unwrap(), [1, 2]);
        let mut r = Reader::new(&dir, 0);
        assert_eq!(ids(&mut r, 3), [1, 2, 3]);
        prune(&dir, 0).unwrap();
        assert_eq!(segments(&dir).unwrap(), [1, 2], "hit 1 is not applied yet");
        prune(&dir, 1).unwrap();
        assert_eq!(segments(&dir).unwrap(), [2]);
        prune(&dir, 3).unwrap();
        assert_eq!(segments(&dir).unwrap(), [2], "the newest segment stays");
        // Everything applied: a restart starts a fresh segment after the mark.
        drop(a);
        let opened = open(&dir, 3).unwrap();
        assert_eq!(opened.last_id, 3);
        assert_eq!(segments(&dir).unwrap(), [2, 4]);
        prune(&dir, 3).unwrap();
        assert_eq!(segments(&dir).unwrap(), [4]);
        let _ = fs::remove_dir_all(&dir);
    }

    /// Waits until the spare segment is made.
    fn spare_made(a: &Appender) {
        let making = a.spare.as_ref().expect("a spare is being made");
        while !making.is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Segments made ahead of need are zero-filled to their size: records are written
    /// over the zeros, readers take zeros for the end of a segment, and a reopened journal
    /// goes on after the last record (cutting off only what is not zeros).
    #[test]
    fn segments_made_ahead_are_filled_over_their_zeros() {
        let dir = temp("spare");
        let mut a = fresh(&dir).appender;
        a.segment_bytes = 256;
        let body = "b".repeat(80); // about 100 bytes a record
        a.append(&[record(1, &body)]).unwrap();
        assert!(a.spare.is_none(), "less than half full");
        a.append(&[record(2, &body)]).unwrap();
        spare_made(&a);
        a.append(&[record(3, &body)]).unwrap(); // the first segment holds 300 bytes
        assert!(dir.join(SPARE).exists());
        a.append(&[record(4, &body)]).unwrap(); // starts the spare as segment 4
        assert!(!dir.join(SPARE).exists());
        assert_eq!(segments(&dir).unwrap(), [1, 4]);
        let second = dir.join(segment_name(4));
        assert_eq!(
            fs::metadata(&second).unwrap().len(),
            256,
            "made to its full size"
        );
        a.append(&[record(5, &body)]).unwrap();
        spare_made(&a);
        // Full before its zeros are written over: the zeros end it for readers.
        a.len = a.segment_bytes;
        a.append(&[record(6, &body)]).unwrap();
        assert_eq!(segments(&dir).unwrap(), [1, 4, 6]);
        assert_eq!(fs::metadata(&second).unwrap().len(), 256);
        let mut r = Reader::new(&dir, 0);
        assert_eq!(ids(&mut r, 6), [1, 2, 3, 4, 5, 6]);

        // Reopened: the newest segment goes on after its last record, over its zeros.
        drop(a);
        let third = dir.join(segment_name(6));
        let opened = open(&dir, 0).unwrap();
        assert_eq!(opened.last_id, 6);
        assert_eq!(
            fs::metadata(&third).unwrap().len(),
            256,
            "zeros are no torn record"
        );
        let mut a = opened.appender;
        a.append(&[record(7, "seven")]).unwrap();
        let mut r = Reader::new(&dir, 5);
        assert_eq!(ids(&mut r, 7), [6, 7]);

        // A torn record over the zeros is cut off, zeros and all.
        drop(a);
        let mut bytes = fs::read(&third).unwrap();
        let (_, valid, torn) = scan(&third).unwrap();
        assert!(!torn);
        bytes[valid as usize + 20] = 7;
        fs::write(&third, &bytes).unwrap();
        let opened = open(&dir, 0).unwrap();
        assert_eq!(opened.last_id, 7);
        assert_eq!(fs::metadata(&third).unwrap().len(), valid);
        let mut a = opened.appender;
        a.append(&[record(8, "eight")]).unwrap();
        let mut r = Reader::new(&dir, 6);
        assert_eq!(ids(&mut r, 8), [7, 8]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_append_read_early_is_read_again_as_rewritten() {
        let dir = temp("rewrite");
        let mut a = fresh(&dir).appender;
        a.append(&[record(1, "one")]).unwrap();
        // Hit 2 reaches the file but its append fails (and is cut off) before it counts as
        // committed; a reader meanwhile reads hit 1 and, past it, hit 2's bytes.
        let mut failed = Vec::new();
        record(2, "lost, longer").encode_into(&mut failed);
        let segment = dir.join(segment_name(1));
        let before = fs::metadata(&segment).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&segment).unwrap();
        f.write_all(&failed).unwrap();
        let mut r = Reader::new(&dir, 0);
        assert_eq!(r.read(1, 10).unwrap(), vec![record(1, "one")]);
        f.set_len(before).unwrap(); // as the failing append does
        a.append(&[record(2, "kept")]).unwrap();
        assert_eq!(r.read(2, 10).unwrap(), vec![record(2, "kept")]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_reader_started_after_the_mark_skips_applied_hits() {
        let dir = temp("skip");
        let mut a = fresh(&dir).appender;
        a.append(&(1..=5).map(|i| record(i, "b")).collect::<Vec<_>>())
            .unwrap();
        let mut r = Reader::new(&dir, 3);
        assert_eq!(ids(&mut r, 5), [4, 5]);
        let _ = fs::remove_dir_all(&dir);
    }
}
