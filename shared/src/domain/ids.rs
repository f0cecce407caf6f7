//! Identifiers and free text supplied by clients.

/// Longest id, in characters.
pub const MAX_ID_CHARS: usize = 128;
/// Longest free text (operation, error, names), in characters.
pub const MAX_TEXT_CHARS: usize = 1024;

/// Checks a client-supplied id: 1 to 128 characters, no control characters. The message
/// is meant to follow the field name.
pub fn check_id(id: &str) -> Result<(), &'static str> {
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_ID_CHARS {
        return Err("must be 1 to 128 characters");
    }
    if id.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(())
}
