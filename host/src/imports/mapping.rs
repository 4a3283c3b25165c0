//! Which column goes where: the targets a column can have, and the proposal made from
//! the header (a field's alias or label, or a common synonym; case-, accent- and
//! punctuation-insensitive).

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

use crate::contacts::fields::FieldSet;

/// Columns that are not fields but set something else of a contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Special {
    /// The contact id (to match existing contacts by id).
    Id,
    /// Tags, separated by `|` (or by commas when there is no `|`).
    Tags,
    /// The owner: a user id, username or email.
    Owner,
    /// The stage: a stage id or name (created when missing).
    Stage,
    /// When the contact was added (kept for contacts the import creates).
    DateAdded,
    /// When the contact was identified (kept for contacts the import creates).
    DateIdentified,
    IpAddress,
}

impl Special {
    pub const ALL: [Special; 7] = [
        Special::Id,
        Special::Tags,
        Special::Owner,
        Special::Stage,
        Special::DateAdded,
        Special::DateIdentified,
        Special::IpAddress,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Special::Id => "id",
            Special::Tags => "tags",
            Special::Owner => "owner",
            Special::Stage => "stage",
            Special::DateAdded => "dateAdded",
            Special::DateIdentified => "dateIdentified",
            Special::IpAddress => "ipAddress",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Special::Id => "Contact ID (match existing contacts)",
            Special::Tags => "Tags",
            Special::Owner => "Owner (user id, username or email)",
            Special::Stage => "Stage (id or name)",
            Special::DateAdded => "Date added",
            Special::DateIdentified => "Date identified",
            Special::IpAddress => "IP address",
        }
    }

    pub fn parse(s: &str) -> Option<Special> {
        Special::ALL
            .into_iter()
            .find(|x| x.as_str().eq_ignore_ascii_case(s))
    }

    fn synonyms(self) -> &'static [&'static str] {
        match self {
            Special::Id => &["id", "contact id", "lead id", "contactid", "leadid"],
            Special::Tags => &["tags", "tag", "labels"],
            Special::Owner => &[
                "owner",
                "contact owner",
                "owner username",
                "ownerusername",
                "owner email",
                "assigned to",
            ],
            Special::Stage => &["stage", "lifecycle stage"],
            Special::DateAdded => &[
                "date added",
                "date_added",
                "dateadded",
                "created",
                "created at",
                "created on",
                "date created",
            ],
            Special::DateIdentified => &["date identified", "date_identified", "dateidentified"],
            Special::IpAddress => &["ip", "ip address", "ipaddress", "ip_address"],
        }
    }
}

/// Where a column's values go.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Skip,
    Field(String),
    Special(Special),
}

impl Target {
    /// The name the API uses: a field alias, a special name, or `None` for skip.
    pub fn name(&self) -> Option<&str> {
        match self {
            Target::Skip => None,
            Target::Field(a) => Some(a),
            Target::Special(s) => Some(s.as_str()),
        }
    }
}

/// Lower case, accents and everything but letters and digits removed:
/// "Prénom", "PRENOM" and "pré-nom" all fold to "prenom".
pub fn fold(s: &str) -> String {
    s.nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'ß' => 's',
            'ø' => 'o',
            'æ' => 'a',
            'œ' => 'o',
            'đ' => 'd',
            'ł' => 'l',
            other => other,
        })
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// Common header names of the default fields, in several languages.
fn field_synonyms(alias: &str) -> &'static [&'static str] {
    match alias {
        "email" => &[
            "e-mail",
            "mail",
            "email address",
            "e-mail address",
            "courriel",
            "correo",
            "emailaddress",
        ],
        "firstname" => &[
            "first name",
            "first",
            "given name",
            "forename",
            "prénom",
            "vorname",
            "nombre",
            "nome",
        ],
        "lastname" => &[
            "last name",
            "last",
            "surname",
            "family name",
            "nom",
            "nachname",
            "apellido",
            "cognome",
        ],
        "company" => &[
            "company name",
            "organization",
            "organisation",
            "organization name",
            "firma",
            "entreprise",
            "société",
            "employer",
            "account",
        ],
        "position" => &["job title", "jobtitle", "role", "function", "poste"],
        "phone" => &[
            "telephone",
            "phone number",
            "tel",
            "téléphone",
            "telefon",
            "work phone",
            "business phone",
        ],
        "mobile" => &[
            "mobile phone",
            "mobile number",
            "cell",
            "cell phone",
            "cellphone",
            "handy",
            "portable",
        ],
        "address1" => &[
            "address",
            "street",
            "street address",
            "address line 1",
            "adresse",
            "strasse",
        ],
        "address2" => &["address line 2"],
        "city" => &["town", "ville", "stadt", "ciudad", "locality"],
        "state" => &["region", "province", "county", "state/province"],
        "zipcode" => &[
            "zip",
            "zip code",
            "postal code",
            "postcode",
            "post code",
            "plz",
            "code postal",
            "cp",
        ],
        "country" => &["pays", "land", "país", "country name"],
        "website" => &["url", "web", "web site", "homepage", "site", "site web"],
        "preferred_locale" => &["locale", "language"],
        "timezone" => &["time zone", "tz"],
        "points" => &["score", "lead score"],
        "last_active" => &["lastactive", "last active", "last seen"],
        "title" => &["salutation", "civilité", "anrede"],
        _ => &[],
    }
}

/// Folded header names that are known and deliberately not imported.
const IGNORED: &[&str] = &[
    "datemodified",
    "modifiedby",
    "createdby",
    "dateupdated",
    "updatedat",
    "lastmodified",
];

/// The proposal for one column.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    pub column: usize,
    pub header: String,
    pub target: Target,
    /// How it was matched: "alias", "label", "synonym"; `None` when not matched.
    pub matched_by: Option<&'static str>,
}

/// Proposes a target for every column, each target used once (the first column that
/// matches it wins), and warnings about the header.
pub fn propose(headers: &[String], fields: &FieldSet) -> (Vec<Proposal>, Vec<String>) {
    let mut by_alias: HashMap<String, Target> = HashMap::new();
    let mut by_label: HashMap<String, Target> = HashMap::new();
    let mut by_synonym: HashMap<String, Target> = HashMap::new();
    for f in fields.iter() {
        by_alias
            .entry(fold(&f.alias))
            .or_insert_with(|| Target::Field(f.alias.clone()));
        by_label
            .entry(fold(&f.label))
            .or_insert_with(|| Target::Field(f.alias.clone()));
        for s in field_synonyms(&f.alias) {
            by_synonym
                .entry(fold(s))
                .or_insert_with(|| Target::Field(f.alias.clone()));
        }
    }
    for s in Special::ALL {
        by_alias
            .entry(fold(s.as_str()))
            .or_insert(Target::Special(s));
        by_label
            .entry(fold(s.label()))
            .or_insert(Target::Special(s));
        for syn in s.synonyms() {
            by_synonym.entry(fold(syn)).or_insert(Target::Special(s));
        }
    }
    let mut warnings = Vec::new();
    let mut used: HashMap<Target, usize> = HashMap::new();
    let mut seen_headers: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(headers.len());
    for (i, header) in headers.iter().enumerate() {
        let key = fold(header);
        if header.trim().is_empty() {
            warnings.push(format!(
                "column {} has no header; it is not imported unless you map it",
                i + 1
            ));
        } else if let Some(first) = seen_headers.get(&header.trim().to_lowercase()) {
            warnings.push(format!(
                "the header '{}' appears more than once (columns {} and {}); only the first is mapped automatically",
                header.trim(),
                first + 1,
                i + 1
            ));
        } else {
            seen_headers.insert(header.trim().to_lowercase(), i);
        }
        let found = [
            ("alias", &by_alias),
            ("label", &by_label),
            ("synonym", &by_synonym),
        ]
        .into_iter()
        .find_map(|(how, map)| map.get(&key).map(|t| (how, t.clone())))
        .filter(|_| !key.is_empty() && !IGNORED.contains(&key.as_str()));
        let (target, matched_by) = match found {
            Some((how, t)) if !used.contains_key(&t) => {
                used.insert(t.clone(), i);
                (t, Some(how))
            }
            _ => (Target::Skip, None),
        };
        out.push(Proposal {
            column: i,
            header: header.clone(),
            target,
            matched_by,
        });
    }
    (out, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        let cases = [
            ("Prénom", "prenom"),
            ("PRÉNOM", "prenom"),
            ("E-Mail", "email"),
            ("first_name", "firstname"),
            ("  Zip Code ", "zipcode"),
            ("Straße", "strase"),
            ("Ångström", "angstrom"),
            ("Œuvre", "ouvre"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(fold(input), want, "{input}");
        }
    }

    #[test]
    fn proposals() {
        let fields = FieldSet::defaults_for_tests();
        let headers: Vec<String> = [
            "E-mail",
            "Prénom",
            "NOM",
            "First Name",
            "Company",
            "Zip",
            "Preferred Timezone",
            "tags",
            "Owner",
            "ID",
            "Shoe size",
            "",
            "Date Modified",
            "date_added",
            "Stage",
            "last_active",
            "Ville",
            "e-mail",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (p, warnings) = propose(&headers, &fields);
        let got: Vec<(&str, Option<&str>)> = p
            .iter()
            .map(|p| (p.header.as_str(), p.target.name()))
            .collect();
        let want: Vec<(&str, Option<&str>)> = vec![
            ("E-mail", Some("email")),
            ("Prénom", Some("firstname")),
            ("NOM", Some("lastname")),
            ("First Name", None), // firstname is taken by an earlier column
            ("Company", Some("company")),
            ("Zip", Some("zipcode")),
            ("Preferred Timezone", Some("timezone")),
            ("tags", Some("tags")),
            ("Owner", Some("owner")),
            ("ID", Some("id")),
            ("Shoe size", None),
            ("", None),
            ("Date Modified", None),
            ("date_added", Some("dateAdded")),
            ("Stage", Some("stage")),
            ("last_active", Some("last_active")),
            ("Ville", Some("city")),
            ("e-mail", None),
        ];
        assert_eq!(got, want);
        assert_eq!(p[0].matched_by, Some("alias"));
        assert_eq!(p[1].matched_by, Some("synonym"));
        assert_eq!(p[4].matched_by, Some("alias"));
        assert_eq!(p[6].matched_by, Some("label"));
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("column 12 has no header")),
            "{warnings:?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("'e-mail' appears more than once")),
            "{warnings:?}"
        );
    }
}
