//! Owned text and bytes without an allocation per invitation: [`Text`], a
//! string sharing a buffer, and the [`Arena`] the driver copies what the
//! agent lends into.

use std::borrow::Borrow;
use std::sync::{Mutex, PoisonError};

use bytes::{Bytes, BytesMut};

/// An owned, immutable UTF-8 string that shares its buffer: cloning it is
/// a reference count, and the driver makes it from a buffer allocated once
/// and recycled, so handing one out costs no allocation in steady state.
///
/// It reads like a `&str` (it dereferences to one, compares with `str`,
/// `&str` and `String`, and displays as the text); [`as_str`](Self::as_str)
/// and `String::from` convert.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Text(Bytes);

/// Hashes as the `str` it is, as [`Borrow<str>`] requires (`Bytes` hashes
/// as a `[u8]`, with its length first), so a `HashMap<Text, _>` can be
/// looked up by `&str`.
impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Text {
    /// The empty text (no allocation).
    #[must_use]
    pub const fn new() -> Self {
        Text(Bytes::new())
    }

    /// A text borrowing a `'static` string (no allocation).
    #[must_use]
    pub const fn from_static(s: &'static str) -> Self {
        Text(Bytes::from_static(s.as_bytes()))
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Every constructor takes a `str`: the bytes are UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The UTF-8 bytes, sharing the buffer.
    #[must_use]
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Text {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for Text {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.as_str().as_ref()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self.as_str(), f)
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for Text {
    /// Copies `s` into a buffer of its own (one allocation unless empty).
    fn from(s: &str) -> Self {
        Text(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Text {
    /// Takes `s`'s buffer.
    fn from(s: String) -> Self {
        Text(Bytes::from(s.into_bytes()))
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.as_str().to_owned()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

/// Bytes reserved at once for copies of what the agent lends (messages,
/// data, contact names, reasons): the core's largest body (a 1,020-byte
/// message and 16 KiB of data) four times over, its default body buffers.
pub const ARENA_BYTES: usize = 4 * (16 * 1024 + 1024);

/// Where owned copies of lent text and bytes are cut from: one buffer,
/// allocated when the driver is made, cut into shared pieces ([`Bytes`],
/// [`Text`]) and reclaimed whole once every piece cut from it was dropped.
/// An application that keeps pieces while the buffer runs out costs one
/// new buffer (the old one is freed with its last piece). Empty copies
/// cost nothing.
#[derive(Debug)]
pub struct Arena {
    buf: Mutex<BytesMut>,
    capacity: usize,
}

impl Arena {
    /// An arena of `capacity` bytes, allocated now.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(capacity);
        // Share the buffer now (one allocation), so the first cut does not.
        drop(buf.split());
        Arena { buf: Mutex::new(buf), capacity }
    }

    /// A shared copy of `bytes`.
    pub fn bytes(&self, bytes: &[u8]) -> Bytes {
        if bytes.is_empty() {
            return Bytes::new();
        }
        if bytes.len() > self.capacity {
            return Bytes::copy_from_slice(bytes);
        }
        let mut buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        if buf.capacity() < bytes.len() && !buf.try_reclaim(self.capacity) {
            // Pieces of the old buffer are still held: a fresh buffer.
            *buf = BytesMut::with_capacity(self.capacity);
        }
        buf.extend_from_slice(bytes);
        buf.split().freeze()
    }

    /// A shared copy of `s`.
    pub fn text(&self, s: &str) -> Text {
        Text(self.bytes(s.as_bytes()))
    }
}

impl Default for Arena {
    fn default() -> Self {
        Self::new(ARENA_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_compares_and_displays_like_a_str() {
        let t = Text::from("join me");
        assert_eq!(t, "join me");
        assert_eq!("join me", t);
        assert_eq!(t, String::from("join me"));
        assert_eq!(t.as_str(), "join me");
        assert_eq!(&t[..4], "join");
        assert_eq!(format!("{t} {t:?}"), "join me \"join me\"");
        assert_eq!(String::from(t.clone()), "join me");
        assert!(Text::new().is_empty());
        assert_eq!(Text::from_static("x"), "x");
    }

    #[test]
    fn a_map_keyed_by_text_is_found_by_str() {
        let mut names = std::collections::HashMap::new();
        names.insert(Text::from("alice"), 1);
        assert_eq!(names.get("alice"), Some(&1));
        let set: std::collections::BTreeSet<Text> = [Text::from("b"), Text::from("a")].into();
        assert!(set.contains("a"));
    }

    #[test]
    fn the_arena_is_reclaimed_once_every_piece_is_dropped() {
        let arena = Arena::new(64);
        let first = arena.bytes(&[1; 40]);
        let ptr = first.as_ptr();
        drop(first);
        // 40 + 40 > 64: the buffer is reclaimed, the same memory reused.
        let second = arena.bytes(&[2; 40]);
        assert_eq!(second.as_ptr(), ptr);
        assert_eq!(&second[..], &[2; 40]);
        // Held: the next cut that does not fit takes a fresh buffer.
        let third = arena.bytes(&[3; 40]);
        assert_ne!(third.as_ptr(), ptr);
        assert_eq!(&second[..], &[2; 40]);
        assert_eq!(arena.text("é").as_str(), "é");
        assert_eq!(arena.bytes(&[]).len(), 0);
        assert_eq!(arena.bytes(&[9; 100]).len(), 100);
    }
}
