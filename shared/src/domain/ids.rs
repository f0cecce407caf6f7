//! Identifiers, names and free text supplied by clients: one rule for each, used by every
//! endpoint that accepts them (ingestion, `PUT`, path parameters).

/// Longest id or name, in characters.
pub const MAX_ID_CHARS: usize = 128;
/// Longest free text (operation, error), in characters.
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

/// Checks a display name (`agent_name`, `integration_name`, a key's name): the id rule, since
/// names are shown on one line wherever ids are.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    check_id(name)
}

/// Checks free text (an operation, an error message): at most 1024 characters, and no control
/// characters but line breaks and tabs, which stack traces and multi-line errors carry.
pub fn check_text(text: &str) -> Result<(), &'static str> {
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err("must be at most 1024 characters");
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err("must not contain control characters other than line breaks and tabs");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_id_rule() {
        assert!(check_name("Sales Assistant").is_ok());
        assert_eq!(check_name(""), Err("must be 1 to 128 characters"));
        assert_eq!(
            check_name("bell\u{7}"),
            Err("must not contain control characters")
        );
        assert!(check_name(&"x".repeat(129)).is_err());
    }

    #[test]
    fn free_text_keeps_line_breaks_and_tabs_but_no_other_control_characters() {
        assert!(check_text("line one\n\tline two\r\n").is_ok());
        assert!(check_text("").is_ok());
        assert!(check_text("escape \u{1b}[31m").is_err());
        assert!(check_text(&"x".repeat(1025)).is_err());
    }
}
