//! PHP-style nested parameters, as Mautic clients send them in query strings and
//! form-encoded bodies: `where[0][col]=email&tags[]=a&tags[]=b` → JSON.

use serde_json::{Map, Value as Json};

/// Most parameters and nesting accepted; more is a hostile or broken request.
pub const MAX_PARAMS: usize = 1000;
// Ten: `where` groups (`where[0][val][1][val][0][col]`) nest three deep.
pub const MAX_DEPTH: usize = 10;

/// Parses `a=1&b[c]=2&d[]=3` into a JSON object of strings, objects and arrays.
pub fn parse(input: &str) -> Result<Map<String, Json>, String> {
    let mut root = Json::Object(Map::new());
    for (n, pair) in input.split('&').filter(|p| !p.is_empty()).enumerate() {
        if n >= MAX_PARAMS {
            return Err(format!("too many parameters (at most {MAX_PARAMS})"));
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(k)?;
        let value = decode(v)?;
        let path = split_key(&key)?;
        insert(&mut root, &path, Json::String(value))?;
    }
    let Json::Object(mut m) = root else {
        unreachable!()
    };
    for v in m.values_mut() {
        listify(v);
    }
    Ok(m)
}

/// A percent-encoded key or value; bytes that are not UTF-8 are refused, as in a JSON
/// body (never stored as replacement characters).
fn decode(s: &str) -> Result<String, String> {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|_| "a parameter is not valid UTF-8 once percent-decoded".to_owned())
}

/// `a[b][]` → ["a", "b", ""].
fn split_key(key: &str) -> Result<Vec<String>, String> {
    let (head, rest) = match key.find('[') {
        Some(i) if key.ends_with(']') => (&key[..i], &key[i..]),
        _ => return Ok(vec![key.to_owned()]),
    };
    let mut path = vec![head.to_owned()];
    let inner = &rest[1..rest.len() - 1];
    for part in inner.split("][") {
        path.push(part.to_owned());
    }
    if path.len() > MAX_DEPTH {
        return Err(format!("parameter '{head}' is nested too deeply"));
    }
    Ok(path)
}

fn insert(node: &mut Json, path: &[String], value: Json) -> Result<(), String> {
    let Json::Object(map) = node else {
        return Err("a parameter is both a value and a list".into());
    };
    let key = if path[0].is_empty() {
        map.len().to_string()
    } else {
        path[0].clone()
    };
    if path.len() == 1 {
        map.insert(key, value);
        return Ok(());
    }
    let child = map.entry(key).or_insert_with(|| Json::Object(Map::new()));
    if !child.is_object() {
        return Err("a parameter is both a value and a list".into());
    }
    insert(child, &path[1..], value)
}

/// Objects keyed 0..n become arrays.
fn listify(v: &mut Json) {
    if let Json::Object(m) = v {
        for child in m.values_mut() {
            listify(child);
        }
        let sequential = !m.is_empty()
            && m.keys()
                .enumerate()
                .all(|(i, k)| k.parse::<usize>() == Ok(i));
        if sequential {
            let items: Vec<Json> = std::mem::take(m).into_iter().map(|(_, v)| v).collect();
            *v = Json::Array(items);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_parameters() {
        let m = parse("search=a+b&where[0][col]=email&where[0][expr]=eq&where[0][val]=x%40y.z&tags[]=a&tags[]=b&f[k]=v").unwrap();
        assert_eq!(m["search"], "a b");
        assert_eq!(
            m["where"],
            json!([{"col": "email", "expr": "eq", "val": "x@y.z"}])
        );
        assert_eq!(m["tags"], json!(["a", "b"]));
        assert_eq!(m["f"], json!({"k": "v"}));
    }

    #[test]
    fn hostile_parameters() {
        assert!(parse(&"a=1&".repeat(1001)).is_err());
        assert!(parse("a[b][c][d][e][f][g][h][i][j]=1").is_ok());
        assert!(parse("a[b][c][d][e][f][g][h][i][j][k]=1").is_err());
        assert!(parse("a=1&a[b]=2").is_err());
        assert!(
            parse("a=%FF%FE").unwrap_err().contains("UTF-8"),
            "invalid UTF-8 is refused, never stored as replacement characters"
        );
        assert!(parse("%C0=1").is_err());
        assert_eq!(parse("a=%C3%A9").unwrap()["a"], "é");
        assert!(parse("").unwrap().is_empty());
    }
}
