//! Where each JSON value of a stream of concatenated values ends (`{...}{...}`, with
//! whitespace or nothing between them), found as the bytes arrive: the scan resumes where
//! it stopped, so a value that arrives in many pieces is scanned once, not once per piece.
//!
//! Only the structure is followed (strings, escapes, nesting); whether a value is valid
//! JSON is for the parser that reads it once it is whole.

/// What [`Splitter::scan`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// A whole value at `buffer[start..end]`; everything before `end` is consumed.
    Value { start: usize, end: usize },
    /// No whole value yet. The first `idle` bytes are whitespace before any value and can be
    /// dropped; the rest is the beginning of a value.
    More { idle: usize },
    /// The stream ended between values.
    End,
    /// The bytes cannot be JSON values: a closing bracket where a value should start, or
    /// the stream ended inside a value.
    Malformed(String),
}

/// The scan state of the value being read.
#[derive(Debug, Default)]
pub struct Splitter {
    /// Where the current value starts, once it has.
    start: Option<usize>,
    /// The next byte to look at.
    pos: usize,
    /// Open brackets of the current value (0 for a top-level string or scalar).
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The current value is a bare number, `true`, `false` or `null`.
    scalar: bool,
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl Splitter {
    /// Looks for the end of the next value in `buffer`, which holds the unconsumed bytes
    /// (the same bytes as at the last call, plus what arrived since, until a value or idle
    /// bytes are taken out: then the caller drops them and calls [`Splitter::reset`]).
    /// `eof` says no more bytes will come.
    pub fn scan(&mut self, buffer: &[u8], eof: bool) -> Scan {
        while self.pos < buffer.len() {
            let b = buffer[self.pos];
            let Some(start) = self.start else {
                match b {
                    b if is_whitespace(b) => {}
                    b'{' | b'[' => {
                        self.start = Some(self.pos);
                        self.depth = 1;
                    }
                    b'"' => {
                        self.start = Some(self.pos);
                        self.in_string = true;
                    }
                    b'}' | b']' => {
                        return Scan::Malformed(format!(
                            "Malformed JSON: unexpected '{}' where a record should start",
                            char::from(b)
                        ))
                    }
                    _ => {
                        self.start = Some(self.pos);
                        self.scalar = true;
                    }
                }
                self.pos += 1;
                continue;
            };
            if self.in_string {
                // Jump to the next quote or backslash: most of a record is string content.
                if self.escaped {
                    self.escaped = false;
                    self.pos += 1;
                    continue;
                }
                match memchr::memchr2(b'"', b'\\', &buffer[self.pos..]) {
                    None => self.pos = buffer.len(),
                    Some(offset) => {
                        self.pos += offset;
                        if buffer[self.pos] == b'\\' {
                            self.escaped = true;
                        } else {
                            self.in_string = false;
                            if self.depth == 0 {
                                return self.value(start, self.pos + 1);
                            }
                        }
                        self.pos += 1;
                    }
                }
                continue;
            }
            if self.scalar {
                if is_whitespace(b) || matches!(b, b'{' | b'[' | b'"' | b'}' | b']') {
                    return self.value(start, self.pos);
                }
                self.pos += 1;
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return self.value(start, self.pos + 1);
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        match self.start {
            Some(start) if eof && self.scalar => self.value(start, buffer.len()),
            Some(_) if eof => {
                Scan::Malformed("Malformed JSON: the body ended inside a record".to_owned())
            }
            Some(start) => Scan::More { idle: start },
            None if eof => Scan::End,
            None => Scan::More { idle: self.pos },
        }
    }

    fn value(&mut self, start: usize, end: usize) -> Scan {
        self.pos = end;
        Scan::Value { start, end }
    }

    /// Starts afresh, after the caller dropped the bytes a [`Scan`] let it drop.
    pub fn reset(&mut self) {
        *self = Splitter::default();
    }

    /// After the caller dropped `n` idle bytes from the front of the buffer: keeps the scan
    /// of the value in progress.
    pub fn dropped(&mut self, n: usize) {
        self.pos -= n;
        if let Some(start) = &mut self.start {
            *start -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `chunks` arriving one after another, as a stream reader does.
    fn split(chunks: &[&str]) -> (Vec<String>, Option<Scan>) {
        let mut splitter = Splitter::default();
        let mut buffer: Vec<u8> = Vec::new();
        let mut values = Vec::new();
        let mut chunks = chunks.iter();
        let mut eof = false;
        loop {
            match splitter.scan(&buffer, eof) {
                Scan::Value { start, end } => {
                    values.push(String::from_utf8(buffer[start..end].to_vec()).unwrap());
                    buffer.drain(..end);
                    splitter.reset();
                }
                Scan::More { idle } => {
                    buffer.drain(..idle);
                    splitter.dropped(idle);
                    match chunks.next() {
                        Some(chunk) => buffer.extend_from_slice(chunk.as_bytes()),
                        None => eof = true,
                    }
                }
                Scan::End => return (values, None),
                other => return (values, Some(other)),
            }
        }
    }

    #[test]
    fn concatenated_values_with_or_without_whitespace() {
        let (values, end) = split(&[r#"{"a":1}{"b":[2,{"c":"}"}]}  "#, "\r\n{}\n"]);
        assert_eq!(values, [r#"{"a":1}"#, r#"{"b":[2,{"c":"}"}]}"#, "{}"]);
        assert_eq!(end, None);
    }

    #[test]
    fn values_split_anywhere_across_pieces() {
        let text = r#"{"k":"a\"b\\"} [1,{"x":"{["}] "s\"" 12 true{}"#;
        let whole = split(&[text]).0;
        assert_eq!(
            whole,
            [
                r#"{"k":"a\"b\\"}"#,
                r#"[1,{"x":"{["}]"#,
                r#""s\"""#,
                "12",
                "true",
                "{}"
            ]
        );
        for cut in 0..text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(split(&[a, b]).0, whole, "cut at {cut}");
        }
        let bytes: Vec<String> = text.chars().map(String::from).collect();
        let pieces: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(split(&pieces).0, whole);
    }

    #[test]
    fn what_cannot_be_split() {
        assert!(matches!(
            split(&[r#"{"a":1}}"#]),
            (v, Some(Scan::Malformed(_))) if v.len() == 1
        ));
        assert!(matches!(
            split(&[r#"{"a":1}{"b":"#]),
            (v, Some(Scan::Malformed(m))) if v.len() == 1 && m.contains("ended inside")
        ));
        assert_eq!(split(&["  \n "]), (Vec::new(), None));
    }

    #[test]
    fn idle_whitespace_can_be_dropped_and_a_started_value_is_kept() {
        let mut splitter = Splitter::default();
        assert_eq!(splitter.scan(b"   ", false), Scan::More { idle: 3 });
        splitter.dropped(3);
        assert_eq!(splitter.scan(b"  {\"a\"", false), Scan::More { idle: 2 });
        splitter.dropped(2);
        assert_eq!(
            splitter.scan(b"{\"a\":1}", false),
            Scan::Value { start: 0, end: 7 }
        );
    }
}
