//! Outgoing email: through SMTP when `[smtp]` is configured (lettre, plain SMTP; the
//! relay handles TLS), otherwise written to `<data-dir>/outbox/` as an `.eml` file that
//! an operator can read or hand to a mail system.

use std::path::PathBuf;

use lettre::message::header::{ContentType, MIME_VERSION_1_0};
use lettre::message::{Body, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::Config;

/// Where an email went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Smtp,
    Outbox(PathBuf),
}

impl Delivery {
    pub fn describe(&self) -> String {
        match self {
            Delivery::Smtp => "sent".to_owned(),
            // The file's name only: where the data dir lies is the operator's business.
            Delivery::Outbox(p) => format!(
                "written to the outbox as {}",
                p.file_name().unwrap_or_default().to_string_lossy()
            ),
        }
    }
}

/// Sends a plain-text email.
pub async fn send(
    config: &Config,
    to: &str,
    subject: &str,
    text: &str,
) -> anyhow::Result<Delivery> {
    let from: Mailbox = match &config.file.smtp {
        Some(s) => s
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("[smtp] from '{}' is not an address: {e}", s.from))?,
        None => "magpie@localhost".parse().expect("valid address"),
    };
    let to: Mailbox = to
        .parse()
        .map_err(|e| anyhow::anyhow!("'{to}' is not an email address: {e}"))?;
    // lettre picks 7bit, quoted-printable or base64 as the text needs.
    let body = Body::new(text.to_owned());
    // The id's right side is the sender's domain (RFC 5322 §3.6.4: unique to this host).
    let message_id = format!(
        "<{}.{:016x}@{}>",
        crate::time::now_ms(),
        rand::random::<u64>(),
        from.email.domain()
    );
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .message_id(Some(message_id))
        .header(MIME_VERSION_1_0)
        .header(ContentType::TEXT_PLAIN)
        .body(body)?;
    match &config.file.smtp {
        Some(smtp) => {
            let SmtpTarget { host, port, login } = parse_smtp_url(&smtp.url)?;
            let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                .port(port)
                .timeout(Some(std::time::Duration::from_secs(30)));
            if let Some((user, pass)) = login {
                builder = builder.credentials(
                    lettre::transport::smtp::authentication::Credentials::new(user, pass),
                );
            }
            let transport = builder.build();
            transport.send(message).await.map_err(|e| {
                anyhow::anyhow!("SMTP delivery to {} failed: {e}", redacted(&smtp.url))
            })?;
            Ok(Delivery::Smtp)
        }
        None => {
            let dir = config.data_dir.join("outbox");
            tokio::fs::create_dir_all(&dir).await?;
            let path = dir.join(format!(
                "{}-{:08x}.eml",
                crate::time::now_ms(),
                rand::random::<u32>()
            ));
            let tmp = path.with_extension("eml.part");
            tokio::fs::write(&tmp, message.formatted()).await?;
            tokio::fs::rename(&tmp, &path).await?;
            Ok(Delivery::Outbox(path))
        }
    }
}

/// Checks `[smtp]` when the configuration is read: the URL and the sender address.
pub fn check(smtp: &crate::config::SmtpConfig) -> anyhow::Result<()> {
    parse_smtp_url(&smtp.url)?;
    smtp.from
        .parse::<Mailbox>()
        .map_err(|e| anyhow::anyhow!("[smtp] from '{}' is not an address: {e}", smtp.from))?;
    Ok(())
}

/// Where `[smtp] url` points.
#[derive(Debug, PartialEq)]
struct SmtpTarget {
    host: String,
    port: u16,
    /// User name and password.
    login: Option<(String, String)>,
}

/// `[smtp] url` without its user name and password: what errors and logs may show.
pub fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://…@{host}"),
            None => url.to_owned(),
        },
        None => match url.rsplit_once('@') {
            Some((_, host)) => format!("…@{host}"),
            None => url.to_owned(),
        },
    }
}

/// `smtp://[user:password@]host[:port]` (plain SMTP; port 25 by default).
fn parse_smtp_url(full: &str) -> anyhow::Result<SmtpTarget> {
    // Errors name the URL without its password.
    let url = &redacted(full);
    let rest = full.strip_prefix("smtp://").ok_or_else(|| {
        anyhow::anyhow!(
            "[smtp] url '{url}' must look like smtp://host:port (TLS is left to a local relay)"
        )
    })?;
    let rest = rest.trim_end_matches('/');
    let (login, hostport) = match rest.rsplit_once('@') {
        Some((auth, hp)) => {
            let (user, pass) = auth.split_once(':').unwrap_or((auth, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (Some((decode(user), decode(pass))), hp)
        }
        None => (None, rest),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.trim_matches(['[', ']']).to_owned(),
            p.parse()
                .map_err(|_| anyhow::anyhow!("[smtp] url '{url}': bad port"))?,
        ),
        _ => (hostport.to_owned(), 25),
    };
    if host.is_empty() {
        anyhow::bail!("[smtp] url '{url}' has no host");
    }
    Ok(SmtpTarget { host, port, login })
}

#[cfg(test)]
mod tests {
    use super::{SmtpTarget, parse_smtp_url};

    #[test]
    fn smtp_urls() {
        let target = |host: &str, port, login: Option<(&str, &str)>| SmtpTarget {
            host: host.into(),
            port,
            login: login.map(|(u, p)| (u.into(), p.into())),
        };
        assert_eq!(
            parse_smtp_url("smtp://127.0.0.1:2525").unwrap(),
            target("127.0.0.1", 2525, None)
        );
        assert_eq!(
            parse_smtp_url("smtp://mail.example.com").unwrap(),
            target("mail.example.com", 25, None)
        );
        assert_eq!(
            parse_smtp_url("smtp://me:p%40ss@relay:587").unwrap(),
            target("relay", 587, Some(("me", "p@ss")))
        );
        assert!(parse_smtp_url("smtps://x").is_err());
    }

    /// A password in `[smtp] url` never reaches an error message (they end up in export
    /// statuses that users read, and in the log).
    #[test]
    fn errors_never_show_the_smtp_password() {
        for url in [
            "smtp://me:S3cret@relay:notaport",
            "smtps://me:S3cret@relay:587",
            "smtp://me:S3cret@",
        ] {
            let e = parse_smtp_url(url).unwrap_err().to_string();
            assert!(!e.contains("S3cret"), "{e}");
            assert!(e.contains("…@"), "{e}");
        }
        assert_eq!(super::redacted("smtp://relay:25"), "smtp://relay:25");
        assert_eq!(
            super::redacted("smtp://a:b@c@relay:25"),
            "smtp://…@relay:25"
        );
    }
}
