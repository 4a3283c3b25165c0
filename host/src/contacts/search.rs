//! The contact search grammar, shared by the API's `search=` and the admin's list.
//!
//! ```text
//! query   := or
//! or      := and ( "OR" and )*
//! and     := unary ( "AND"? unary )*
//! unary   := "!" unary | "(" or ")" | term
//! term    := [command ":"] value          free text when there is no command
//! value   := ["+"] (word | "quoted phrase")
//! ```
//!
//! Free text matches name, email, company, city, state, zipcode and country (contains).
//! Command values match as prefixes; `%` in a value makes it a LIKE pattern; a leading
//! `+` asks for an exact match. Numeric fields also take `>`, `>=`, `<`, `<=`.
//! This module only parses; `store::contact_search` turns the tree into SQL.

use serde_json::Value as Json;

use super::fields::{FieldSet, FieldType};
use crate::error::{AppError, AppResult};
use crate::store::contact_search::{WhereFilter, WhereValue};

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Cond(Cond),
}

/// How a text value matches.
#[derive(Clone, Debug, PartialEq)]
pub enum Match {
    Prefix(String),
    Contains(String),
    Exact(String),
    /// A LIKE pattern with the user's `%` wildcards.
    Like(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Compare {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    /// Free text over the search columns.
    Text(Match),
    /// A text-valued field by alias.
    Field {
        alias: String,
        m: Match,
    },
    /// A numeric field (or points) compared with a number.
    Number {
        alias: String,
        op: Compare,
        value: f64,
    },
    /// First name, last name, or both as "first last".
    Name(Match),
    Owner(Match),
    Tag(Match),
    Stage(Match),
    Ip(Match),
    Ids(Vec<i64>),
    Anonymous,
    Unowned,
    Mine,
    Segment(Match),
    Common(Vec<String>),
    /// `owner:` resolved to user ids (the store resolves lookups on small tables first).
    OwnerIds(Vec<i64>),
    /// `stage:` resolved to stage ids.
    StageIds(Vec<i64>),
}

impl Expr {
    /// Whether the query asks for anonymous visitors (they are hidden otherwise):
    /// `is:anonymous` under an even number of `!` (`!is:anonymous` asks for known
    /// contacts, `!!is:anonymous` for anonymous ones).
    pub fn mentions_anonymous(&self) -> bool {
        self.asks_for_anonymous(true)
    }

    fn asks_for_anonymous(&self, positive: bool) -> bool {
        match self {
            Expr::And(v) | Expr::Or(v) => v.iter().any(|e| e.asks_for_anonymous(positive)),
            Expr::Not(e) => e.asks_for_anonymous(!positive),
            Expr::Cond(c) => positive && *c == Cond::Anonymous,
        }
    }

    /// How many conditions the search holds.
    pub fn terms(&self) -> usize {
        match self {
            Expr::And(v) | Expr::Or(v) => v.iter().map(Expr::terms).sum(),
            Expr::Not(e) => e.terms(),
            Expr::Cond(_) => 1,
        }
    }

    /// Whether only anonymous contacts can match (`is:anonymous`, alone or AND-ed).
    pub fn only_anonymous(&self) -> bool {
        match self {
            Expr::And(v) => v.iter().any(Expr::only_anonymous),
            Expr::Or(_) | Expr::Not(_) => false,
            Expr::Cond(c) => *c == Cond::Anonymous,
        }
    }
}

/// The commands, for help texts: (syntax, meaning).
pub const COMMANDS: &[(&str, &str)] = &[
    ("email:", "email address starts with"),
    (
        "name:",
        "first or last name (or \"first last\") starts with",
    ),
    ("company:", "primary company starts with"),
    ("owner:", "owner's user name or name starts with"),
    ("tag:", "has a tag starting with"),
    ("stage:", "stage name starts with"),
    ("ip:", "seen from an IP address starting with"),
    ("ids:1,2,3", "one of these contact ids"),
    (
        "is:anonymous",
        "anonymous visitors (hidden unless asked for)",
    ),
    ("is:unowned", "contacts without an owner"),
    ("is:mine", "contacts you own"),
    ("segment:", "member of a segment (by alias)"),
    ("common:a+b", "member of all these segments"),
    (
        "<field>:",
        "any field by alias, e.g. city:berlin or points:>10",
    ),
    ("%", "wildcard, e.g. email:%@example.org"),
    ("+", "exact match, e.g. email:+ada@example.org"),
    ("!", "not, e.g. !tag:vip or !(city:paris OR city:lyon)"),
    ("\"…\"", "a phrase with spaces, e.g. name:\"Ada Lovelace\""),
    (
        "OR / AND",
        "combine terms (AND is implied); parentheses group",
    ),
];

#[derive(Debug, PartialEq)]
enum Token {
    LParen,
    RParen,
    Not,
    Or,
    And,
    /// `command`, `value`, whether the value was quoted.
    Term(Option<String>, String, bool),
}

/// Longest query accepted (characters) and deepest nesting.
const MAX_QUERY: usize = 2000;
const MAX_DEPTH: usize = 32;
/// Each condition is a clause of its own (a tag's or an IP's a subquery); PostgreSQL's
/// planner took seconds over 80 of them, minutes over 300.
const MAX_TERMS: usize = 32;

/// Parses a search; `Ok(None)` for an empty one. Errors are messages for a 400.
pub fn parse(input: &str, fields: &FieldSet) -> Result<Option<Expr>, String> {
    if input.chars().count() > MAX_QUERY {
        return Err(format!(
            "search is too long (at most {MAX_QUERY} characters)"
        ));
    }
    if input.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return Err("search must not contain control characters".into());
    }
    let tokens = lex(input)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        fields,
        depth: 0,
    };
    let expr = p.or()?;
    if let Some(t) = p.peek() {
        return Err(match t {
            Token::RParen => "unbalanced parentheses: ')' without '('".into(),
            other => format!("unexpected {other:?}"),
        });
    }
    if expr.terms() > MAX_TERMS {
        return Err(format!(
            "search has too many terms (at most {MAX_TERMS}; ids:1,2,3 is one)"
        ));
    }
    Ok(Some(expr))
}

fn lex(input: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            tokens.push(Token::LParen);
            i += 1;
        } else if c == ')' {
            tokens.push(Token::RParen);
            i += 1;
        } else if c == '!' {
            tokens.push(Token::Not);
            i += 1;
        } else if c == '"' || (c == '+' && chars.get(i + 1) == Some(&'"')) {
            let exact = c == '+';
            let start = if exact { i + 1 } else { i };
            let (phrase, next) = quoted(&chars, start)?;
            tokens.push(Token::Term(
                None,
                if exact { format!("+{phrase}") } else { phrase },
                true,
            ));
            i = next;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !"()\"".contains(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            match word.as_str() {
                "OR" => {
                    tokens.push(Token::Or);
                    continue;
                }
                "AND" => {
                    tokens.push(Token::And);
                    continue;
                }
                _ => {}
            }
            let command = word
                .split_once(':')
                .filter(|(cmd, _)| {
                    cmd.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && cmd.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .map(|(cmd, rest)| (cmd.to_ascii_lowercase(), rest.to_owned()));
            match command {
                Some((cmd, rest)) => {
                    // `name:"Ada Lovelace"` / `name:+"Ada Lovelace"`: the value is quoted.
                    let exact_quote = rest == "+" && chars.get(i) == Some(&'"');
                    if (rest.is_empty() || exact_quote) && chars.get(i) == Some(&'"') {
                        let (phrase, next) = quoted(&chars, i)?;
                        i = next;
                        tokens.push(Token::Term(
                            Some(cmd),
                            if exact_quote {
                                format!("+{phrase}")
                            } else {
                                phrase
                            },
                            true,
                        ));
                    } else {
                        tokens.push(Token::Term(Some(cmd), rest, false));
                    }
                }
                None => tokens.push(Token::Term(None, word, false)),
            }
            if chars.get(i) == Some(&'"') {
                return Err(
                    "unexpected quote inside a word; put the whole phrase in quotes".into(),
                );
            }
        }
    }
    Ok(tokens)
}

/// Reads `"…"` starting at `start` (the opening quote); `\"` escapes a quote.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if chars.get(i + 1) == Some(&'"') => {
                out.push('"');
                i += 2;
            }
            '"' => return Ok((out, i + 1)),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err("unbalanced quotes: a phrase is missing its closing \"".into())
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    fields: &'a FieldSet,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut items = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            if matches!(
                self.peek(),
                None | Some(Token::RParen | Token::Or | Token::And)
            ) {
                return Err("OR needs a term on both sides".into());
            }
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one")
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut items = vec![self.unary()?];
        loop {
            match self.peek() {
                Some(Token::And) => {
                    self.pos += 1;
                    if matches!(
                        self.peek(),
                        None | Some(Token::RParen | Token::Or | Token::And)
                    ) {
                        return Err("AND needs a term on both sides".into());
                    }
                    items.push(self.unary()?);
                }
                Some(Token::LParen | Token::Not | Token::Term(..)) => items.push(self.unary()?),
                _ => break,
            }
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one")
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("search is nested too deeply".into());
        }
        let result = match self.tokens.get(self.pos) {
            Some(Token::Not) => {
                self.pos += 1;
                if matches!(
                    self.peek(),
                    None | Some(Token::RParen | Token::Or | Token::And)
                ) {
                    return Err("'!' must be followed by a term".into());
                }
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some(Token::LParen) => {
                self.pos += 1;
                if self.peek() == Some(&Token::RParen) {
                    return Err("empty parentheses".into());
                }
                if self.peek().is_none() {
                    return Err("unbalanced parentheses: '(' without ')'".into());
                }
                let inner = self.or()?;
                if self.peek() != Some(&Token::RParen) {
                    return Err("unbalanced parentheses: '(' without ')'".into());
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Token::Term(cmd, value, quoted)) => {
                let (cmd, value, quoted) = (cmd.clone(), value.clone(), *quoted);
                self.pos += 1;
                self.term(cmd, value, quoted).map(Expr::Cond)
            }
            Some(Token::RParen) => Err("unbalanced parentheses: ')' without '('".into()),
            Some(Token::Or | Token::And) => Err("OR/AND needs a term on both sides".into()),
            None => Err("incomplete search".into()),
        };
        self.depth -= 1;
        result
    }

    fn term(&self, cmd: Option<String>, value: String, quoted: bool) -> Result<Cond, String> {
        let Some(cmd) = cmd else {
            return Ok(Cond::Text(text_match(&value, quoted, false)?));
        };
        if value.is_empty() {
            return Err(format!("'{cmd}:' needs a value"));
        }
        let m = || text_match(&value, quoted, true);
        Ok(match cmd.as_str() {
            "name" => Cond::Name(m()?),
            "owner" => Cond::Owner(m()?),
            "tag" => Cond::Tag(m()?),
            "stage" => Cond::Stage(m()?),
            "ip" => Cond::Ip(m()?),
            "segment" => Cond::Segment(m()?),
            "ids" => match id_list(&value) {
                Some(ids) if !ids.is_empty() && ids.len() <= 1000 => Cond::Ids(ids),
                _ => {
                    return Err("ids: takes a comma-separated list of up to 1000 numbers".into());
                }
            },
            "common" => {
                let names: Vec<String> = value
                    .split('+')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                if names.is_empty() {
                    return Err("common: takes segment aliases joined by +".into());
                }
                Cond::Common(names)
            }
            "is" => match value.to_ascii_lowercase().as_str() {
                "anonymous" => Cond::Anonymous,
                "unowned" => Cond::Unowned,
                "mine" => Cond::Mine,
                other => {
                    return Err(format!(
                        "unknown value '{other}' for is: (use anonymous, unowned or mine)"
                    ));
                }
            },
            alias => {
                let Some(field) = self.fields.get(alias) else {
                    return Err(format!("unknown search command '{alias}:'"));
                };
                match field.field_type {
                    FieldType::Number => {
                        let (op, rest) = comparison(&value);
                        let n: f64 = rest.trim().parse().map_err(|_| {
                            format!("{alias}: takes a number, optionally after > >= < <=")
                        })?;
                        if !n.is_finite() {
                            return Err(format!("{alias}: takes a finite number"));
                        }
                        Cond::Number {
                            alias: alias.to_owned(),
                            op,
                            value: n,
                        }
                    }
                    FieldType::Boolean => {
                        let b = match value.to_ascii_lowercase().as_str() {
                            "1" | "true" | "yes" | "on" => 1.0,
                            "0" | "false" | "no" | "off" => 0.0,
                            _ => return Err(format!("{alias}: takes yes or no")),
                        };
                        Cond::Number {
                            alias: alias.to_owned(),
                            op: Compare::Eq,
                            value: b,
                        }
                    }
                    _ if field.storage() != super::fields::Storage::Column => {
                        // last_active: compare as a date-time prefix is meaningless; take a date.
                        let (op, rest) = comparison(&value);
                        let t = crate::time::parse_datetime(rest).ok_or_else(|| {
                            format!(
                                "{alias}: takes a date like 2024-05-01, optionally after > or <"
                            )
                        })?;
                        Cond::Number {
                            alias: alias.to_owned(),
                            op,
                            value: t.timestamp_millis() as f64,
                        }
                    }
                    _ => Cond::Field {
                        alias: alias.to_owned(),
                        m: m()?,
                    },
                }
            }
        })
    }
}

fn comparison(value: &str) -> (Compare, &str) {
    for (prefix, op) in [
        (">=", Compare::Gte),
        ("<=", Compare::Lte),
        (">", Compare::Gt),
        ("<", Compare::Lt),
        ("=", Compare::Eq),
    ] {
        if let Some(rest) = value.strip_prefix(prefix) {
            return (op, rest);
        }
    }
    (Compare::Eq, value)
}

/// `+x` exact, `%` anywhere a LIKE pattern, otherwise prefix (commands) or contains
/// (free text).
fn text_match(value: &str, _quoted: bool, command: bool) -> Result<Match, String> {
    if let Some(rest) = value.strip_prefix('+') {
        if rest.is_empty() {
            return Err("'+' must be followed by a value".into());
        }
        return Ok(Match::Exact(rest.to_owned()));
    }
    if value.is_empty() {
        return Err("empty search term".into());
    }
    if value.contains('%') {
        if value.chars().all(|c| c == '%') {
            return Err("a pattern needs more than wildcards".into());
        }
        return Ok(Match::Like(value.to_owned()));
    }
    Ok(if command {
        Match::Prefix(value.to_owned())
    } else {
        Match::Contains(value.to_owned())
    })
}

/// A comma-separated list of ids (`1, 2,3`; empty parts skipped); `None` when a part is
/// not a number. The `ids:` command, the API's `ids=` of batch deletes and `ids:` of
/// entity lists all read it.
pub fn id_list(s: &str) -> Option<Vec<i64>> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<i64>().ok())
        .collect()
}

/// `where` filters as the API and exports receive them: a list (or PHP-style keyed
/// object) of `{col, expr, val}`, where an `orX` or `andX` item holds more of them in its
/// `val`; null is none.
pub fn where_filters(w: &Json) -> AppResult<Vec<WhereFilter>> {
    let mut budget = Budget {
        filters: MAX_WHERE_FILTERS,
        values: MAX_WHERE_VALUES,
    };
    where_list(w, 0, &mut budget)
}

/// Filters in all, groups included: each is a condition in the statement.
const MAX_WHERE_FILTERS: usize = 50;
/// Values in all (each a bound parameter; SQLite takes 32,766 in one statement).
const MAX_WHERE_VALUES: usize = 10_000;
/// Groups within groups.
const MAX_WHERE_DEPTH: usize = 3;

/// What is left of the limits while a request's filters are read.
struct Budget {
    filters: usize,
    values: usize,
}

fn where_list(w: &Json, depth: usize, budget: &mut Budget) -> AppResult<Vec<WhereFilter>> {
    let items: Vec<&Json> = match w {
        Json::Null => return Ok(Vec::new()),
        Json::Array(a) => a.iter().collect(),
        Json::Object(o) => o.values().collect(),
        _ => {
            return Err(AppError::bad_request(
                "where must be a list of {col, expr, val} (where[0][col]=…&where[0][expr]=… in a query)",
            ));
        }
    };
    items
        .into_iter()
        .map(|item| where_item(item, depth, budget))
        .collect()
}

fn where_item(item: &Json, depth: usize, budget: &mut Budget) -> AppResult<WhereFilter> {
    budget.filters = budget
        .filters
        .checked_sub(1)
        .ok_or_else(|| AppError::bad_request("at most 50 where filters"))?;
    let o = item
        .as_object()
        .ok_or_else(|| AppError::bad_request("each where filter needs col, expr and val"))?;
    let expr = o
        .get("expr")
        .and_then(Json::as_str)
        .ok_or_else(|| AppError::bad_request("where: missing expr"))?;
    let val = o.get("val").or_else(|| o.get("value"));
    if matches!(expr, "orX" | "andX") {
        if depth >= MAX_WHERE_DEPTH {
            return Err(AppError::bad_request(format!(
                "where: groups nest at most {MAX_WHERE_DEPTH} deep"
            )));
        }
        let group = where_list(val.unwrap_or(&Json::Null), depth + 1, budget)?;
        if group.is_empty() {
            return Err(AppError::bad_request(format!(
                "where: {expr} needs its filters in val"
            )));
        }
        return Ok(WhereFilter {
            col: String::new(),
            expr: expr.to_owned(),
            val: WhereValue::None,
            group,
        });
    }
    let col = o
        .get("col")
        .or_else(|| o.get("column"))
        .and_then(Json::as_str)
        .ok_or_else(|| AppError::bad_request("where: missing col"))?;
    let val = match val {
        None | Some(Json::Null) => WhereValue::None,
        Some(Json::String(s)) => WhereValue::One(s.clone()),
        Some(Json::Array(a)) => WhereValue::Many(
            a.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect(),
        ),
        Some(other) => WhereValue::One(other.to_string()),
    };
    // A text may list values (`in`: "1,2,3").
    let values = match &val {
        WhereValue::None => 0,
        WhereValue::One(s) => s.matches(',').count() + 1,
        WhereValue::Many(v) => v.len(),
    };
    budget.values = budget
        .values
        .checked_sub(values)
        .ok_or_else(|| AppError::bad_request("at most 10,000 where values in all"))?;
    Ok(WhereFilter {
        col: col.to_owned(),
        expr: expr.to_owned(),
        val,
        group: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Cond::*;
    use Match::*;
    use serde_json::json;

    fn fields() -> FieldSet {
        FieldSet::defaults_for_tests()
    }

    fn c(cond: Cond) -> Expr {
        Expr::Cond(cond)
    }
    fn f(alias: &str, m: Match) -> Expr {
        c(Field {
            alias: alias.into(),
            m,
        })
    }
    fn s(v: &str) -> String {
        v.to_owned()
    }

    #[test]
    fn valid_queries() {
        let cases: Vec<(&str, Option<Expr>)> = vec![
            ("", None),
            ("   ", None),
            ("smith", Some(c(Text(Contains(s("smith")))))),
            ("\"john smith\"", Some(c(Text(Contains(s("john smith")))))),
            ("+smith", Some(c(Text(Exact(s("smith")))))),
            ("+\"john smith\"", Some(c(Text(Exact(s("john smith")))))),
            ("sm%th", Some(c(Text(Like(s("sm%th")))))),
            ("email:someone@", Some(f("email", Prefix(s("someone@"))))),
            (
                "email:%@example.org",
                Some(f("email", Like(s("%@example.org")))),
            ),
            (
                "email:+ada@example.org",
                Some(f("email", Exact(s("ada@example.org")))),
            ),
            ("EMAIL:ada", Some(f("email", Prefix(s("ada"))))),
            ("company:acme", Some(f("company", Prefix(s("acme"))))),
            ("city:berlin", Some(f("city", Prefix(s("berlin"))))),
            ("name:ada", Some(c(Name(Prefix(s("ada")))))),
            (
                "name:\"Ada Lovelace\"",
                Some(c(Name(Prefix(s("Ada Lovelace"))))),
            ),
            (
                "name:+\"Ada Lovelace\"",
                Some(c(Name(Exact(s("Ada Lovelace"))))),
            ),
            ("owner:admin", Some(c(Owner(Prefix(s("admin")))))),
            ("tag:vip", Some(c(Tag(Prefix(s("vip")))))),
            ("stage:lead", Some(c(Stage(Prefix(s("lead")))))),
            ("ip:192.168.", Some(c(Ip(Prefix(s("192.168.")))))),
            ("ids:1,2, 3", None), // "3" becomes a separate free-text term; checked below
            ("ids:1,2,3", Some(c(Ids(vec![1, 2, 3])))),
            ("is:anonymous", Some(c(Anonymous))),
            ("is:unowned", Some(c(Unowned))),
            ("is:MINE", Some(c(Mine))),
            (
                "segment:newsletter",
                Some(c(Segment(Prefix(s("newsletter"))))),
            ),
            ("common:a+b", Some(c(Common(vec![s("a"), s("b")])))),
            (
                "points:>10",
                Some(c(Number {
                    alias: s("points"),
                    op: Compare::Gt,
                    value: 10.0,
                })),
            ),
            (
                "points:5",
                Some(c(Number {
                    alias: s("points"),
                    op: Compare::Eq,
                    value: 5.0,
                })),
            ),
            (
                "points:<=5",
                Some(c(Number {
                    alias: s("points"),
                    op: Compare::Lte,
                    value: 5.0,
                })),
            ),
            ("!is:anonymous", Some(Expr::Not(Box::new(c(Anonymous))))),
            (
                "!is:anonymous owner:admin",
                Some(Expr::And(vec![
                    Expr::Not(Box::new(c(Anonymous))),
                    c(Owner(Prefix(s("admin")))),
                ])),
            ),
            (
                "tag:vip OR tag:gold",
                Some(Expr::Or(vec![
                    c(Tag(Prefix(s("vip")))),
                    c(Tag(Prefix(s("gold")))),
                ])),
            ),
            (
                "tag:vip AND city:paris",
                Some(Expr::And(vec![
                    c(Tag(Prefix(s("vip")))),
                    f("city", Prefix(s("paris"))),
                ])),
            ),
            (
                "a OR b c",
                Some(Expr::Or(vec![
                    c(Text(Contains(s("a")))),
                    Expr::And(vec![c(Text(Contains(s("b")))), c(Text(Contains(s("c"))))]),
                ])),
            ),
            (
                "(a OR b) c",
                Some(Expr::And(vec![
                    Expr::Or(vec![c(Text(Contains(s("a")))), c(Text(Contains(s("b"))))]),
                    c(Text(Contains(s("c")))),
                ])),
            ),
            (
                "!(city:paris OR city:lyon)",
                Some(Expr::Not(Box::new(Expr::Or(vec![
                    f("city", Prefix(s("paris"))),
                    f("city", Prefix(s("lyon"))),
                ])))),
            ),
            ("((smith))", Some(c(Text(Contains(s("smith")))))),
            ("or", Some(c(Text(Contains(s("or")))))),
            ("10:30", Some(c(Text(Contains(s("10:30")))))),
            ("'; DROP TABLE contacts; --", None), // parses as free text; checked below
            (
                "\"say \\\"hi\\\"\"",
                Some(c(Text(Contains(s("say \"hi\""))))),
            ),
        ];
        for (input, want) in cases {
            let got = parse(input, &fields());
            match want {
                Some(expr) => assert_eq!(got, Ok(Some(expr)), "{input}"),
                None => assert!(got.is_ok(), "{input}: {got:?}"),
            }
        }
    }

    #[test]
    fn malformed_queries() {
        let cases = [
            ("\"unterminated", "unbalanced quotes"),
            ("name:\"Ada", "unbalanced quotes"),
            ("(smith", "unbalanced parentheses"),
            ("smith)", "unbalanced parentheses"),
            ("()", "empty parentheses"),
            ("((a)", "unbalanced parentheses"),
            ("bogus:x", "unknown search command 'bogus:'"),
            ("is:robot", "unknown value 'robot'"),
            ("email:", "needs a value"),
            ("ids:a,b", "ids:"),
            ("ids:", "needs a value"),
            ("OR smith", "OR/AND needs a term"),
            ("smith OR", "OR needs a term"),
            ("smith AND", "AND needs a term"),
            ("a OR OR b", "OR needs a term"),
            ("!", "'!' must be followed"),
            ("! OR a", "'!' must be followed"),
            ("points:lots", "takes a number"),
            ("points:>", "takes a number"),
            ("%", "more than wildcards"),
            ("+", "'+' must be followed"),
            ("ab\"c\"", "unexpected quote"),
            ("last_active:soon", "takes a date"),
            ("common:+", "common:"),
        ];
        for (input, want) in cases {
            match parse(input, &fields()) {
                Err(msg) => assert!(
                    msg.contains(want),
                    "{input}: '{msg}' should mention '{want}'"
                ),
                Ok(e) => panic!("{input} should be rejected, got {e:?}"),
            }
        }
        assert!(parse(&"a ".repeat(1500), &fields()).is_err());
        assert!(
            parse(&format!("{}a{}", "(".repeat(40), ")".repeat(40)), &fields())
                .unwrap_err()
                .contains("nested")
        );
        assert!(parse("a\u{0}b", &fields()).is_err());
        // Many conditions, each a clause of its own: refused past 32.
        assert!(parse(&"tag:v ".repeat(32), &fields()).is_ok());
        assert!(
            parse(&"tag:v ".repeat(33), &fields())
                .unwrap_err()
                .contains("too many terms")
        );
    }

    #[test]
    fn anonymous_visibility() {
        let p = |q: &str| parse(q, &fields()).unwrap().unwrap();
        assert!(p("is:anonymous").mentions_anonymous());
        assert!(p("smith OR is:anonymous").mentions_anonymous());
        assert!(!p("!is:anonymous").mentions_anonymous());
        assert!(!p("smith").mentions_anonymous());
        assert!(p("!!is:anonymous").mentions_anonymous());
        assert!(p("!(!is:anonymous)").mentions_anonymous());
        assert!(p("!(smith OR !is:anonymous)").mentions_anonymous());
        assert!(!p("!(smith OR is:anonymous)").mentions_anonymous());
    }

    #[test]
    fn where_limits() {
        let filter = |n: usize| json!({"col": "id", "expr": "in", "val": (0..n).map(|i| i.to_string()).collect::<Vec<_>>()});
        // Values in all, across filters: each is a bound parameter.
        let many: Vec<Json> = (0..11).map(|_| filter(1000)).collect();
        let e = where_filters(&Json::Array(many)).unwrap_err();
        assert!(format!("{e:?}").contains("10,000"), "{e:?}");
        assert!(where_filters(&json!([filter(1000), filter(1000)])).is_ok());
        let listed = json!([{"col": "id", "expr": "in", "val": vec!["1"; 10_001].join(",")}]);
        assert!(where_filters(&listed).is_err());
        // Groups nest three deep, and need filters.
        let nest = |depth: usize| {
            let mut w = json!({"col": "id", "expr": "eq", "val": "1"});
            for _ in 0..depth {
                w = json!({"expr": "orX", "val": [w]});
            }
            json!([w])
        };
        assert_eq!(
            where_filters(&nest(3)).unwrap()[0].group[0].group[0]
                .group
                .len(),
            1
        );
        assert!(where_filters(&nest(4)).is_err());
        assert!(where_filters(&json!([{"expr": "andX", "val": []}])).is_err());
    }
}
