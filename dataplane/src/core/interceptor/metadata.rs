//! A stream's metadata as chain members read it: a bounded, read-only snapshot of `key=value` lines, for the stream
//! itself, its publishing endpoint and its session; and a subscription's: its receiving endpoint's.
//!
//! Owns [`Metadata`], [`MetadataOf`] (whose text) and the bound [`MAX_METADATA_BYTES`] (per text). The control plane
//! builds a stream's snapshot from the three objects' key/value metadata ([`Metadata::from_objects`], off the hot
//! path) and hands it to the stream's worker (`Command::SetStreamMetadata`), again whenever one of the three changes;
//! the worker keeps it per stream and each chain call reads it through [`super::Context::metadata`]. A subscription's
//! snapshot holds only its subscriber's text ([`Metadata::of_subscriber`], `Command::SetSubscriptionMetadata`, kept
//! per subscription, read by its egress chain through [`super::Context::subscriber_metadata`]). A snapshot is
//! immutable and shared by reference count, so handing it to a call never allocates. Must never be built or changed
//! on the packet path.

use std::fmt;
use std::sync::Arc;

/// The longest text of one object, in bytes: the lines that do not fit are left out (see [`Metadata::from_pairs`]).
pub const MAX_METADATA_BYTES: usize = 4096;

/// Whose metadata a snapshot text is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataOf {
    /// The stream's own.
    Stream,
    /// The endpoint that publishes the stream.
    Publisher,
    /// The stream's session.
    Session,
    /// The endpoint that receives a subscription: only in a subscription's snapshot (read by its egress chain); a
    /// stream's snapshot has none.
    Subscriber,
}

/// The texts of one snapshot: a stream's first three, a subscription's the last.
#[derive(Default, PartialEq, Eq)]
pub(crate) struct Texts {
    stream: Box<str>,
    publisher: Box<str>,
    session: Box<str>,
    subscriber: Box<str>,
}

impl Texts {
    /// The text of `of`.
    #[inline]
    pub(crate) fn of(&self, of: MetadataOf) -> &str {
        match of {
            MetadataOf::Stream => &self.stream,
            MetadataOf::Publisher => &self.publisher,
            MetadataOf::Session => &self.session,
            MetadataOf::Subscriber => &self.subscriber,
        }
    }
}

/// A stream's metadata, with its publisher's and its session's: for each, `key=value` lines, each ended by `\n`, in
/// the order given (the control plane gives them sorted by key), at most [`MAX_METADATA_BYTES`] bytes. Empty: none
/// of the three has any.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata(Option<Arc<Texts>>);

impl Metadata {
    /// No metadata.
    pub const fn none() -> Metadata {
        Metadata(None)
    }

    /// The snapshot of the stream's `pairs` (its publisher and session have none): see [`Metadata::from_objects`].
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Metadata {
        Metadata::from_objects(pairs, [], [])
    }

    /// The snapshot of the stream's, its publisher's and its session's pairs. Each text holds its pairs in their
    /// order, one `key=value\n` line each, as long as it stays within [`MAX_METADATA_BYTES`]; the first line that
    /// would not fit ends it (it and every later pair are left out). A pair whose key is empty or holds `=`, or
    /// whose key or value holds a line break or a NUL, cannot be a line and is skipped.
    pub fn from_objects<'a, 'b, 'c>(
        stream: impl IntoIterator<Item = (&'a str, &'a str)>,
        publisher: impl IntoIterator<Item = (&'b str, &'b str)>,
        session: impl IntoIterator<Item = (&'c str, &'c str)>,
    ) -> Metadata {
        let texts = Texts {
            stream: lines(stream),
            publisher: lines(publisher),
            session: lines(session),
            subscriber: Box::default(),
        };
        Metadata::of_texts(texts)
    }

    /// A subscription's snapshot: the `pairs` of the endpoint that receives it, as [`Metadata::from_objects`] makes
    /// each text ([`MetadataOf::Subscriber`]; the other texts are empty).
    pub fn of_subscriber<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Metadata {
        Metadata::of_texts(Texts { subscriber: lines(pairs), ..Texts::default() })
    }

    fn of_texts(texts: Texts) -> Metadata {
        if texts == Texts::default() {
            return Metadata(None);
        }
        Metadata(Some(Arc::new(texts)))
    }

    /// The stream's text: `key=value\n` lines (empty when there is none).
    #[inline]
    pub fn text(&self) -> &str {
        self.text_of(MetadataOf::Stream)
    }

    /// The text of `of` (empty when there is none).
    #[inline]
    pub fn text_of(&self, of: MetadataOf) -> &str {
        self.0.as_deref().map_or("", |texts| texts.of(of))
    }

    /// True when none of its objects has metadata.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The value of `key` in the stream's metadata, if a line holds it (the first such line).
    pub fn value(&self, key: &str) -> Option<&str> {
        text_value(self.text(), key)
    }

    /// The value of `key` in the metadata of `of`.
    pub fn value_of(&self, of: MetadataOf, key: &str) -> Option<&str> {
        text_value(self.text_of(of), key)
    }

    /// The shared texts, for a host that keeps them across a call (a WebAssembly plugin's store): cloning them counts
    /// a reference, it never allocates.
    #[inline]
    pub(crate) fn shared(&self) -> Option<&Arc<Texts>> {
        self.0.as_ref()
    }
}

/// `pairs` as `key=value\n` lines within [`MAX_METADATA_BYTES`] (see [`Metadata::from_objects`]).
fn lines<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Box<str> {
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
    text.into_boxed_str()
}

/// The value of `key` in `text` (`key=value` lines): the rest of the first line that starts with `key=`.
pub fn text_value<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (stream, publisher, session) =
            (self.text(), self.text_of(MetadataOf::Publisher), self.text_of(MetadataOf::Session));
        let subscriber = self.text_of(MetadataOf::Subscriber);
        write!(
            f,
            "Metadata(stream {stream:?}, publisher {publisher:?}, session {session:?}, subscriber {subscriber:?})"
        )
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
    fn a_stream_its_publisher_and_its_session_each_have_their_own_text() {
        let metadata = Metadata::from_objects([("app.user", "ana")], [("app.muted", "1")], [("app.room", "r1")]);
        assert_eq!(metadata.text(), "app.user=ana\n", "text() is the stream's");
        assert_eq!(metadata.text_of(MetadataOf::Stream), "app.user=ana\n");
        assert_eq!(metadata.text_of(MetadataOf::Publisher), "app.muted=1\n");
        assert_eq!(metadata.value_of(MetadataOf::Session, "app.room"), Some("r1"));
        assert_eq!(metadata.value("app.muted"), None, "the publisher's keys are not the stream's");
        let only_session = Metadata::from_objects([], [], [("app.muted", "1")]);
        assert!(!only_session.is_empty(), "a snapshot with one object's metadata is not empty");
        assert_eq!(only_session.text(), "");
        assert!(Metadata::from_objects([], [], []).is_empty());
        // Each text has its own bound.
        let value = "v".repeat(MAX_METADATA_BYTES - 8);
        let full = Metadata::from_objects([("a.b", value.as_str())], [("a.b", value.as_str())], []);
        assert_eq!(full.text().len() + full.text_of(MetadataOf::Publisher).len(), 2 * (MAX_METADATA_BYTES - 3));
    }

    #[test]
    fn a_subscriptions_snapshot_holds_its_subscribers_text_only() {
        let metadata = Metadata::of_subscriber([("app.muted", "1")]);
        assert_eq!(metadata.text_of(MetadataOf::Subscriber), "app.muted=1\n");
        assert_eq!(metadata.value_of(MetadataOf::Subscriber, "app.muted"), Some("1"));
        assert_eq!((metadata.text(), metadata.text_of(MetadataOf::Publisher)), ("", ""));
        assert!(Metadata::of_subscriber([]).is_empty());
        let stream = Metadata::from_objects([("a.b", "1")], [("a.b", "2")], [("a.b", "3")]);
        assert_eq!(stream.text_of(MetadataOf::Subscriber), "", "a stream's snapshot has no subscriber");
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
