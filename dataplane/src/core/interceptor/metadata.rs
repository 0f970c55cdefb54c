//! A stream's metadata as chain members read it: a bounded, read-only snapshot of `key=value` lines.
//!
//! Owns [`Metadata`] and its bound [`MAX_METADATA_BYTES`]. The control plane builds a snapshot from the stream's
//! key/value metadata ([`Metadata::from_pairs`], off the hot path) and hands it to the stream's worker
//! (`Command::SetStreamMetadata`); the worker keeps it per stream and each chain call reads it through
//! [`super::Context::metadata`]. A snapshot is immutable and shared by reference count, so handing it to a call
//! never allocates. Must never be built or changed on the packet path.

use std::fmt;
use std::sync::Arc;

/// The longest snapshot text, in bytes: the lines that do not fit are left out (see [`Metadata::from_pairs`]).
pub const MAX_METADATA_BYTES: usize = 4096;

/// A stream's metadata: `key=value` lines, each ended by `\n`, in the order given (the control plane gives them
/// sorted by key), at most [`MAX_METADATA_BYTES`] bytes. Empty: the stream has none.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata(Option<Arc<str>>);

impl Metadata {
    /// No metadata.
    pub const fn none() -> Metadata {
        Metadata(None)
    }

    /// The snapshot of `pairs`, in their order: one `key=value\n` line each, as long as the text stays within
    /// [`MAX_METADATA_BYTES`]; the first line that would not fit ends it (it and every later pair are left out).
    /// A pair whose key is empty or holds `=`, or whose key or value holds a line break or a NUL, cannot be a line
    /// and is skipped.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Metadata {
        let mut text = String::new();
        for (key, value) in pairs {
            let breaks = |s: &str| s.contains(['\n', '\r', '\0']);
            if key.is_empty() || key.contains('=') || breaks(key) || breaks(value) {
                continue;
            }
            if text.len() + key.len() + value.len() + 2 > MAX_METADATA_BYTES {
                break;
            }
            text.push_str(key);
            text.push('=');
            text.push_str(value);
            text.push('\n');
        }
        if text.is_empty() {
            return Metadata(None);
        }
        Metadata(Some(Arc::from(text)))
    }

    /// The text: `key=value\n` lines (empty when there is none).
    #[inline]
    pub fn text(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// True when the stream has no metadata.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The value of `key`, if a line holds it (the first such line).
    pub fn value(&self, key: &str) -> Option<&str> {
        text_value(self.text(), key)
    }

    /// The shared text, for a host that keeps it across a call (a WebAssembly plugin's store): cloning it counts a
    /// reference, it never allocates.
    #[inline]
    pub(crate) fn shared(&self) -> Option<&Arc<str>> {
        self.0.as_ref()
    }
}

/// The value of `key` in `text` (`key=value` lines): the rest of the first line that starts with `key=`.
pub fn text_value<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metadata({:?})", self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_in_order_and_values_by_key() {
        let metadata = Metadata::from_pairs([("app.muted", "1"), ("app.user", "ana=b"), ("app.empty", "")]);
        assert_eq!(metadata.text(), "app.muted=1\napp.user=ana=b\napp.empty=\n");
        assert_eq!(metadata.value("app.muted"), Some("1"));
        assert_eq!(metadata.value("app.user"), Some("ana=b"));
        assert_eq!(metadata.value("app.empty"), Some(""));
        assert_eq!(metadata.value("app"), None, "a prefix of a key is not the key");
        assert_eq!(metadata.value("app.missing"), None);
        assert!(Metadata::from_pairs([]).is_empty());
        assert_eq!(Metadata::none().text(), "");
    }

    #[test]
    fn pairs_that_cannot_be_lines_are_skipped() {
        let metadata = Metadata::from_pairs([("a.b", "x\ny"), ("a=b", "1"), ("", "1"), ("a.c", "2")]);
        assert_eq!(metadata.text(), "a.c=2\n");
        assert!(Metadata::from_pairs([("a.b", "x\ry")]).is_empty());
    }

    #[test]
    fn the_lines_that_fit_are_kept_whole() {
        // Each line is 1024 bytes: "k.N=" (4) + 1019 bytes + "\n".
        let value = "v".repeat(1019);
        let keys = ["k.1", "k.2", "k.3", "k.4", "k.5"];
        let metadata = Metadata::from_pairs(keys.iter().map(|k| (*k, value.as_str())));
        assert_eq!(metadata.text().len(), MAX_METADATA_BYTES);
        assert_eq!(metadata.text().lines().count(), 4);
        assert_eq!(metadata.value("k.5"), None, "the line that does not fit is left out");
        let one_more = "v".repeat(MAX_METADATA_BYTES);
        let metadata = Metadata::from_pairs([("k.1", value.as_str()), ("k.2", one_more.as_str()), ("k.3", "1")]);
        assert_eq!(metadata.text().lines().count(), 1, "the first line that does not fit ends the snapshot");
        assert!(metadata.text().ends_with('\n'));
    }
}
