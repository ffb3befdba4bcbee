//! Digests: file contents (streamed, large files in parallel), canonical JSON, and the
//! domain-separated field hasher the phase key is built with.

use std::path::Path;

use crate::error::{CacheError, Result};

/// Files at least this large are hashed with blake3's multi-threaded mmap path.
const PARALLEL_FILE: u64 = 1 << 22;

/// The BLAKE3 digest of a file's contents, as 64 hex digits. Memory stays bounded: small
/// files are read, large ones memory-mapped (blake3 falls back to reading when it cannot map).
pub fn file_digest(path: &Path, size: u64) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    let hashed = if size >= PARALLEL_FILE {
        hasher.update_mmap_rayon(path)
    } else {
        hasher.update_mmap(path)
    };
    hashed.map_err(CacheError::io("read (to hash)", path))?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// The digest of a JSON value in canonical form (object keys sorted, as serde_json's default
/// map keeps them, no whitespace).
pub fn json_digest(value: &serde_json::Value) -> String {
    let mut hasher = blake3::Hasher::new_derive_key("milo-cache json v1");
    // serde_json's Map is a BTreeMap without the preserve_order feature, so the text is
    // canonical; writing into the hasher never fails.
    let text = canonical_json(value);
    hasher.update(text.as_bytes());
    hasher.finalize().to_hex().to_string()
}

fn canonical_json(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// The digest of a secret-ish value (an environment variable): only this is ever stored.
pub fn value_digest(domain: &str, value: &[u8]) -> String {
    let mut h = FieldHasher::new("milo-cache value v1");
    h.field(domain, value);
    h.finish()
}

/// A hasher of tagged, length-prefixed fields: `field("a", "bc")` and `field("ab", "c")`
/// never collide, nor do any two different sequences of fields.
pub struct FieldHasher(blake3::Hasher);

impl FieldHasher {
    /// A hasher for one purpose (the context string separates domains).
    pub fn new(context: &str) -> Self {
        FieldHasher(blake3::Hasher::new_derive_key(context))
    }

    /// Adds one field.
    pub fn field(&mut self, tag: &str, value: impl AsRef<[u8]>) -> &mut Self {
        let value = value.as_ref();
        self.0.update(&(tag.len() as u64).to_le_bytes());
        self.0.update(tag.as_bytes());
        self.0.update(&(value.len() as u64).to_le_bytes());
        self.0.update(value);
        self
    }

    /// The digest, as 64 hex digits.
    pub fn finish(&self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_separated() {
        let mut a = FieldHasher::new("t");
        a.field("a", "bc");
        let mut b = FieldHasher::new("t");
        b.field("ab", "c");
        assert_ne!(a.finish(), b.finish());
        let mut c = FieldHasher::new("t");
        c.field("a", "b").field("c", "");
        let mut d = FieldHasher::new("t");
        d.field("a", "bc");
        assert_ne!(c.finish(), d.finish());
    }

    #[test]
    fn json_digest_ignores_key_order_but_not_values() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":[1,2]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"b":[1,2],"a":1}"#).unwrap();
        let c: serde_json::Value = serde_json::from_str(r#"{"b":[2,1],"a":1}"#).unwrap();
        assert_eq!(json_digest(&a), json_digest(&b));
        assert_ne!(json_digest(&a), json_digest(&c));
    }
}
