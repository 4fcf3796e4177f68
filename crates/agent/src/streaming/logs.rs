//! Container logs: the CRI log file format and `pods/log`'s options over it.
//!
//! The runtime writes one file per container attempt, `PODS/NS_NAME_UID/CONTAINER/N.log`, one
//! entry per line: `<RFC 3339 nano time> <stdout|stderr> <P|F> <text>`, where `P` marks a
//! partial line whose text continues in the next entry of the same stream and `F` ends it.
//! [`render`] turns entries into what `kubectl logs` prints (the text, a timestamp at the start
//! of each line when asked); [`LogOptions`] are the request's filters (since, tail, limit,
//! stream). [`stream_file`] reads a file with them and, when following, keeps reading as the
//! runtime appends, across a rotation, until the container has exited.

use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;

/// How often a follower looks for new lines at the end of the file.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// How often a follower at the end of the file asks whether the container still runs.
const EXIT_CHECK: Duration = Duration::from_secs(1);
/// Output is sent in chunks of about this size.
const CHUNK: usize = 32 << 10;

/// Which of the container's output streams to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamFilter {
    #[default]
    All,
    Stdout,
    Stderr,
}

/// `PodLogOptions`, as the agent applies them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    /// Only entries at or after this time.
    pub since: Option<Timestamp>,
    /// Only the last N lines.
    pub tail_lines: Option<u64>,
    /// Stop after this many bytes of output.
    pub limit_bytes: Option<u64>,
    pub stream: StreamFilter,
}

impl LogOptions {
    /// Parse the query of a log request (`follow=true&tailLines=10&…`). Errors name the bad
    /// parameter.
    pub fn from_query(query: &[(String, String)], now: Timestamp) -> Result<LogOptions, String> {
        let mut options = LogOptions::default();
        let mut since_seconds = None;
        let mut since_time = None;
        for (key, value) in query {
            let flag = || value.is_empty() || value == "true" || value == "1";
            let number = |name: &str| -> Result<i64, String> {
                value
                    .parse::<i64>()
                    .map_err(|_| format!("{name}: invalid value {value:?}: not an integer"))
            };
            match key.as_str() {
                "follow" => options.follow = flag(),
                "previous" => options.previous = flag(),
                "timestamps" => options.timestamps = flag(),
                "tailLines" => {
                    let n = number("tailLines")?;
                    if n < 0 {
                        return Err("tailLines: must be greater than or equal to 0".into());
                    }
                    options.tail_lines = Some(n as u64);
                }
                "limitBytes" => {
                    let n = number("limitBytes")?;
                    if n < 1 {
                        return Err("limitBytes: must be greater than 0".into());
                    }
                    options.limit_bytes = Some(n as u64);
                }
                "sinceSeconds" => {
                    let n = number("sinceSeconds")?;
                    if n < 1 {
                        return Err("sinceSeconds: must be greater than 0".into());
                    }
                    since_seconds = Some(n);
                }
                "sinceTime" => {
                    let t: Timestamp = value
                        .parse()
                        .map_err(|_| format!("sinceTime: invalid time {value:?}"))?;
                    since_time = Some(t);
                }
                "stream" => {
                    options.stream = match value.as_str() {
                        "" | "All" => StreamFilter::All,
                        "Stdout" => StreamFilter::Stdout,
                        "Stderr" => StreamFilter::Stderr,
                        other => return Err(format!("stream: unsupported value {other:?}")),
                    }
                }
                _ => {}
            }
        }
        options.since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err("at most one of sinceTime or sinceSeconds may be specified".into())
            }
            (Some(secs), None) => Some(
                now.checked_sub(jiff::SignedDuration::from_secs(secs))
                    .unwrap_or(Timestamp::MIN),
            ),
            (None, t) => t,
        };
        Ok(options)
    }

    fn wants(&self, stream: &str) -> bool {
        match self.stream {
            StreamFilter::All => true,
            StreamFilter::Stdout => stream == "stdout",
            StreamFilter::Stderr => stream == "stderr",
        }
    }
}

/// One entry of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The time as written (RFC 3339 with nanoseconds).
    pub time_text: &'a str,
    pub time: Timestamp,
    pub stream: &'a str,
    /// The text continues in the next entry.
    pub partial: bool,
    pub text: &'a [u8],
}

/// Parse one line of a CRI log file (with or without its newline). `None` for a line that
/// is not in the format.
pub fn parse_line(line: &[u8]) -> Option<Entry<'_>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time_text = std::str::from_utf8(parts.next()?).ok()?;
    let time: Timestamp = time_text.parse().ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    // Tags are `:`-separated; `P` is the only one defined.
    let tags = parts.next()?;
    let partial = tags.split(|&b| b == b':').any(|t| t == b"P");
    let text = parts.next().unwrap_or(b"");
    Some(Entry {
        time_text,
        time,
        stream,
        partial,
        text,
    })
}

/// Turns entries into output, tracking where lines start (for timestamps) and the byte limit.
#[derive(Debug)]
pub struct Renderer {
    timestamps: bool,
    at_line_start: bool,
    remaining: Option<u64>,
}

impl Renderer {
    pub fn new(options: &LogOptions) -> Renderer {
        Renderer {
            timestamps: options.timestamps,
            at_line_start: true,
            remaining: options.limit_bytes,
        }
    }

    /// Whether the byte limit has been reached.
    pub fn done(&self) -> bool {
        self.remaining == Some(0)
    }

    /// Append `entry`'s output to `out`.
    pub fn render(&mut self, entry: &Entry<'_>, out: &mut Vec<u8>) {
        let start = out.len();
        if self.timestamps && self.at_line_start {
            out.extend_from_slice(entry.time_text.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(entry.text);
        if !entry.partial {
            out.push(b'\n');
        }
        self.at_line_start = !entry.partial;
        if let Some(remaining) = &mut self.remaining {
            let written = (out.len() - start) as u64;
            if written >= *remaining {
                out.truncate(start + *remaining as usize);
                *remaining = 0;
            } else {
                *remaining -= written;
            }
        }
    }
}

/// Render a whole log text (tests and the simulated runtime).
pub fn render(text: &[u8], options: &LogOptions) -> Vec<u8> {
    let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    let start = tail_start(lines.iter().copied(), options);
    let mut renderer = Renderer::new(options);
    let mut out = Vec::new();
    for line in &lines[start..] {
        if renderer.done() {
            break;
        }
        if let Some(entry) = parse_line(line).filter(|e| selected(e, options)) {
            renderer.render(&entry, &mut out);
        }
    }
    out
}

fn selected(entry: &Entry<'_>, options: &LogOptions) -> bool {
    options.wants(entry.stream) && options.since.is_none_or(|since| entry.time >= since)
}

/// The index of the first line to show so that only the last `tail_lines` whole lines (a
/// run of partial entries and the entry that ends it count as one) of the selected entries
/// are shown; 0 without a tail.
fn tail_start<'a>(lines: impl Iterator<Item = &'a [u8]>, options: &LogOptions) -> usize {
    let Some(tail) = options.tail_lines else {
        return 0;
    };
    let mut starts: VecDeque<usize> = VecDeque::new();
    let mut line_open = false;
    let mut count = 0;
    for (i, line) in lines.enumerate() {
        count = i + 1;
        let Some(entry) = parse_line(line).filter(|e| selected(e, options)) else {
            continue;
        };
        if !line_open {
            starts.push_back(i);
            if starts.len() as u64 > tail {
                starts.pop_front();
            }
        }
        line_open = entry.partial;
    }
    if tail == 0 {
        return count;
    }
    starts.front().copied().unwrap_or(count)
}

/// Where the logs of attempts of a container are: `DIR/N.log`, the current one the highest N.
pub fn attempt_logs(container_dir: &Path) -> Vec<(u32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(container_dir) else {
        return Vec::new();
    };
    let mut logs: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let attempt = name.to_str()?.strip_suffix(".log")?.parse().ok()?;
            Some((attempt, e.path()))
        })
        .collect();
    logs.sort();
    logs
}

/// Whether a follower should keep waiting for more output.
pub trait Liveness: Send + Sync {
    /// Whether the container that writes the file still runs.
    fn running(&self) -> futures::future::BoxFuture<'_, bool>;
}

/// Send the file's log to `out` with `options`; when following, keep sending what the runtime
/// appends (and what it writes to a new file at `path` after a rotation) until `liveness`
/// says the container has exited and everything is sent. Returns when done or when the
/// receiver is gone.
pub async fn stream_file(
    path: &Path,
    options: &LogOptions,
    liveness: &dyn Liveness,
    out: mpsc::Sender<Bytes>,
) -> std::io::Result<()> {
    // With a tail, where it starts and how much of the file there was when it was counted: a
    // request that does not follow stops there, so lines written meanwhile do not lengthen it.
    let (start, limit) = if options.tail_lines.is_some() {
        let path = path.to_path_buf();
        let counted = options.clone();
        let (start, end) = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, u64)> {
            let text = std::fs::read(&path)?;
            let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
            let index = tail_start(lines.iter().copied(), &counted);
            let start = lines[..index].iter().map(|l| l.len() as u64).sum();
            Ok((start, text.len() as u64))
        })
        .await
        .map_err(std::io::Error::other)??;
        (start, (!options.follow).then(|| end - start))
    } else {
        (0, None)
    };
    let mut consumed: u64 = 0;
    let mut file = tokio::fs::File::open(path).await?;
    let mut inode = file.metadata().await?.ino();
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let mut reader = BufReader::with_capacity(CHUNK, file);
    let mut renderer = Renderer::new(options);
    let mut pending = Vec::new();
    let mut line = Vec::new();
    let mut last_exit_check: Option<tokio::time::Instant> = None;
    loop {
        let read = reader.read_until(b'\n', &mut line).await?;
        consumed += read as u64;
        if read > 0 && line.ends_with(b"\n") {
            if let Some(entry) = parse_line(&line).filter(|e| selected(e, options)) {
                renderer.render(&entry, &mut pending);
            }
            line.clear();
            if renderer.done() || limit.is_some_and(|l| consumed >= l) {
                break;
            }
            if pending.len() >= CHUNK
                && out
                    .send(Bytes::from(std::mem::take(&mut pending)))
                    .await
                    .is_err()
            {
                return Ok(());
            }
            continue;
        }
        // At the end of what is written so far (a line without its newline is still being
        // written and stays in `line`).
        if !pending.is_empty()
            && out
                .send(Bytes::from(std::mem::take(&mut pending)))
                .await
                .is_err()
        {
            return Ok(());
        }
        if !options.follow {
            break;
        }
        // A rotation renamed the file: finish it, then go on with the new one.
        if let Ok(meta) = tokio::fs::metadata(path).await {
            if meta.ino() != inode && line.is_empty() {
                let file = tokio::fs::File::open(path).await?;
                inode = file.metadata().await?.ino();
                reader = BufReader::with_capacity(CHUNK, file);
                continue;
            }
        }
        let now = tokio::time::Instant::now();
        if last_exit_check.is_none_or(|at| now - at >= EXIT_CHECK) {
            last_exit_check = Some(now);
            if !liveness.running().await {
                // One more pass: what was written before the exit.
                let more = reader.read_until(b'\n', &mut line).await?;
                if more == 0 {
                    break;
                }
                continue;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = out.closed() => return Ok(()),
        }
    }
    if !pending.is_empty() {
        let _ = out.send(Bytes::from(pending)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-01-01T00:00:01.000000001Z stdout F one
2026-01-01T00:00:02.5Z stderr F two
2026-01-01T00:00:03Z stdout P thr
2026-01-01T00:00:03.1Z stdout P e
2026-01-01T00:00:03.2Z stdout F e
2026-01-01T00:00:04Z stdout F 
2026-01-01T00:00:05Z stdout F five with  spaces
";

    fn options(query: &[(&str, &str)]) -> LogOptions {
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LogOptions::from_query(&query, "2026-01-01T00:00:10Z".parse().unwrap()).unwrap()
    }

    fn show(query: &[(&str, &str)]) -> String {
        String::from_utf8(render(LOG.as_bytes(), &options(query))).unwrap()
    }

    #[test]
    fn lines_parse_with_stream_tag_and_text() {
        let e = parse_line(b"2026-01-01T00:00:03Z stdout P thr\n").unwrap();
        assert_eq!(e.stream, "stdout");
        assert!(e.partial);
        assert_eq!(e.text, b"thr");
        let e = parse_line(b"2026-01-01T00:00:03Z stderr F a b  c").unwrap();
        assert_eq!(e.text, b"a b  c");
        assert!(!e.partial);
        assert_eq!(
            parse_line(b"2026-01-01T00:00:03Z stdout F").unwrap().text,
            b""
        );
        assert!(parse_line(b"garbage").is_none());
        assert!(parse_line(b"2026-01-01T00:00:03Z stdin F x").is_none());
    }

    #[test]
    fn partial_entries_join_into_one_line() {
        assert_eq!(show(&[]), "one\ntwo\nthree\n\nfive with  spaces\n");
    }

    #[test]
    fn timestamps_start_each_whole_line() {
        assert_eq!(
            show(&[("timestamps", "true"), ("tailLines", "3")]),
            "2026-01-01T00:00:03Z three\n2026-01-01T00:00:04Z \n2026-01-01T00:00:05Z five with  spaces\n"
        );
    }

    #[test]
    fn tail_counts_whole_lines() {
        assert_eq!(show(&[("tailLines", "1")]), "five with  spaces\n");
        assert_eq!(show(&[("tailLines", "3")]), "three\n\nfive with  spaces\n");
        assert_eq!(show(&[("tailLines", "0")]), "");
        assert_eq!(show(&[("tailLines", "100")]), show(&[]));
    }

    #[test]
    fn since_and_stream_filter_entries() {
        assert_eq!(
            show(&[("sinceTime", "2026-01-01T00:00:04Z")]),
            "\nfive with  spaces\n"
        );
        assert_eq!(show(&[("sinceSeconds", "6")]), "\nfive with  spaces\n");
        assert_eq!(show(&[("stream", "Stderr")]), "two\n");
        assert_eq!(
            show(&[("stream", "Stdout"), ("tailLines", "4")]),
            "one\nthree\n\nfive with  spaces\n"
        );
    }

    #[test]
    fn limit_bytes_cuts_the_output() {
        assert_eq!(show(&[("limitBytes", "6")]), "one\ntw");
    }

    struct Running(std::sync::Arc<std::sync::atomic::AtomicBool>);

    impl Liveness for Running {
        fn running(&self) -> futures::future::BoxFuture<'_, bool> {
            Box::pin(async move { self.0.load(std::sync::atomic::Ordering::SeqCst) })
        }
    }

    async fn read_until(rx: &mut mpsc::Receiver<Bytes>, seen: &mut String, wanted: &str) {
        let deadline = std::time::Duration::from_secs(10);
        tokio::time::timeout(deadline, async {
            while !seen.contains(wanted) {
                let chunk = rx.recv().await.expect("the stream ended early");
                seen.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {wanted:?} in {seen:?}"));
    }

    #[tokio::test]
    async fn following_reads_new_lines_across_a_rotation_until_the_container_exits() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let append = |text: &str| {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            file.write_all(text.as_bytes()).unwrap();
        };
        append("2026-01-01T00:00:01Z stdout F one\n");
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let liveness = Running(running.clone());
        let (tx, mut rx) = mpsc::channel(16);
        let follow = options(&[("follow", "true")]);
        let task_path = path.clone();
        let task = tokio::spawn(async move {
            stream_file(&task_path, &follow, &liveness, tx)
                .await
                .unwrap();
        });
        let mut seen = String::new();
        read_until(&mut rx, &mut seen, "one\n").await;
        // A line written in two parts, the second part later.
        append("2026-01-01T00:00:02Z stdout P tw");
        append("o\n2026-01-01T00:00:02Z stdout F !\n");
        read_until(&mut rx, &mut seen, "two!\n").await;
        // Rotated: the old file is renamed, the runtime writes a new one.
        std::fs::rename(&path, dir.path().join("0.log.20260101-000003")).unwrap();
        append("2026-01-01T00:00:03Z stderr F three\n");
        read_until(&mut rx, &mut seen, "three\n").await;
        append("2026-01-01T00:00:04Z stdout F four\n");
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .expect("the follower stops once the container has exited")
            .unwrap();
        while let Some(chunk) = rx.recv().await {
            seen.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        assert_eq!(seen, "one\ntwo!\nthree\nfour\n");
    }

    #[test]
    fn bad_options_are_rejected() {
        let now = Timestamp::now();
        let bad = |k: &str, v: &str| {
            LogOptions::from_query(&[(k.to_string(), v.to_string())], now).unwrap_err()
        };
        assert!(bad("tailLines", "-1").contains("tailLines"));
        assert!(bad("tailLines", "x").contains("tailLines"));
        assert!(bad("limitBytes", "0").contains("limitBytes"));
        assert!(bad("sinceSeconds", "0").contains("sinceSeconds"));
        assert!(bad("sinceTime", "yesterday").contains("sinceTime"));
        let both = [
            ("sinceSeconds".to_string(), "5".to_string()),
            ("sinceTime".to_string(), "2026-01-01T00:00:00Z".to_string()),
        ];
        assert!(LogOptions::from_query(&both, now).is_err());
    }
}
