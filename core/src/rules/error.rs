//! What can be wrong with a rules file, one type per stage: [`TokenError`] (reading records
//! and the files they include), [`ParseError`] (the columns of a record), [`OptionError`]
//! (its `name=value` options), gathered with the file and line in [`RuleError`]. Each
//! `Display` is the sentence the DBA reads in the server log and in `pg_twofactor_rules`;
//! where PostgreSQL reports the same fault in `pg_hba.conf`, it is PostgreSQL's own wording
//! (the oracle and fidelity scenarios compare them byte for byte).

use super::image::ImageError;
use std::path::{Path, PathBuf};

/// An error in the rules file, naming the file and line, worded as PostgreSQL words errors in
/// its own configuration files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem} ({})", location(.file, .line))]
pub struct RuleError {
    pub file: PathBuf,
    /// `None` when the error is about the file as a whole.
    pub line: Option<usize>,
    pub problem: RuleProblem,
}

impl RuleError {
    /// The sentence without the location (the view's error column).
    pub fn message(&self) -> String {
        self.problem.to_string()
    }
}

fn location(file: &Path, line: &Option<usize>) -> String {
    match line {
        None => format!("file \"{}\"", file.display()),
        Some(line) => format!("line {line} of configuration file \"{}\"", file.display()),
    }
}

/// What is wrong: with the file as a whole, or with one record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleProblem {
    /// The main file could not be opened or read (the operating system's words).
    #[error("could not open pg_twofactor rules file: {0}")]
    Unreadable(String),
    /// Loading would need more memory than can be had now (`token::ReadError::Memory`).
    #[error("could not load pg_twofactor rules file: {0}")]
    NoMemory(String),
    /// The rules could not be laid out as an image (too large), or it did not read back.
    #[error("could not load pg_twofactor rules file: {0}")]
    Image(#[from] ImageError),
    /// The read-only mapping for the image could not be made.
    #[error("could not map the pg_twofactor rules read-only ({bytes} bytes): {why}")]
    NotSealed { bytes: usize, why: String },
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// Why a record could not be split into fields, in the words of PostgreSQL's `hba.c` and
/// `conffiles.c`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("invalid NUL byte in the line")]
    NulByte,
    /// 15 only: a token of 256 bytes or more.
    #[error("authentication file token too long")]
    TooLong,
    /// An `@file` or `include*` file could not be read.
    #[error("{}", open_sentence(.at_name, .file, .why))]
    Open {
        /// 15: the name after `@`, which its message quotes; 16+ name only the full path.
        at_name: Option<String>,
        file: PathBuf,
        why: OpenFailure,
    },
    #[error("empty configuration directory name")]
    EmptyDirectoryName,
    #[error("could not open directory \"{}\"", .0.display())]
    OpenDirectory(PathBuf),
    #[error("could not stat file \"{}\"", .0.display())]
    StatFile(PathBuf),
    /// The files of an `include_dir` that could not be read, one sentence per line.
    #[error("{}", lines(.0))]
    InDirectory(Vec<TokenError>),
}

fn open_sentence(at_name: &Option<String>, file: &Path, why: &OpenFailure) -> String {
    match at_name {
        Some(name) => format!(
            "could not open secondary authentication file \"@{name}\" as \"{}\": {why}",
            file.display()
        ),
        None => format!("could not open file \"{}\": {why}", file.display()),
    }
}

fn lines(errors: &[TokenError]) -> String {
    let sentences: Vec<String> = errors.iter().map(ToString::to_string).collect();
    sentences.join("\n")
}

/// Why an included file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenFailure {
    #[error("maximum nesting depth exceeded")]
    TooDeep,
    /// The operating system's words (`token::ReadError`).
    #[error("{0}")]
    Read(String),
}

/// Why a record's columns do not make a rule; PostgreSQL's `parse_hba_line` words where it
/// has the same check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line ends before the named column.
    #[error("end-of-line before {0}")]
    EndOfLineBefore(&'static str),
    /// A column that takes one value has a list.
    #[error("multiple values specified for {0}")]
    MultipleValues(&'static str),
    #[error("connection type \"{0}\" cannot carry a two-factor method; pg_twofactor rules must be hostssl")]
    NotHostssl(String),
    #[error("invalid connection type \"{0}\"")]
    InvalidConnectionType(String),
    #[error("invalid regular expression \"{pattern}\": {why}")]
    InvalidRegex { pattern: String, why: String },
    #[error("specifying both host name and CIDR mask is invalid: \"{0}\"")]
    HostNameWithMask(String),
    /// `why`: `getaddrinfo`'s message.
    #[error("invalid IP address \"{address}\": {why}")]
    InvalidAddress { address: String, why: String },
    #[error("invalid CIDR mask in address \"{0}\"")]
    InvalidCidrMask(String),
    /// `why`: `getaddrinfo`'s message.
    #[error("invalid IP mask \"{mask}\": {why}")]
    InvalidMask { mask: String, why: String },
    #[error("IP address and mask do not match")]
    MaskFamily,
    /// A PostgreSQL method (`scram-sha-256`) where a two-factor one (`2f-scram-sha-256`) goes.
    #[error("authentication method \"{0}\" belongs in pg_hba.conf; a pg_twofactor rule names a two-factor method such as \"2f-{0}\"")]
    PostgresMethod(String),
    #[error("invalid authentication method \"{method}\" (expected one of {known})")]
    InvalidMethod { method: String, known: String },
    /// An option on `2f-exempt`.
    #[error("authentication option \"{option}\" is not valid for {method}, which checks nothing")]
    OptionOnExempt {
        option: String,
        method: &'static str,
    },
    #[error(transparent)]
    Option(#[from] OptionError),
}

/// Why a rule's options are invalid, in the words of PostgreSQL's `parse_hba_auth_opt`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("authentication option not in name=value format: {0}")]
    NotNameValue(String),
    #[error("unrecognized authentication option name: \"{0}\"")]
    Unrecognized(String),
    #[error("authentication option \"{0}\" specified more than once")]
    Repeated(&'static str),
    /// A value outside the option's list.
    #[error("invalid value for authentication option \"{name}\": \"{value}\" (expected {})", quoted_choices(.expected))]
    NotOneOf {
        name: &'static str,
        value: String,
        expected: &'static [&'static str],
    },
    /// A free-form value its option refuses; `expected` says what it takes.
    #[error("invalid value for authentication option \"{name}\": \"{value}\" ({expected})")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

fn quoted_choices(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("\"{v}\"")).collect();
    quoted.join(" or ")
}
