//! The frames of one execution, by path: the table the core looks a machine up in at every
//! step of every state (`""` for the top level, `"<parent>/<state>/<branch or item>"` below it),
//! ordered so that a frame's children follow it.
//!
//! Two things make it cheaper than a plain `BTreeMap<String, Frame>`, measured on the
//! interpreter benchmarks: frames are boxed, so a step that takes its frame out and puts it
//! back moves a pointer instead of the frame; and paths compare byte by byte here instead of
//! through libc's `memcmp`, whose vector variants cost far more than the comparison of the
//! short paths the core looks up (on the project's 2-core EPYC VM they took over half of a
//! Pass state's time).

use super::core::Frame;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;

#[derive(Debug, Clone, Default)]
pub struct Frames(BTreeMap<Key, Box<Frame>>);

/// A path as a map key, ordered as `str` is (bytewise), compared without libc.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key(String);

/// The borrowed form of [`Key`], for lookups by `&str`.
#[derive(Debug, PartialEq, Eq)]
#[repr(transparent)]
struct KeyStr(str);

impl KeyStr {
    fn new(s: &str) -> &KeyStr {
        // SAFETY: KeyStr is a transparent wrapper of str.
        unsafe { &*(s as *const str as *const KeyStr) }
    }
}

/// Orders byte strings as `str` does, compared in Rust rather than through libc's `memcmp`.
pub(crate) fn bytewise(a: &[u8], b: &[u8]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.cmp(y) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    a.len().cmp(&b.len())
}

impl Ord for KeyStr {
    fn cmp(&self, other: &KeyStr) -> Ordering {
        bytewise(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl PartialOrd for KeyStr {
    fn partial_cmp(&self, other: &KeyStr) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> Ordering {
        Borrow::<KeyStr>::borrow(self).cmp(other.borrow())
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Borrow<KeyStr> for Key {
    fn borrow(&self) -> &KeyStr {
        KeyStr::new(&self.0)
    }
}

impl Frames {
    pub fn get(&self, path: &str) -> Option<&Frame> {
        self.0.get(KeyStr::new(path)).map(|b| &**b)
    }

    pub fn get_mut(&mut self, path: &str) -> Option<&mut Frame> {
        self.0.get_mut(KeyStr::new(path)).map(|b| &mut **b)
    }

    pub fn contains_key(&self, path: &str) -> bool {
        self.0.contains_key(KeyStr::new(path))
    }

    /// Takes a frame out (boxed, so putting it back with [`Frames::insert`] moves a pointer).
    pub fn remove(&mut self, path: &str) -> Option<Box<Frame>> {
        self.0.remove(KeyStr::new(path))
    }

    pub fn insert(&mut self, path: String, frame: impl Into<Box<Frame>>) {
        self.0.insert(Key(path), frame.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn values(&self) -> impl Iterator<Item = &Frame> {
        self.0.values().map(|b| &**b)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Frame)> {
        self.0.iter().map(|(k, f)| (k.0.as_str(), &**f))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(|k| k.0.as_str())
    }

    /// The frames whose paths start with `prefix`, in order.
    pub fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a Frame)> {
        self.0
            .range::<KeyStr, _>((Bound::Included(KeyStr::new(prefix)), Bound::Unbounded))
            .take_while(move |(k, _)| k.0.starts_with(prefix))
            .map(|(k, f)| (k.0.as_str(), &**f))
    }

    /// The paths that start with `prefix`, in order.
    pub fn paths_under(&self, prefix: &str) -> Vec<String> {
        self.under(prefix).map(|(k, _)| k.to_string()).collect()
    }
}

impl FromIterator<(String, Frame)> for Frames {
    fn from_iter<I: IntoIterator<Item = (String, Frame)>>(iter: I) -> Frames {
        Frames(iter.into_iter().map(|(k, f)| (Key(k), Box::new(f))).collect())
    }
}

impl Serialize for Frames {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Frames {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Frames, D::Error> {
        Ok(BTreeMap::<String, Frame>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_order_as_strings_do() {
        let mut paths = ["", "3/0", "3/0/5/1", "3/1", "3/10", "12/0", "3/0/5/0", "é/0", "3"];
        let mut ours: Vec<super::Key> = paths.iter().map(|p| super::Key(p.to_string())).collect();
        ours.sort();
        paths.sort();
        assert_eq!(ours.iter().map(|k| k.0.as_str()).collect::<Vec<_>>(), paths);
    }
}
