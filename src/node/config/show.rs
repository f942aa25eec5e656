//! The config as `config show` and `config KEY` answer it: the settings
//! as JSON, with secrets replaced. The node's private keys live in their
//! own files, never in the config; the API tokens do, and any field whose
//! name says it holds a secret is redacted too, so a future one cannot
//! leak through the API.

use super::Config;
use serde_json::Value;

/// What a redacted value reads as.
pub const REDACTED: &str = "<redacted>";

/// Field names (any part of them) that mark a secret.
const SECRET_WORDS: [&str; 6] = ["token", "secret", "password", "private", "priv_key", "psk"];

impl Config {
    /// The config as JSON, secrets redacted (each string of a secret field
    /// replaced, so lists keep their length).
    pub fn redacted_json(&self) -> Result<Value, serde_json::Error> {
        let mut v = serde_json::to_value(self)?;
        redact(&mut v, false);
        Ok(v)
    }

    /// The value at `key` (dotted: `api.listen`) of
    /// [`redacted_json`](Self::redacted_json), if there is one.
    pub fn redacted_value(&self, key: &str) -> Result<Option<Value>, serde_json::Error> {
        let all = self.redacted_json()?;
        Ok(key
            .split('.')
            .try_fold(&all, |v, part| v.get(part))
            .cloned())
    }
}

fn redact(v: &mut Value, secret: bool) {
    match v {
        Value::String(s) if secret => *s = REDACTED.to_string(),
        Value::Array(items) => items.iter_mut().for_each(|i| redact(i, secret)),
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let k = k.to_ascii_lowercase();
                redact(item, secret || SECRET_WORDS.iter().any(|w| k.contains(w)));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_and_keys_read_by_path() {
        let mut c = Config::default();
        c.api.tokens = vec!["s3cret-token-of-16+".into(), "another-token-0123".into()];
        let v = c.redacted_json().unwrap();
        assert_eq!(v["api"]["tokens"], serde_json::json!([REDACTED, REDACTED]));
        assert!(!v.to_string().contains("s3cret"));
        assert_eq!(
            c.redacted_value("api.listen").unwrap(),
            Some(Value::String(c.api.listen.clone()))
        );
        assert_eq!(c.redacted_value("api.tokens.0").unwrap(), None);
        assert_eq!(c.redacted_value("api.nope").unwrap(), None);
        let mut nested = serde_json::json!({"a": {"private_key": {"x": "k"}, "b": "ok"}});
        redact(&mut nested, false);
        assert_eq!(
            nested,
            serde_json::json!({"a": {"private_key": {"x": REDACTED}, "b": "ok"}})
        );
    }
}
