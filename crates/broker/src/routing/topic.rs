//! Topic matching through a trie of binding-key words.
//!
//! Semantics follow RabbitMQ's `rabbit_exchange_type_topic`: keys split on
//! `.` (an empty key has zero words, `a..b` has an empty middle word), `*`
//! matches exactly one word and `#` zero or more. Matching walks only the
//! trie paths the routing key can take; `#` branches are memoised by
//! (node, position) in a hash set, and a `#` that already swallowed up to
//! position p has necessarily tried every later position too, so each
//! (`#` node, position) pair is expanded once. Every node then sits at a
//! fixed depth below its nearest `#` ancestor (or the root), so it is
//! visited at most once per position, and the work, counted as visits plus
//! `#`-loop iterations (each either a new pair or the one stop per visit),
//! is at most 3 × (trie nodes) × (words + 1), whatever the patterns (a
//! 128-`#` binding against a 128-word key is a few thousand steps, not
//! billions).

use ahash::{AHashMap, AHashSet};
use bytes::Bytes;

use super::Binding;

/// Splits a key into words exactly as RabbitMQ does.
pub fn split_words(key: &[u8]) -> Vec<&[u8]> {
    if key.is_empty() {
        Vec::new()
    } else {
        key.split(|&b| b == b'.').collect()
    }
}

#[derive(Debug, Default)]
struct Node {
    children: AHashMap<Bytes, Node>,
    star: Option<Box<Node>>,
    hash: Option<Box<Node>>,
    bindings: Vec<Binding>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.star.is_none()
            && self.hash.is_none()
            && self.bindings.is_empty()
    }
}

#[derive(Debug, Default)]
pub struct TopicIndex {
    root: Node,
}

impl TopicIndex {
    pub fn insert(&mut self, binding: Binding) {
        let key = binding.routing_key.bytes().clone();
        let mut node = &mut self.root;
        for word in split_words(&key) {
            node = match word {
                b"*" => node.star.get_or_insert_with(Default::default),
                b"#" => node.hash.get_or_insert_with(Default::default),
                w => node.children.entry(key.slice_ref(w)).or_default(),
            };
        }
        node.bindings.push(binding);
    }

    /// Removes a binding equal to `binding`; returns whether one was found.
    pub fn remove(&mut self, binding: &Binding) -> bool {
        let key = binding.routing_key.bytes().clone();
        let words = split_words(&key);
        remove_at(&mut self.root, &words, binding)
    }

    /// Appends every binding whose pattern matches `routing_key` (a binding
    /// reachable twice is appended once per path; callers dedupe targets).
    pub fn matches<'a>(&'a self, routing_key: &[u8], out: &mut Vec<&'a Binding>) {
        self.matches_counting(routing_key, out);
    }

    /// [`matches`](Self::matches), returning how many trie visits it took
    /// (tests bound the work on adversarial patterns with it).
    pub fn matches_counting<'a>(&'a self, routing_key: &[u8], out: &mut Vec<&'a Binding>) -> usize {
        let words = split_words(routing_key);
        let mut walk = Walk {
            words: &words,
            seen: AHashSet::new(),
            steps: 0,
        };
        collect(&self.root, 0, out, &mut walk);
        walk.steps
    }
}

fn remove_at(node: &mut Node, words: &[&[u8]], binding: &Binding) -> bool {
    let Some((first, rest)) = words.split_first() else {
        let before = node.bindings.len();
        node.bindings.retain(|b| !b.same(binding));
        return node.bindings.len() != before;
    };
    match *first {
        b"*" | b"#" => {
            let slot = if *first == b"*" {
                &mut node.star
            } else {
                &mut node.hash
            };
            let Some(child) = slot.as_mut() else {
                return false;
            };
            let found = remove_at(child, rest, binding);
            if child.is_empty() {
                *slot = None;
            }
            found
        }
        w => {
            let Some(child) = node.children.get_mut(w) else {
                return false;
            };
            let found = remove_at(child, rest, binding);
            if child.is_empty() {
                node.children.remove(w);
            }
            found
        }
    }
}

/// One match's state: the key's words, the `#` entries made, the work.
struct Walk<'k> {
    words: &'k [&'k [u8]],
    seen: AHashSet<(usize, usize)>,
    steps: usize,
}

fn collect<'a>(node: &'a Node, pos: usize, out: &mut Vec<&'a Binding>, walk: &mut Walk<'_>) {
    walk.steps += 1;
    let words = walk.words;
    if pos == words.len() {
        out.extend(node.bindings.iter());
    } else {
        if let Some(child) = node.children.get(words[pos]) {
            collect(child, pos + 1, out, walk);
        }
        if let Some(star) = &node.star {
            collect(star, pos + 1, out, walk);
        }
    }
    if let Some(hash) = &node.hash {
        // `#` swallows words pos..p for every p, including none.
        // Entered before at some position q <= p: that entry went on to
        // every later position, so the rest is done.
        let id = &**hash as *const Node as usize;
        for p in pos..=words.len() {
            walk.steps += 1;
            if !walk.seen.insert((id, p)) {
                break;
            }
            collect(hash, p, out, walk);
        }
    }
}

/// A direct, obviously-correct matcher: the reference for property tests.
pub fn reference_match(pattern: &[u8], key: &[u8]) -> bool {
    fn go(p: &[&[u8]], k: &[&[u8]]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&b"#", rest)) => (0..=k.len()).any(|i| go(rest, &k[i..])),
            Some((&b"*", rest)) => !k.is_empty() && go(rest, &k[1..]),
            Some((w, rest)) => k.first() == Some(w) && go(rest, &k[1..]),
        }
    }
    go(&split_words(pattern), &split_words(key))
}
