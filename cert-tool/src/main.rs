//! `pg_twofactor-cert`: issue, sign, inspect and check client certificates for pg_twofactor.
//! `pg_twofactor-cert --help` says how.

use pg_twofactor_cert::ca::{login_subject, write_cert, write_key, Ca, KeyKind, Profile};
use pg_twofactor_cert::check::{check, verify_chain, Login, Server, TlsRefusal};
use pg_twofactor_cert::inspect::{json_string, Inspection};
use pg_twofactor_cert::san::San;
use pg_twofactor_core::cert::spki_sha256;
use pg_twofactor_core::dry_run::{self, DryRun};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const HELP: &str = "\
pg_twofactor-cert: client certificates for pg_twofactor logins, made and read the way
pg_twofactor reads them (the CN is the login; SubjectAltName addresses, subnets and DNS names
bind the certificate to where the client connects from).

USAGE
  pg_twofactor-cert issue   --ca-cert FILE --ca-key FILE --login NAME (--san ENTRY... | --no-san)
                            [--days N] [--rsa BITS] [--out-cert FILE] [--out-key FILE] [--force]
      A new key and a certificate for it, signed by the CA (files LOGIN.crt and LOGIN.key by
      default; the key is written with mode 0600 and never printed). EC P-256 keys unless
      --rsa BITS. Files are created new (an existing file or a symbolic link in the way is an
      error); --force writes a new file beside it and renames it into place.
  pg_twofactor-cert sign    --ca-cert FILE --ca-key FILE --csr FILE --login NAME
                            (--san ENTRY... | --no-san) [--days N] [--out-cert FILE] [--force]
      A certificate for LOGIN and the key of a certificate request (the client's key never
      leaves the client). The request names no CN or exactly LOGIN: the requester does not
      choose the account. Its extensions are not copied: the SubjectAltName is what --san says.
  pg_twofactor-cert inspect [--json] FILE
      What pg_twofactor will read from a certificate (PEM or DER): CN, SubjectAltName
      addresses, subnets and names, issuer, serial, validity and days left.
  pg_twofactor-cert check   --rules FILE --user NAME --database NAME --address ADDR
                            [--cert FILE --ca-file FILE] [--hba-method METHOD] [--major N]
                            [--member-of ROLE]... [--enabled-extra LIST] [--client-reason]
                            [--no-ssl] [--replication] [--json]
      The offline dry run: the verdict, the rule and the reason pg_twofactor_check() gives for
      that login under that rules file (--hba-method: the pg_hba.conf method that checked the
      password, default scram-sha-256; --major: the PostgreSQL major whose pg_hba.conf syntax
      the rules follow, default 16; --member-of: the user's roles, for +role rules). A --cert
      (the client's certificate, then any intermediates it sends) is first verified against
      --ca-file (the server's ssl_ca_file) as the server's TLS layer verifies it: chain,
      validity dates, purpose; a certificate it refuses is refused there, before any rule.
      ssl_crl_file is not consulted.

ENTRY (--san, repeatable)
  10.1.2.3  fd00::1  10.1.0.0/16  fd00::/64  DNS:app1.example.com  email:ops@example.com
  A subnet is written as pg_twofactor reads it: an 8- or 32-byte iPAddress (address and mask),
  which OpenSSL's own subjectAltName syntax cannot write. Host bits must be zero.

EXIT STATUS
  0  done; for check: the login would be let in (accepted, exempt, not covered, reported)
  1  check: the login would be refused
  2  bad usage or input: the message says what and where

EXAMPLES
  pg_twofactor-cert issue --ca-cert root.crt --ca-key root.key --login app \\
      --san 10.1.0.0/16 --san DNS:app1.example.com --days 365
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \\
      -subj /CN=alice -keyout alice.key -out alice.csr        # on the client
  pg_twofactor-cert sign --ca-cert root.crt --ca-key root.key --csr alice.csr \\
      --login alice --san 10.1.2.3
  pg_twofactor-cert inspect --json app.crt
  pg_twofactor-cert check --rules /etc/postgresql/16/main/pg_twofactor_hba.conf \\
      --user app --database sales --address 10.1.2.3 --cert app.crt --ca-file root.crt
";

/// A usage or input error: printed, exit status 2.
struct Fail(String);

impl<E: std::fmt::Display> From<E> for Fail {
    fn from(e: E) -> Fail {
        Fail(e.to_string())
    }
}

/// The command line after the subcommand: `--flag value` pairs, flags alone, and operands.
struct Args {
    items: Vec<String>,
}

impl Args {
    /// Takes every value of `--flag`.
    fn all(&mut self, flag: &str) -> Result<Vec<String>, Fail> {
        let mut out = Vec::new();
        while let Some(i) = self.items.iter().position(|a| a == flag) {
            if i + 1 >= self.items.len() {
                return Err(Fail(format!("{flag} needs a value")));
            }
            out.push(self.items.remove(i + 1));
            self.items.remove(i);
        }
        Ok(out)
    }
    /// The value of `--flag`, if given (once at most).
    fn one(&mut self, flag: &str) -> Result<Option<String>, Fail> {
        let mut v = self.all(flag)?;
        if v.len() > 1 {
            return Err(Fail(format!("{flag} is given more than once")));
        }
        Ok(v.pop())
    }
    fn required(&mut self, flag: &str) -> Result<String, Fail> {
        self.one(flag)?
            .ok_or_else(|| Fail(format!("{flag} is required (see pg_twofactor-cert --help)")))
    }
    /// Whether the flag alone is given.
    fn flag(&mut self, flag: &str) -> bool {
        let before = self.items.len();
        self.items.retain(|a| a != flag);
        self.items.len() != before
    }
    /// The operands left; anything else starting with `--` is an unknown option.
    fn rest(self) -> Result<Vec<String>, Fail> {
        if let Some(unknown) = self.items.iter().find(|a| a.starts_with("--")) {
            return Err(Fail(format!(
                "unknown option {unknown} (see pg_twofactor-cert --help)"
            )));
        }
        Ok(self.items)
    }
}

fn number(flag: &str, value: Option<String>, default: u32) -> Result<u32, Fail> {
    match value {
        None => Ok(default),
        Some(v) => v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            Fail(format!(
                "{flag} must be a positive whole number, not \"{v}\""
            ))
        }),
    }
}

/// The SubjectAltName entries: `--san ENTRY`... or `--no-san`, one of them required (a
/// certificate without address entries is usable from any address, which is a choice to make
/// explicitly).
fn sans(args: &mut Args) -> Result<Option<Vec<San>>, Fail> {
    let entries = args
        .all("--san")?
        .iter()
        .map(|s| San::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    match (entries.is_empty(), args.flag("--no-san")) {
        (false, false) => Ok(Some(entries)),
        (true, true) => Ok(None),
        (false, true) => Err(Fail("--san and --no-san exclude each other".into())),
        (true, false) => Err(Fail(
            "give --san ENTRY for each address, subnet or DNS name the client connects from, or --no-san for a certificate usable from any address"
                .into(),
        )),
    }
}

fn read_file(path: &str) -> Result<Vec<u8>, Fail> {
    std::fs::read(path).map_err(|e| {
        Fail(format!(
            "could not read {path}: {}",
            pg_twofactor_core::rules::token::os_message(&e)
        ))
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn none_if_empty(args: &[String]) -> Result<(), Fail> {
    match args.first() {
        Some(a) => Err(Fail(format!("unexpected argument \"{a}\""))),
        None => Ok(()),
    }
}

fn issue(mut args: Args) -> Result<ExitCode, Fail> {
    let ca = Ca::load(
        Path::new(&args.required("--ca-cert")?),
        Path::new(&args.required("--ca-key")?),
    )?;
    let login = args.required("--login")?;
    let san = sans(&mut args)?;
    let days = number("--days", args.one("--days")?, 365)?;
    let kind = match args.one("--rsa")? {
        Some(bits) => KeyKind::Rsa(number("--rsa", Some(bits), 0)?),
        None => KeyKind::EcP256,
    };
    let out_cert = PathBuf::from(args.one("--out-cert")?.unwrap_or(format!("{login}.crt")));
    let out_key = PathBuf::from(args.one("--out-key")?.unwrap_or(format!("{login}.key")));
    let force = args.flag("--force");
    none_if_empty(&args.rest()?)?;
    let subject = login_subject(&login)?;
    let (cert, key) = ca.issue(&subject, san.as_deref(), days, kind, Profile::Client)?;
    write_key(&out_key, &key, force)?;
    write_cert(&out_cert, &cert, force)?;
    println!(
        "wrote {} (certificate) and {} (private key, mode 0600)",
        out_cert.display(),
        out_key.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn sign(mut args: Args) -> Result<ExitCode, Fail> {
    let ca = Ca::load(
        Path::new(&args.required("--ca-cert")?),
        Path::new(&args.required("--ca-key")?),
    )?;
    let csr_path = args.required("--csr")?;
    let login = args.required("--login")?;
    let san = sans(&mut args)?;
    let days = number("--days", args.one("--days")?, 365)?;
    let out_cert =
        PathBuf::from(args.one("--out-cert")?.unwrap_or_else(
            || match csr_path.strip_suffix(".csr") {
                Some(stem) => format!("{stem}.crt"),
                None => format!("{csr_path}.crt"),
            },
        ));
    let force = args.flag("--force");
    none_if_empty(&args.rest()?)?;
    let csr = openssl::x509::X509Req::from_pem(&read_file(&csr_path)?).map_err(|_| {
        Fail(format!(
            "{csr_path} does not hold a PEM certificate request"
        ))
    })?;
    let cert = ca.sign(
        &csr,
        &csr_path,
        &login,
        san.as_deref(),
        days,
        Profile::Client,
    )?;
    write_cert(&out_cert, &cert, force)?;
    println!("wrote {} (certificate)", out_cert.display());
    Ok(ExitCode::SUCCESS)
}

fn inspect(mut args: Args) -> Result<ExitCode, Fail> {
    let json = args.flag("--json");
    let rest = args.rest()?;
    let [path] = rest.as_slice() else {
        return Err(Fail("inspect takes one certificate file".into()));
    };
    let cert = Inspection::read(path, &read_file(path)?)?;
    if json {
        println!("{}", cert.json(now()));
    } else {
        print!("{}", cert.text(now()));
    }
    Ok(ExitCode::SUCCESS)
}

fn run_check(mut args: Args) -> Result<ExitCode, Fail> {
    let rules = args.required("--rules")?;
    let user = args.required("--user")?;
    let database = args.required("--database")?;
    let address = args.required("--address")?;
    let cert_path = args.one("--cert")?;
    let ca_path = args.one("--ca-file")?;
    let cert = match &cert_path {
        Some(path) => Some(String::from_utf8_lossy(&read_file(path)?).into_owned()),
        None => None,
    };
    let hba_method = args.one("--hba-method")?.unwrap_or("scram-sha-256".into());
    let server = Server {
        major: number("--major", args.one("--major")?, 16)?,
        enabled_extra: args.one("--enabled-extra")?.unwrap_or_default(),
        member_of: args.all("--member-of")?,
        client_reason: args.flag("--client-reason"),
    };
    let ssl = !args.flag("--no-ssl");
    let replication = args.flag("--replication");
    let json = args.flag("--json");
    none_if_empty(&args.rest()?)?;
    let login = Login {
        args: dry_run::Arguments {
            user: &user,
            database: &database,
            client_addr: Some(&address),
            client_cert: cert.as_deref(),
            hba_method: &hba_method,
            ssl,
            replication,
        },
        issuer_key: None,
    };
    let rows = match verified(cert_path.as_deref(), ca_path.as_deref(), cert.as_deref())? {
        Verified::Refused(refused) => vec![refused],
        Verified::Chain(chain) => {
            let issuer = chain.get(1).or(chain.first());
            let login = Login {
                issuer_key: issuer.and_then(|der| spki_sha256(der).ok()),
                ..login
            };
            check(Path::new(&rules), &login, &server)?
        }
        Verified::NoCertificate => check(Path::new(&rules), &login, &server)?,
    };
    let refused = rows.last().is_some_and(|r| r.verdict == "refused");
    for row in &rows {
        let rule = match (&row.rule_file, row.rule_line) {
            (Some(f), Some(l)) => format!("{f}:{l}"),
            _ => "none".into(),
        };
        if json {
            let opt = |v: &Option<String>| v.as_deref().map_or("null".into(), json_string);
            println!(
                "{{\"verdict\":{},\"reason\":{},\"rule\":{},\"rule_method\":{},\"rule_mode\":{},\"message\":{},\"detail\":{}}}",
                json_string(&row.verdict),
                opt(&row.reason),
                json_string(&rule),
                opt(&row.rule_method),
                opt(&row.rule_mode),
                opt(&row.message),
                opt(&row.detail)
            );
        } else {
            println!("verdict: {}", row.verdict);
            if let Some(r) = &row.reason {
                println!("reason:  {r}");
            }
            match (&row.rule_method, &row.rule_mode) {
                (Some(m), Some(mode)) => println!("rule:    {rule} ({m}, mode={mode})"),
                (Some(m), None) => println!("rule:    {rule} ({m})"),
                _ => println!("rule:    {rule}"),
            }
            if let Some(m) = &row.message {
                println!("message: {m}");
            }
            if let Some(d) = &row.detail {
                println!("detail:  {d}");
            }
        }
    }
    Ok(if refused {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What the server's TLS layer makes of the client's certificate.
enum Verified {
    /// None was given.
    NoCertificate,
    /// Verified: the chain, the client's certificate first.
    Chain(Vec<Vec<u8>>),
    /// Refused before pg_twofactor sees it: the row that says so.
    Refused(DryRun),
}

/// Verifies a given certificate as the server's TLS layer would ([`verify_chain`]).
fn verified(
    cert_path: Option<&str>,
    ca_path: Option<&str>,
    cert: Option<&str>,
) -> Result<Verified, Fail> {
    let (Some(cert_path), Some(cert)) = (cert_path, cert) else {
        return Ok(Verified::NoCertificate);
    };
    let Some(ca_path) = ca_path else {
        return Err(Fail(
            "--cert needs --ca-file FILE, the server's ssl_ca_file, to verify the certificate as the server's TLS layer does"
                .into(),
        ));
    };
    Ok(
        match verify_chain(ca_path, &read_file(ca_path)?, cert_path, cert.as_bytes()) {
            Ok(chain) => Verified::Chain(chain),
            Err(e @ TlsRefusal::Verify { .. }) => Verified::Refused(DryRun {
                rule_file: None,
                rule_line: None,
                rule_method: None,
                rule_mode: None,
                verdict: "refused".into(),
                reason: Some("certificate refused by TLS".into()),
                message: Some(format!(
                    "the server's TLS layer refuses this certificate before any login: {e}"
                )),
                detail: Some(format!("verified against {ca_path}")),
            }),
            Err(e) => return Err(Fail(e.to_string())),
        },
    )
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty()
        || argv
            .iter()
            .any(|a| a == "--help" || a == "-h" || a == "help")
    {
        print!("{HELP}");
        return if argv.is_empty() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let command = argv.remove(0);
    let args = Args { items: argv };
    let result = match command.as_str() {
        "issue" => issue(args),
        "sign" => sign(args),
        "inspect" => inspect(args),
        "check" => run_check(args),
        other => Err(Fail(format!(
            "unknown command \"{other}\": issue, sign, inspect or check (see --help)"
        ))),
    };
    match result {
        Ok(code) => code,
        Err(Fail(message)) => {
            eprintln!("pg_twofactor-cert: {message}");
            ExitCode::from(2)
        }
    }
}
