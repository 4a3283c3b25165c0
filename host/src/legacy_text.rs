//! Text in the legacy charset the web and spreadsheets fall back to: Windows-1252
//! (Western European, a superset of Latin-1). Imports and form posts read bytes that are
//! not UTF-8 so, never as replacement characters.

/// Bytes as Windows-1252 text. No BOM sniffing: `FF FE` at the start are two letters.
pub fn windows_1252(bytes: &[u8]) -> String {
    encoding_rs::WINDOWS_1252
        .decode_without_bom_handling(bytes)
        .0
        .into_owned()
}

/// Bytes as text: the well-formed UTF-8 runs as UTF-8, each byte UTF-8 cannot read as the
/// Windows-1252 character it is. A Windows-1252 value reads right so, and a UTF-8 one with
/// a stray byte loses nothing (a replacement character would destroy the byte).
pub fn utf8_else_windows_1252(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        text.push_str(&windows_1252(chunk.invalid()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_bytes_only_are_windows_1252() {
        assert_eq!(utf8_else_windows_1252(b"Jos\xe9"), "José");
        assert_eq!(utf8_else_windows_1252(b"Zo\xc3\xab \x80"), "Zoë €");
        assert_eq!(utf8_else_windows_1252(b"\xff\xfe"), "ÿþ");
        assert_eq!(windows_1252(b"K\xf6ln"), "Köln");
    }
}
