//! [`ConfigError`]: a mistake in a pipeline file, shown like a compiler error — message, file,
//! line and column, the offending line with the spot underlined, and what would be valid.

use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The exit status of the `milo` command for a bad pipeline file (a usage error).
pub const EXIT_CODE: u8 = 2;

/// A place in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, as it was named when loaded.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The byte range in the file's text.
    pub span: Range<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// What sort of mistake a [`ConfigError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file does not exist.
    NotFound,
    /// The file could not be read (permissions, not UTF-8, ...).
    Io,
    /// The file is not valid TOML.
    Syntax,
    /// A key that means nothing where it is.
    UnknownKey,
    /// A value of the wrong type (a string where a number belongs, ...).
    WrongType,
    /// A value of the right type that is not allowed (negative weight, `jobs = 0`, a bad
    /// duration or policy value, an empty name, ...).
    InvalidValue,
    /// A required key (`name`, `run`) is missing.
    MissingKey,
    /// The file defines no phase.
    NoPhases,
    /// Two phases have the same name.
    DuplicatePhase,
    /// A phase depends on a name that is not a phase.
    UnknownDependency,
    /// A parameter value that is unknown, of the wrong type, not among the choices, or
    /// missing (`-p NAME=VALUE`, `MILO_PARAM_NAME`).
    Param,
    /// A [`milo::pipeline::PipelineError`] found by the core, pointed at its place in the file.
    Pipeline,
}

/// A mistake in a pipeline file. Its [`Display`](fmt::Display) is the full report:
///
/// ```text
/// error: unknown key `dependson` in phase `render`; did you mean `depends_on`?
///   --> milo.toml:12:1
///    |
/// 12 | dependson = ["a"]
///    | ^^^^^^^^^ unknown key
///    = help: valid keys in a phase: ...
/// ```
///
/// One `ConfigError` may hold several mistakes of the same file ([`errors`](Self::errors)):
/// its display lists them all, then how many there were. Its [`kind`](Self::kind),
/// [`message`](Self::message) and [`location`](Self::location) are the first one's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.render_all())]
pub struct ConfigError {
    kind: ErrorKind,
    diagnostic: Box<Diagnostic>,
    /// Whether this is a warning (displayed as `warning: …`).
    warning: bool,
    /// The file's other mistakes, after this one.
    more: Vec<ConfigError>,
    /// The file, for the count line of several errors.
    path: Option<PathBuf>,
}

impl ConfigError {
    /// What sort of mistake this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The one-line message (the `error:` line, without `error: `).
    pub fn message(&self) -> &str {
        &self.diagnostic.message
    }

    /// Where the mistake is, if it is in the file's text.
    pub fn location(&self) -> Option<&Location> {
        self.diagnostic.primary.as_ref().map(|s| &s.location)
    }

    /// The `help:` lines: what would be valid.
    pub fn help(&self) -> &[String] {
        &self.diagnostic.help
    }

    /// The exit status for the `milo` command: [`EXIT_CODE`] (2).
    pub fn exit_code(&self) -> u8 {
        EXIT_CODE
    }

    /// Every mistake this error reports, the first one first (just itself for a single one).
    pub fn errors(&self) -> impl Iterator<Item = &ConfigError> {
        std::iter::once(self).chain(&self.more)
    }

    /// Whether this is a warning, not an error.
    pub fn is_warning(&self) -> bool {
        self.warning
    }

    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            diagnostic: Box::new(Diagnostic {
                message: message.into(),
                primary: None,
                secondary: Vec::new(),
                help: Vec::new(),
            }),
            warning: false,
            more: Vec::new(),
            path: None,
        }
    }

    /// The mistakes of file `path` as one error (`errors` must not be empty).
    pub(crate) fn many(path: &Path, errors: Vec<ConfigError>) -> Self {
        let mut errors = errors.into_iter().flat_map(|e| {
            let ConfigError { more, .. } = &e;
            let more = more.clone();
            std::iter::once(ConfigError { more: Vec::new(), ..e }).chain(more)
        });
        let Some(mut first) = errors.next() else {
            return ConfigError::new(ErrorKind::Io, format!("`{}` could not be loaded", path.display()));
        };
        first.more = errors.collect();
        if !first.more.is_empty() {
            first.path = Some(path.to_owned());
        }
        first
    }

    /// Makes this a warning.
    pub(crate) fn warning(mut self) -> Self {
        self.warning = true;
        self
    }

    /// Sets the underlined place.
    pub(crate) fn at(mut self, snippet: Snippet) -> Self {
        self.diagnostic.primary = Some(snippet);
        self
    }

    /// Adds another place, underlined with `-`.
    pub(crate) fn also(mut self, snippet: Snippet) -> Self {
        self.diagnostic.secondary.push(snippet);
        self
    }

    /// Adds a `help:` line.
    pub(crate) fn help_line(mut self, help: impl Into<String>) -> Self {
        self.diagnostic.help.push(help.into());
        self
    }

    /// The full report. Control characters other than its own line breaks are escaped
    /// (`\u{1b}`): a key, a value or a line of the file echoed in a message must not drive the
    /// terminal that shows it.
    fn render_all(&self) -> String {
        let out = self.render_raw();
        if !out.chars().any(|c| c.is_control() && c != '\n') {
            return out;
        }
        let mut escaped = String::with_capacity(out.len() + 16);
        for c in out.chars() {
            if c.is_control() && c != '\n' {
                escaped.extend(c.escape_unicode());
            } else {
                escaped.push(c);
            }
        }
        escaped
    }

    fn render_raw(&self) -> String {
        let mut out = self.render();
        for e in &self.more {
            out.push_str("\n\n");
            out.push_str(&e.render());
        }
        if let Some(path) = self.path.as_ref().filter(|_| !self.more.is_empty()) {
            let _ = write!(
                out,
                "\n\nerror: could not load `{}`: {} errors",
                path.display(),
                self.more.len() + 1
            );
        }
        out
    }

    fn render(&self) -> String {
        let d = &*self.diagnostic;
        let snippets: Vec<&Snippet> = d.primary.iter().chain(&d.secondary).collect();
        let width = snippets
            .iter()
            .map(|s| s.location.line.to_string().len())
            .max()
            .unwrap_or(1);
        let pad = " ".repeat(width);
        let level = if self.warning { "warning" } else { "error" };
        let mut out = format!("{level}: {}", d.message);
        for (i, snippet) in snippets.iter().enumerate() {
            let primary = i == 0 && d.primary.is_some();
            let (arrow, mark) = if primary { ("-->", '^') } else { (":::", '-') };
            if i > 0 {
                let _ = write!(out, "\n{pad} |");
            }
            let _ = write!(out, "\n{pad}{arrow} {}\n{pad} |", snippet.location);
            let _ = write!(out, "\n{:>width$} | {}", snippet.location.line, snippet.text);
            let underline = mark.to_string().repeat(snippet.width.max(1));
            let _ = write!(out, "\n{pad} | {}{underline}", " ".repeat(snippet.indent));
            if let Some(label) = &snippet.label {
                let _ = write!(out, " {label}");
            }
        }
        for help in &d.help {
            let _ = write!(out, "\n{pad} = help: {help}");
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Diagnostic {
    message: String,
    primary: Option<Snippet>,
    secondary: Vec<Snippet>,
    help: Vec<String>,
}

/// One underlined place in the file, ready to print.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snippet {
    location: Location,
    /// The line, tabs expanded.
    text: String,
    /// Display columns before the underline.
    indent: usize,
    /// Display columns underlined (at least one is printed).
    width: usize,
    label: Option<String>,
}

impl Snippet {
    /// Sets the text after the underline.
    pub(crate) fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
}

const TAB: &str = "    ";

/// A pipeline file's name and text, to turn byte spans into [`Location`]s and [`Snippet`]s.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceFile<'a> {
    pub(crate) path: &'a Path,
    pub(crate) text: &'a str,
}

impl SourceFile<'_> {
    /// The line and column of `span`'s start.
    pub(crate) fn location(&self, span: Range<usize>) -> Location {
        let start = floor_char_boundary(self.text, span.start);
        let before = &self.text[..start];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            path: self.path.to_owned(),
            line: before.matches('\n').count() + 1,
            column: self.text[line_start..start].chars().count() + 1,
            span,
        }
    }

    /// `span` underlined (up to the end of its first line).
    pub(crate) fn snippet(&self, span: Range<usize>) -> Snippet {
        let location = self.location(span.clone());
        let start = floor_char_boundary(self.text, span.start);
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[start..].find('\n').map_or(self.text.len(), |i| start + i);
        let line = self.text[line_start..line_end].trim_end_matches('\r');
        let end = floor_char_boundary(self.text, span.end.min(line_start + line.len()).max(start));
        let columns = |s: &str| s.chars().map(|c| if c == '\t' { TAB.len() } else { 1 }).sum::<usize>();
        Snippet {
            location,
            text: line.replace('\t', TAB),
            indent: columns(&self.text[line_start..start]),
            width: columns(&self.text[start..end]),
            label: None,
        }
    }

    /// An error underlining `span`.
    pub(crate) fn error(&self, kind: ErrorKind, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError::new(kind, message).at(self.snippet(span))
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SourceFile<'_> {
        SourceFile {
            path: Path::new("milo.toml"),
            text,
        }
    }

    #[test]
    fn locations_are_one_based_lines_and_character_columns() {
        let src = file("a = 1\nbé = \"x\"\n");
        let l = src.location(12..15);
        assert_eq!((l.line, l.column), (2, 6));
        assert_eq!(l.to_string(), "milo.toml:2:6");
        assert_eq!(src.location(0..1).column, 1);
    }

    #[test]
    fn control_characters_in_a_report_are_escaped() {
        let src = file("a = 1 # \u{1b}[2J\u{7}\nb = 2");
        let err = src
            .error(ErrorKind::Syntax, 0..1, "bad key `\u{1b}]0;x\u{7}`")
            .help_line("\r");
        let text = err.to_string();
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
        assert!(text.contains("bad key `\\u{1b}]0;x\\u{7}`"), "{text}");
        assert!(text.contains("1 | a = 1 # \\u{1b}[2J\\u{7}"), "{text}");
        assert!(text.contains("= help: \\u{d}"), "{text}");
    }

    #[test]
    fn renders_like_a_compiler() {
        let src = file("x = 1\n\tdependson = [\"a\"]\r\ny = 2");
        let err = src
            .error(ErrorKind::UnknownKey, 7..16, "unknown key `dependson`")
            .help_line("valid keys: `depends_on`");
        insta::assert_snapshot!(err.to_string(), @r#"
        error: unknown key `dependson`
         --> milo.toml:2:2
          |
        2 |     dependson = ["a"]
          |     ^^^^^^^^^
          = help: valid keys: `depends_on`
        "#);
        assert_eq!(err.location().map(|l| l.line), Some(2));
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn gutter_fits_the_widest_line_number_and_secondary_places_use_dashes() {
        let text = format!("{}name = \"a\"\nname = \"a\"", "\n".repeat(9));
        let src = file(&text);
        let err = src
            .error(ErrorKind::DuplicatePhase, 27..30, "duplicate")
            .also(src.snippet(16..19).label("first"));
        insta::assert_snapshot!(err.to_string(), @r#"
        error: duplicate
          --> milo.toml:11:8
           |
        11 | name = "a"
           |        ^^^
           |
          ::: milo.toml:10:8
           |
        10 | name = "a"
           |        --- first
        "#);
    }

    #[test]
    fn empty_spans_and_spans_past_the_line_still_show_one_mark() {
        let src = file("a = \nb = [\n 1]");
        let err = src.error(ErrorKind::Syntax, 4..4, "expected a value");
        assert!(err.to_string().ends_with("1 | a = \n  |     ^"), "{err}");
        let crlf = file("a\r\nb");
        assert!(
            crlf.error(ErrorKind::Syntax, 1..3, "at the line end")
                .to_string()
                .ends_with("1 | a\n  |  ^")
        );
        let err = src.error(ErrorKind::WrongType, 9..16, "multi-line");
        assert!(err.to_string().ends_with("2 | b = [\n  |     ^"), "{err}");
    }
}
