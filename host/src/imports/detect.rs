//! Guessing how a file is written from its first bytes: not CSV at all (a spreadsheet,
//! an image, binary data), the text encoding (UTF-8 with or without a byte order mark,
//! else Windows-1252), the quote character and the delimiter.

use csv_core::{ReadRecordResult, ReaderBuilder};

use super::csv::{Dialect, Encoding};

/// How much of a file is looked at.
pub const SAMPLE_BYTES: usize = 256 * 1024;

pub const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

#[derive(Clone, Debug, PartialEq)]
pub struct Sniffed {
    pub dialect: Dialect,
    /// Said to the user in the preview (e.g. the encoding fallback).
    pub notes: Vec<String>,
}

/// Recognises files that are certainly not CSV and says what they are.
fn not_csv(sample: &[u8]) -> Option<String> {
    let starts = |magic: &[u8]| sample.starts_with(magic);
    let what = if starts(b"PK\x03\x04") {
        "a ZIP archive (an Excel .xlsx or OpenDocument spreadsheet is one): save the sheet as CSV and upload that"
    } else if starts(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        "an old Excel .xls workbook: save the sheet as CSV and upload that"
    } else if starts(b"%PDF") {
        "a PDF document"
    } else if starts(b"\x89PNG") || starts(b"GIF8") || starts(b"\xFF\xD8\xFF") {
        "an image"
    } else if starts(b"\x1F\x8B") {
        "a gzip archive: uncompress it first"
    } else if starts(b"\xFF\xFE") || starts(b"\xFE\xFF") {
        "UTF-16 text, which is not supported: save it as CSV (UTF-8)"
    } else {
        let nul = sample.iter().filter(|b| **b == 0).count();
        let control = sample
            .iter()
            .filter(|b| **b < 0x20 && !matches!(**b, b'\t' | b'\n' | b'\r' | 0x0C))
            .count();
        if sample.is_empty() {
            return Some("The file is empty.".to_owned());
        }
        if nul * 100 > sample.len() || control * 20 > sample.len() {
            "binary data, not text"
        } else {
            return None;
        }
    };
    Some(format!("This file is not CSV: it looks like {what}."))
}

/// How `bytes` reads as UTF-8: its non-ASCII characters, and the invalid sequences (a
/// sequence cut at the end of an incomplete sample is not one).
fn utf8_counts(bytes: &[u8], complete: bool) -> (usize, usize) {
    let (mut non_ascii, mut invalid) = (0, 0);
    let mut rest = bytes;
    loop {
        let (good, error) = match std::str::from_utf8(rest) {
            Ok(s) => (s, None),
            Err(e) => (
                std::str::from_utf8(&rest[..e.valid_up_to()]).expect("valid up to there"),
                Some(e),
            ),
        };
        non_ascii += good.chars().filter(|c| !c.is_ascii()).count();
        let Some(e) = error else { break };
        match e.error_len() {
            Some(len) => {
                invalid += 1;
                rest = &rest[e.valid_up_to() + len..];
            }
            None => {
                invalid += usize::from(complete);
                break;
            }
        }
    }
    (non_ascii, invalid)
}

/// Field counts of the first records of `sample` read with `delimiter` and `quote`.
fn field_counts(sample: &[u8], delimiter: u8, quote: u8, complete: bool) -> Vec<usize> {
    let mut rdr = ReaderBuilder::new()
        .delimiter(delimiter)
        .quote(quote)
        .build();
    let mut out = vec![0u8; 64 * 1024];
    let mut ends = vec![0usize; 1024];
    let mut input = sample;
    let mut counts = Vec::new();
    let mut nends = 0;
    while counts.len() < 50 {
        let (res, nin, _, nend) = rdr.read_record(input, &mut out, &mut ends[nends..]);
        input = &input[nin..];
        nends += nend;
        match res {
            ReadRecordResult::Record => {
                // A record cut by the end of the sample does not count.
                if input.is_empty() && !complete {
                    break;
                }
                counts.push(nends);
                nends = 0;
            }
            ReadRecordResult::InputEmpty => {
                if input.is_empty() && complete {
                    let (res, _, _, nend) = rdr.read_record(&[], &mut out, &mut ends[nends..]);
                    if res == ReadRecordResult::Record {
                        counts.push(nends + nend);
                    }
                }
                break;
            }
            ReadRecordResult::OutputFull => {
                // A huge field: fine for counting, keep going with a fresh buffer.
            }
            ReadRecordResult::OutputEndsFull => break,
            ReadRecordResult::End => break,
        }
    }
    counts
}

/// Picks the delimiter that splits the header into the most columns that the following
/// rows agree with.
fn pick_delimiter(sample: &[u8], quote: u8, complete: bool) -> u8 {
    let mut best = (0usize, b',');
    for d in DELIMITERS {
        let counts = field_counts(sample, d, quote, complete);
        let Some(&header) = counts.first() else {
            continue;
        };
        if header < 2 {
            continue;
        }
        let agree = counts.iter().filter(|c| **c == header).count();
        let score = agree * 10_000 + header;
        if score > best.0 {
            best = (score, d);
        }
    }
    best.1
}

/// `'` only when the file never uses `"` and `'` encloses values: it opens and closes
/// them about as often. An apostrophe only at the start of values (`'s-Hertogenbosch`,
/// or the `'` Magpie's exports put before `=1+1`) is text.
fn pick_quote(sample: &[u8]) -> u8 {
    if sample.contains(&b'"') {
        return b'"';
    }
    let boundary = |b: u8| DELIMITERS.contains(&b) || b == b'\n' || b == b'\r';
    let (mut opening, mut closing) = (0usize, 0usize);
    for w in sample.windows(2) {
        if boundary(w[0]) && w[1] == b'\'' {
            opening += 1;
        }
        if w[0] == b'\'' && boundary(w[1]) {
            closing += 1;
        }
    }
    let paired = opening.min(closing);
    if paired >= 2 && paired * 4 >= opening.max(closing) * 3 {
        b'\''
    } else {
        b'"'
    }
}

/// Sniffs a sample (the first bytes of the file; `complete` when it is the whole file).
pub fn sniff(sample: &[u8], complete: bool) -> Result<Sniffed, String> {
    if let Some(message) = not_csv(sample) {
        return Err(message);
    }
    let mut notes = Vec::new();
    let bom = sample.starts_with(b"\xEF\xBB\xBF");
    let body = if bom { &sample[3..] } else { sample };
    // UTF-8 when valid, or mostly valid: far more well-formed non-ASCII characters than
    // broken sequences, which a Windows-1252 file (é is one byte there) almost never has.
    // Then the broken bytes alone are read as Windows-1252 (`legacy_text::utf8_else_windows_1252`),
    // instead of every accented letter of the file turning into two wrong ones.
    let (non_ascii, invalid) = utf8_counts(body, complete);
    let encoding = if bom || invalid == 0 || non_ascii >= 4 * invalid {
        if invalid > 0 {
            notes.push(
                "A few bytes of the file are not valid UTF-8: each is read as its Windows-1252 character. \
                 If the whole file is Windows-1252, choose that encoding."
                    .to_owned(),
            );
        }
        Encoding::Utf8
    } else {
        notes.push(
            "The file is not valid UTF-8; it is read as Windows-1252 (Western European, a superset of Latin-1). \
             If accented letters look wrong in the preview, choose another encoding."
                .to_owned(),
        );
        Encoding::Windows1252
    };
    let quote = pick_quote(body);
    let delimiter = pick_delimiter(body, quote, complete);
    Ok(Sniffed {
        dialect: Dialect {
            delimiter,
            quote,
            encoding,
            bom,
        },
        notes,
    })
}

/// The delimiter as the API shows it.
pub fn delimiter_name(d: u8) -> String {
    match d {
        b'\t' => "\t".to_owned(),
        other => (other as char).to_string(),
    }
}

/// A delimiter or quote given by a user: one ASCII character (`\t` or "tab" for a tab).
pub fn parse_char(s: &str) -> Option<u8> {
    match s {
        "\\t" | "tab" | "\t" => Some(b'\t'),
        s if s.len() == 1
            && s.is_ascii()
            && !s.as_bytes()[0].is_ascii_alphanumeric()
            && s != "\n"
            && s != "\r" =>
        {
            Some(s.as_bytes()[0])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_quotes_and_encodings() {
        struct Case {
            sample: &'static [u8],
            delimiter: u8,
            quote: u8,
            encoding: Encoding,
            bom: bool,
        }
        let cases = [
            Case {
                sample: b"email,firstname\na@b.co,Ada\n",
                delimiter: b',',
                quote: b'"',
                encoding: Encoding::Utf8,
                bom: false,
            },
            Case {
                sample: b"email;firstname;city\na@b.co;Ada;Paris, France\nc@d.co;Bob;Lyon\n",
                delimiter: b';',
                quote: b'"',
                encoding: Encoding::Utf8,
                bom: false,
            },
            Case {
                sample: b"email\tname\na@b.co\tAda, Countess\n",
                delimiter: b'\t',
                quote: b'"',
                encoding: Encoding::Utf8,
                bom: false,
            },
            Case {
                sample: b"email|name|note\na@b.co|Ada|x;y\n",
                delimiter: b'|',
                quote: b'"',
                encoding: Encoding::Utf8,
                bom: false,
            },
            Case {
                sample: b"\"email\",\"note\"\n\"a@b.co\",\"semi; colons; here\"\n",
                delimiter: b',',
                quote: b'"',
                encoding: Encoding::Utf8,
                bom: false,
            },
            Case {
                sample: b"\xEF\xBB\xBFemail;nom\na@b.co;Jos\xC3\xA9\n",
                delimiter: b';',
                quote: b'"',
                encoding: Encoding::Utf8,
                bom: true,
            },
            Case {
                sample: b"email;nom\na@b.co;Jos\xE9\n",
                delimiter: b';',
                quote: b'"',
                encoding: Encoding::Windows1252,
                bom: false,
            },
            Case {
                sample: b"'email','name'\n'a@b.co','Ada'\n'c@d.co','Bob'\n",
                delimiter: b',',
                quote: b'\'',
                encoding: Encoding::Utf8,
                bom: false,
            },
            Case {
                sample: b"email\na@b.co\nc@d.co\n",
                delimiter: b',',
                quote: b'"',
                encoding: Encoding::Utf8,
                bom: false,
            },
            // Apostrophes that only start values are text: a Dutch town, and the `'`
            // Magpie's exports put before values that could run as formulas.
            Case {
                sample: b"email,city\na@b.co,'s-Hertogenbosch\nc@d.co,'s-Gravenhage\ne@f.co,'s-Hertogenbosch\ng@h.co,'s-Gravenhage\n",
                delimiter: b',',
                quote: b'"',
                encoding: Encoding::Utf8,
                bom: false,
            },
            Case {
                sample: b"id,firstname,lastname\r\n1,'=1+1,A\r\n2,'+33 612,B\r\n3,'@home,C\r\n4,''=x,D\r\n",
                delimiter: b',',
                quote: b'"',
                encoding: Encoding::Utf8,
                bom: false,
            },
        ];
        for c in cases {
            let s = sniff(c.sample, true).unwrap();
            assert!(
                !s.notes.iter().any(|n| n.contains("A few bytes")),
                "{:?}",
                s.notes
            );
            let label = String::from_utf8_lossy(c.sample);
            assert_eq!(s.dialect.delimiter, c.delimiter, "delimiter of {label:?}");
            assert_eq!(s.dialect.quote, c.quote, "quote of {label:?}");
            assert_eq!(s.dialect.encoding, c.encoding, "encoding of {label:?}");
            assert_eq!(s.dialect.bom, c.bom, "bom of {label:?}");
            assert_eq!(
                s.notes.is_empty(),
                c.encoding == Encoding::Utf8,
                "{label:?}"
            );
        }
    }

    /// A UTF-8 file with one stray byte stays UTF-8 (that row fails alone, and a note
    /// says so); a Windows-1252 file with a double-encoded-looking pair stays 1252.
    #[test]
    fn mostly_utf8_is_utf8() {
        let mut sample = b"email,name\n".to_vec();
        for i in 0..20 {
            sample.extend_from_slice(format!("u{i}@x.org,Jos\u{e9} Zo\u{eb}\n").as_bytes());
        }
        sample.extend_from_slice(b"bad@x.org,Ren\xE9\n");
        let s = sniff(&sample, true).unwrap();
        assert_eq!(s.dialect.encoding, Encoding::Utf8);
        assert!(
            s.notes.iter().any(|n| n.contains("A few bytes")),
            "{:?}",
            s.notes
        );
        let latin = b"email,name\na@x.org,Jos\xE9\nb@x.org,M\xFCller\nc@x.org,\xC3\xA9t\xE9\n";
        assert_eq!(
            sniff(latin, true).unwrap().dialect.encoding,
            Encoding::Windows1252
        );
    }

    #[test]
    fn a_sample_cut_inside_a_character_is_still_utf8() {
        let text = "email,nom\na@b.co,José\n".as_bytes();
        let cut = &text[..text.len() - 2]; // inside the two bytes of é
        assert_eq!(sniff(cut, false).unwrap().dialect.encoding, Encoding::Utf8);
        assert_eq!(
            sniff(cut, true).unwrap().dialect.encoding,
            Encoding::Windows1252
        );
    }

    #[test]
    fn files_that_are_not_csv() {
        let cases: [(&[u8], &str); 7] = [
            (b"PK\x03\x04\x14\x00\x06\x00", "ZIP"),
            (b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\x00\x00", "xls"),
            (b"%PDF-1.7\n", "PDF"),
            (b"\x89PNG\r\n\x1a\n\x00\x00", "image"),
            (b"\xFF\xFEe\x00m\x00", "UTF-16"),
            (
                b"\x00\x01\x02\x03\x04\x05\x06\x07garbage\x00\x00\x00",
                "binary",
            ),
            (b"", "empty"),
        ];
        for (sample, want) in cases {
            let err = sniff(sample, true).unwrap_err();
            assert!(err.contains(want), "{err} should mention {want}");
        }
    }

    #[test]
    fn user_given_characters() {
        assert_eq!(parse_char(";"), Some(b';'));
        assert_eq!(parse_char("tab"), Some(b'\t'));
        assert_eq!(parse_char("\\t"), Some(b'\t'));
        assert_eq!(parse_char("a"), None);
        assert_eq!(parse_char(",,"), None);
        assert_eq!(parse_char("é"), None);
    }
}
