//! What `send` and `receive` share: the file PDU's fields, ids, and file-name safety; and
//! what every saver of files (`receive`, `curl -o`) shares: the temporary file.

/// A uuid4 as 32 lowercase hex digits without dashes (version and variant bits set), as the
/// reference's `id` field.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&crate::random_u64().to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = Vec::with_capacity(32);
    crate::pdu::hex_encode_into(&bytes, &mut out);
    String::from_utf8(out).expect("hex is ASCII")
}

/// Reduces a received `filename` to a name that is safe to create inside the target folder:
/// its last component (after `/` or `\`), which must not be empty, `.`, `..`, contain NUL or
/// control characters, or exceed 255 bytes. `None` when nothing safe remains.
pub fn safe_file_name(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next()?;
    let bad = last.is_empty() || last == "." || last == ".." || last.len() > 255 || last.chars().any(char::is_control);
    (!bad).then(|| last.to_string())
}

/// A new temporary file in `dir` (hidden, named `{prefix}…`), to be renamed over the target
/// once complete. Its mode is `0666` less the umask, as `cp` and curl create files: the
/// 0600 that temporary files get by default would stay with the saved file.
pub fn partial_file(dir: &std::path::Path, prefix: &str) -> std::io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_files_get_the_mode_the_umask_allows() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = partial_file(dir.path(), ".t-").unwrap();
        let mode = f.as_file().metadata().unwrap().permissions().mode() & 0o777;
        // The umask is the process's; read it back from a file made the ordinary way.
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        let expected = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, expected, "{mode:o}: not the mode of a file made the ordinary way ({expected:o})");
    }

    #[test]
    fn ids_are_uuid4_hex_and_differ() {
        let a = new_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(&a[12..13], "4");
        assert!(matches!(&a[16..17], "8" | "9" | "a" | "b"));
        assert_ne!(a, new_id());
    }

    #[test]
    fn file_names_cannot_leave_the_target_folder() {
        assert_eq!(safe_file_name("report.pdf").as_deref(), Some("report.pdf"));
        assert_eq!(safe_file_name("/etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(safe_file_name("../../x").as_deref(), Some("x"));
        assert_eq!(safe_file_name("C:\\Users\\a\\evil.exe").as_deref(), Some("evil.exe"));
        for bad in ["", "..", ".", "dir/", "a\0b", "new\nline", "../..", &"x".repeat(256)] {
            assert_eq!(safe_file_name(bad), None, "{bad:?}");
        }
    }
}
