//! The directory source: every `*.yaml` / `*.yml` under a folder, multi-document, hot-reloaded.
//!
//! Each reload re-reads the files and re-parses only those whose bytes changed. A file that is
//! not valid YAML keeps serving the objects it had last time it was good, so a half-saved edit
//! never removes config.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::SourceError;
use super::document;
use crate::object::{ObjectKey, Origin, RawObject};

/// Resolves `${VAR}` references (the process environment by default).
pub type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The objects and errors of a folder at one point in time.
#[derive(Debug, Default, Clone)]
pub struct DirView {
    pub objects: BTreeMap<ObjectKey, RawObject>,
    pub errors: Vec<SourceError>,
}

#[derive(Debug)]
struct FileState {
    hash: u64,
    objects: Vec<RawObject>,
    errors: Vec<SourceError>,
}

/// Reads a folder of manifests, remembering each file's last good parse.
pub struct DirSource {
    root: PathBuf,
    files: HashMap<PathBuf, FileState>,
    lookup: Lookup,
}

impl DirSource {
    /// A source over `root` that resolves `${VAR}` from the process environment.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_lookup(root, Box::new(|name| std::env::var(name).ok()))
    }

    /// A source with its own variable lookup (tests, or `--env-file`).
    pub fn with_lookup(root: impl Into<PathBuf>, lookup: Lookup) -> Self {
        DirSource {
            root: root.into(),
            files: HashMap::new(),
            lookup,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Re-reads the folder and returns what it holds now.
    pub fn load(&mut self) -> std::io::Result<DirView> {
        let mut paths = Vec::new();
        collect_yaml_files(&self.root, &mut paths)?;
        paths.sort();
        let mut seen = HashMap::with_capacity(paths.len());
        for path in &paths {
            let text = match std::fs::read(path) {
                Ok(bytes) => bytes,
                // Removed between the listing and the read: treat as gone.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            let hash = xxhash_rust::xxh3::xxh3_64(&text);
            seen.insert(path.clone(), ());
            if self.files.get(path).is_some_and(|f| f.hash == hash) {
                continue;
            }
            let state = self.parse_file(path, &text, hash);
            self.files.insert(path.clone(), state);
        }
        self.files.retain(|path, _| seen.contains_key(path));
        Ok(self.view(&paths))
    }

    fn parse_file(&self, path: &Path, bytes: &[u8], hash: u64) -> FileState {
        let display = path.strip_prefix(&self.root).unwrap_or(path);
        let Ok(text) = std::str::from_utf8(bytes) else {
            let origin = Origin {
                file: display.to_path_buf(),
                doc: 0,
            };
            let error = SourceError {
                origin,
                object: None,
                message: "file is not UTF-8".into(),
            };
            return self.keep_last_good(path, hash, vec![error]);
        };
        let parsed = document::parse(display, text, &*self.lookup);
        if parsed.file_error {
            return self.keep_last_good(path, hash, parsed.errors);
        }
        FileState {
            hash,
            objects: parsed.objects,
            errors: parsed.errors,
        }
    }

    fn keep_last_good(&self, path: &Path, hash: u64, mut errors: Vec<SourceError>) -> FileState {
        let objects = self
            .files
            .get(path)
            .map(|f| f.objects.clone())
            .unwrap_or_default();
        if !objects.is_empty() {
            for error in &mut errors {
                error
                    .message
                    .push_str("; the file's last good objects keep serving");
            }
        }
        FileState {
            hash,
            objects,
            errors,
        }
    }

    fn view(&self, paths: &[PathBuf]) -> DirView {
        let mut view = DirView::default();
        for path in paths {
            let Some(state) = self.files.get(path) else {
                continue;
            };
            view.errors.extend(state.errors.iter().cloned());
            for object in &state.objects {
                match view.objects.get(&object.key) {
                    Some(first) => view.errors.push(duplicate(object, first)),
                    None => {
                        view.objects.insert(object.key.clone(), object.clone());
                    }
                }
            }
        }
        view
    }
}

fn duplicate(object: &RawObject, first: &RawObject) -> SourceError {
    let first_at = first
        .origin
        .as_ref()
        .map(|o| o.to_string())
        .unwrap_or_default();
    SourceError {
        origin: object.origin.clone().unwrap_or(Origin {
            file: PathBuf::new(),
            doc: 0,
        }),
        object: Some(object.key.to_string()),
        message: format!("duplicate object: already defined in {first_at}; this copy is ignored"),
    }
}

fn collect_yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue; // editor swap files, .git
        }
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            collect_yaml_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Watches `root` recursively and sends `()` after each burst of file events (coalesced: a
/// receiver that lags sees one wake-up). The returned watcher must be kept alive.
pub fn watch(root: &Path) -> notify::Result<(notify::RecommendedWatcher, mpsc::Receiver<()>)> {
    let (tx, rx) = mpsc::channel(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(event) => !matches!(event.kind, notify::EventKind::Access(_)),
            Err(_) => true,
        };
        if relevant {
            // Full means a wake-up is already pending, which covers this event too.
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok((watcher, rx))
}

/// Waits until events stop arriving for `quiet`, or `max` has passed since the first one.
pub async fn settle(rx: &mut mpsc::Receiver<()>, quiet: Duration, max: Duration) {
    let deadline = tokio::time::Instant::now() + max;
    loop {
        let wait = quiet.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(())) if tokio::time::Instant::now() < deadline => continue,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Kind;

    const BACKEND: &str = "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata: {name: b}\nspec: {endpoints: [{ip: {address: 127.0.0.1, port: 1}}]}\n";

    fn source(dir: &Path) -> DirSource {
        DirSource::with_lookup(dir, Box::new(|_| None))
    }

    #[test]
    fn objects_are_read_recursively_and_hidden_files_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("sub/a.yml"), BACKEND).expect("write");
        std::fs::write(dir.path().join(".a.yaml.swp"), "garbage: [").expect("write");
        std::fs::write(dir.path().join("notes.txt"), "kind: nothing").expect("write");
        let view = source(dir.path()).load().expect("load");
        assert!(view.errors.is_empty(), "{:?}", view.errors);
        assert_eq!(
            view.objects.keys().next(),
            Some(&ObjectKey::new(Kind::Backend, "default", "b"))
        );
    }

    #[test]
    fn a_broken_edit_keeps_the_files_last_good_objects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, BACKEND).expect("write");
        let mut source = source(dir.path());
        assert_eq!(source.load().expect("load").objects.len(), 1);
        std::fs::write(&file, "apiVersion: [oops").expect("write");
        let view = source.load().expect("load");
        assert_eq!(view.objects.len(), 1, "last good object kept");
        assert_eq!(view.errors.len(), 1);
        assert!(
            view.errors[0].to_string().contains("a.yaml"),
            "{}",
            view.errors[0]
        );
        assert!(view.errors[0].message.contains("last good"));
    }

    #[test]
    fn deleting_a_file_removes_its_objects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, BACKEND).expect("write");
        let mut source = source(dir.path());
        source.load().expect("load");
        std::fs::remove_file(&file).expect("rm");
        assert!(source.load().expect("load").objects.is_empty());
    }

    #[test]
    fn duplicate_objects_keep_the_first_and_name_both_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.yaml"), BACKEND).expect("write");
        std::fs::write(dir.path().join("b.yaml"), BACKEND).expect("write");
        let view = source(dir.path()).load().expect("load");
        assert_eq!(view.objects.len(), 1);
        let first = view
            .objects
            .values()
            .next()
            .and_then(|o| o.origin.clone())
            .expect("origin");
        assert_eq!(first.file, PathBuf::from("a.yaml"));
        let message = view.errors[0].to_string();
        assert!(
            message.contains("b.yaml") && message.contains("a.yaml"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn file_changes_wake_the_watcher() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_watcher, mut rx) = watch(dir.path()).expect("watch");
        std::fs::write(dir.path().join("a.yaml"), BACKEND).expect("write");
        let woke = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(woke.expect("event within 5s"), Some(()));
    }
}
