//! `host.config-*`: the configuration the admin set (or the schema's defaults).

use super::{Pair, Sandbox};

pub fn get(s: &Sandbox, key: &str) -> Option<String> {
    s.call
        .config
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

pub fn all(s: &Sandbox) -> Vec<Pair> {
    s.call
        .config
        .iter()
        .map(|(k, v)| Pair {
            name: k.clone(),
            value: v.clone(),
        })
        .collect()
}
