//! Finds where a field path (`cluster.nodes[1].hugepages2Mi`) stands in the
//! YAML text, so checks made after parsing can still point at a line.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Every path of a YAML document with its line and column.
pub struct SpanIndex {
    positions: HashMap<String, (usize, usize)>,
}

impl SpanIndex {
    pub fn build(text: &str) -> SpanIndex {
        let mut positions = HashMap::new();
        if let Ok(root) = serde_saphyr::from_str::<Spanned<Tree>>(text) {
            collect(&root, String::new(), &mut positions);
        }
        SpanIndex { positions }
    }

    /// The position of `path`, else of its nearest ancestor that exists
    /// (a missing field is reported where its parent is), else 1:1.
    pub fn find(&self, path: &str) -> (usize, usize) {
        let mut candidate = path.to_string();
        loop {
            if let Some(position) = self.positions.get(&candidate) {
                return *position;
            }
            match candidate.rfind(['.', '[']) {
                Some(cut) => candidate.truncate(cut),
                None => return (1, 1),
            }
        }
    }
}

fn collect(node: &Spanned<Tree>, path: String, out: &mut HashMap<String, (usize, usize)>) {
    out.insert(path.clone(), (node.referenced.line() as usize, node.referenced.column() as usize));
    match &node.value {
        Tree::Map(entries) => {
            for (key, value) in entries {
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                collect(value, child, out);
            }
        }
        Tree::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                collect(item, format!("{path}[{i}]"), out);
            }
        }
        Tree::Leaf => {}
    }
}

/// A YAML document's shape with a position on every value.
enum Tree {
    Map(Vec<(String, Spanned<Tree>)>),
    Seq(Vec<Spanned<Tree>>),
    Leaf,
}

/// A mapping key of any scalar type, as text.
struct Key(String);

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<Key, E> {
                Ok(Key(String::new()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

impl<'de> de::Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TreeVisitor;
        impl<'de> Visitor<'de> for TreeVisitor {
            type Value = Tree;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
                let mut entries = Vec::new();
                while let Some(Key(key)) = map.next_key()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Tree::Map(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Tree::Seq(items))
            }
            fn visit_str<E>(self, _: &str) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_unit<E>(self) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_none<E>(self) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
        }
        deserializer.deserialize_any(TreeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fields_items_and_falls_back_to_the_parent() {
        let text = "cluster:\n  provider: kind\n  nodes:\n    - role: worker\n      hugepages2Mi: 12\n";
        let index = SpanIndex::build(text);
        assert_eq!(index.find("cluster.provider"), (2, 13));
        assert_eq!(index.find("cluster.nodes[0].hugepages2Mi"), (5, 21));
        assert_eq!(index.find("cluster.nodes[0].labels"), (4, 7));
        assert_eq!(index.find("nowhere"), (1, 1));
    }
}
