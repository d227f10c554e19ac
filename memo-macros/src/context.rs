//! What a function's attribute can learn about the block it stands in, when the block's own
//! `#[memoize]` did not tell it: a proc macro sees only its own item, so this reads the source
//! around the attribute (`proc_macro::Span::local_file`, `line`, `column`) and finds the innermost
//! open `{`. Used only to turn the companions' many rustc errors in a trait impl
//! (`method __memo_cache_find is not a member of trait Repo`, one per companion) into one error
//! at the attribute saying what to write instead. Conservative by design: whenever the source is
//! not at hand (another crate, a macro-generated span, rust-analyzer), or the enclosing block's
//! header is anything but a plain `impl ... Trait for Type`, the answer is "not a trait impl" and
//! the expansion is the usual one.

/// Whether the attribute being expanded stands directly inside a trait impl's block.
pub(crate) fn attribute_in_trait_impl() -> bool {
    if !proc_macro::is_available() {
        return false;
    }
    let span = proc_macro::Span::call_site();
    let Some(path) = span.local_file() else {
        return false;
    };
    let Ok(source) = std::fs::read_to_string(path) else {
        return false;
    };
    match offset_of(&source, span.line(), span.column()) {
        Some(offset) => innermost_block_is_trait_impl(&source[..offset]),
        None => false,
    }
}

/// The byte offset of one-indexed `line` and `column` (in characters), if the source has them.
fn offset_of(source: &str, line: usize, column: usize) -> Option<usize> {
    let start = if line <= 1 {
        0
    } else {
        source
            .match_indices('\n')
            .nth(line - 2)
            .map(|(index, _)| index + 1)?
    };
    let rest = &source[start..];
    let within = rest
        .char_indices()
        .map(|(index, _)| index)
        .chain(std::iter::once(rest.len()))
        .nth(column.saturating_sub(1))?;
    Some(start + within)
}

/// A token of the scanned source, as far as block headers need one.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    Punct(char),
    /// A literal or a lifetime: neither opens nor closes anything.
    Other,
}

/// Whether the innermost `{` left open at the end of `prefix` opens the items of a trait impl.
fn innermost_block_is_trait_impl(prefix: &str) -> bool {
    // For each open `{`: whether its header was a trait impl's.
    let mut open: Vec<bool> = Vec::new();
    let mut header: Vec<Token> = Vec::new();
    for token in Lexer::new(prefix) {
        match token {
            Token::Punct('{') => {
                open.push(is_trait_impl_header(&header));
                header.clear();
            }
            Token::Punct('}') => {
                open.pop();
                header.clear();
            }
            Token::Punct(';') => header.clear(),
            token => header.push(token),
        }
    }
    open.last().copied().unwrap_or(false)
}

/// `impl<..> Trait<..> for Type<..>` (after attributes, `unsafe`, `default`), with `for` at
/// the top level before any `where`, and not `for<'a>` (a bound's quantifier).
fn is_trait_impl_header(header: &[Token]) -> bool {
    let mut brackets = 0usize;
    let mut start = None;
    for (index, token) in header.iter().enumerate() {
        match token {
            Token::Punct('[') => brackets += 1,
            Token::Punct(']') => brackets = brackets.saturating_sub(1),
            Token::Ident(word) if brackets == 0 && word == "impl" => {
                start = Some(index + 1);
                break;
            }
            Token::Ident(word)
                if brackets == 0 && !matches!(word.as_str(), "unsafe" | "default") =>
            {
                return false;
            }
            _ => {}
        }
    }
    let Some(start) = start else {
        return false;
    };
    let rest = &header[start..];
    let (mut angles, mut parens) = (0usize, 0usize);
    let mut previous: Option<&Token> = None;
    for (index, token) in rest.iter().enumerate() {
        match token {
            Token::Punct('<') => angles += 1,
            // `->` in an `Fn() -> T` bound closes nothing.
            Token::Punct('>') if previous != Some(&Token::Punct('-')) => {
                angles = angles.saturating_sub(1);
            }
            Token::Punct('(' | '[') => parens += 1,
            Token::Punct(')' | ']') => parens = parens.saturating_sub(1),
            Token::Ident(word) if angles == 0 && parens == 0 && word == "where" => return false,
            Token::Ident(word) if angles == 0 && parens == 0 && word == "for" => {
                return rest
                    .get(index + 1)
                    .is_some_and(|next| next != &Token::Punct('<'));
            }
            _ => {}
        }
        previous = Some(token);
    }
    false
}

/// Rust's lexical structure, enough to skip comments, strings, characters and lifetimes.
struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl<'a> Lexer<'a> {
    fn new(source: &'a str) -> Self {
        Self {
            chars: source.chars().peekable(),
        }
    }

    fn skip_line(&mut self) {
        for c in self.chars.by_ref() {
            if c == '\n' {
                break;
            }
        }
    }

    /// After `/*`: up to the matching `*/` (block comments nest).
    fn skip_block_comment(&mut self) {
        let mut depth = 1usize;
        while let Some(c) = self.chars.next() {
            match (c, self.chars.peek()) {
                ('/', Some('*')) => {
                    self.chars.next();
                    depth += 1;
                }
                ('*', Some('/')) => {
                    self.chars.next();
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    /// After the opening `"` of a string with escapes.
    fn skip_string(&mut self) {
        while let Some(c) = self.chars.next() {
            match c {
                '\\' => {
                    self.chars.next();
                }
                '"' => return,
                _ => {}
            }
        }
    }

    /// After `r` and `hashes` `#`s and the `"` of a raw string.
    fn skip_raw_string(&mut self, hashes: usize) {
        while let Some(c) = self.chars.next() {
            if c == '"' {
                let mut closing = 0;
                while closing < hashes && self.chars.peek() == Some(&'#') {
                    self.chars.next();
                    closing += 1;
                }
                if closing == hashes {
                    return;
                }
            }
        }
    }

    /// After a `'`: a character literal (`'a'`, `'\n'`, `'{'`) or a lifetime (`'a`).
    fn skip_quote(&mut self) {
        match self.chars.next() {
            Some('\\') => {
                self.chars.next();
                for c in self.chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                }
            }
            Some(_) if self.chars.peek() == Some(&'\'') => {
                self.chars.next();
            }
            Some(_) => {
                while self.chars.peek().is_some_and(|c| is_ident_char(*c)) {
                    self.chars.next();
                }
            }
            None => {}
        }
    }

    fn ident(&mut self, first: char) -> Token {
        let mut word = String::from(first);
        while let Some(&c) = self.chars.peek() {
            if !is_ident_char(c) {
                break;
            }
            word.push(c);
            self.chars.next();
        }
        let prefixed = matches!(word.as_str(), "b" | "c" | "r" | "br" | "cr");
        match self.chars.peek() {
            Some('"') if prefixed => {
                self.chars.next();
                if word.ends_with('r') {
                    self.skip_raw_string(0);
                } else {
                    self.skip_string();
                }
                Token::Other
            }
            Some('\'') if word == "b" => {
                self.chars.next();
                self.skip_quote();
                Token::Other
            }
            Some('#') if word.ends_with('r') && prefixed => {
                let mut hashes = 0;
                while self.chars.peek() == Some(&'#') {
                    self.chars.next();
                    hashes += 1;
                }
                if self.chars.peek() == Some(&'"') {
                    self.chars.next();
                    self.skip_raw_string(hashes);
                    return Token::Other;
                }
                // A raw identifier (`r#for`): never a keyword.
                let mut raw = String::from("r#");
                while let Some(&c) = self.chars.peek() {
                    if !is_ident_char(c) {
                        break;
                    }
                    raw.push(c);
                    self.chars.next();
                }
                Token::Ident(raw)
            }
            _ => Token::Ident(word),
        }
    }
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        loop {
            let c = self.chars.next()?;
            return Some(match c {
                c if c.is_whitespace() => continue,
                '/' if self.chars.peek() == Some(&'/') => {
                    self.skip_line();
                    continue;
                }
                '/' if self.chars.peek() == Some(&'*') => {
                    self.chars.next();
                    self.skip_block_comment();
                    continue;
                }
                '"' => {
                    self.skip_string();
                    Token::Other
                }
                '\'' => {
                    self.skip_quote();
                    Token::Other
                }
                c if is_ident_char(c) => self.ident(c),
                c => Token::Punct(c),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The source up to the `@` marker.
    fn at_marker(source: &str) -> bool {
        let offset = source.find('@').expect("a marker");
        innermost_block_is_trait_impl(&source[..offset])
    }

    #[test]
    fn trait_impls_are_told_apart_from_inherent_impls() {
        assert!(at_marker("impl Repo for Pg { @ fn find(&self) {} }"));
        assert!(at_marker(
            "#[allow(x)] unsafe impl<T: Clone> Repo<T> for Pg<T> where T: Send { fn a() {} @ }"
        ));
        assert!(at_marker(
            "impl<F: for<'a> Fn(&'a u8) -> u8> Repo for W<F> { @ }"
        ));
        assert!(at_marker(
            "mod m { fn f() { let x = '{'; } impl fmt::Display for X { @ } }"
        ));
        assert!(!at_marker("impl Pg { @ fn find(&self) {} }"));
        assert!(!at_marker("impl<T> W<T> where T: for<'a> Fn(&'a u8) { @ }"));
        assert!(!at_marker("impl Repo for Pg { fn find(&self) { @ } }"));
        assert!(!at_marker("impl Repo for Pg { } impl Pg { @ }"));
        assert!(!at_marker("fn f() { for x in y { @ } }"));
        assert!(!at_marker("@"));
    }

    #[test]
    fn comments_strings_characters_and_lifetimes_open_nothing() {
        assert!(at_marker(
            "impl Repo for Pg { // {\n /* { /* } */ { */ fn a<'a>(x: &'a str) -> char { \
             let _ = (\"{\\\"\", r#\"}\"#, b'}', '\\'', br\"{\", 'x'); '}' } @ }"
        ));
        assert!(!at_marker("impl r#for { @ }"));
    }

    #[test]
    fn offsets_count_lines_and_characters_from_one() {
        let source = "ab\nçd@\n";
        assert_eq!(offset_of(source, 2, 3), source.find('@'));
        assert_eq!(offset_of(source, 1, 1), Some(0));
        assert_eq!(offset_of(source, 9, 1), None);
    }
}
