//! Passwords of the embedded cluster's users, kept in a 0600 file in its data directory.
//!
//! The cluster accepts connections only on its private socket and only with a password
//! (SCRAM), so reaching the socket is not enough: the process must also be able to read
//! this file, which only its owner (and root) can.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "srql-credentials";

/// The cluster's superuser: migrations and administration.
pub const SUPERUSER: &str = "postgres";
/// Login user in `srql_reader`: every SRQL query.
pub const READER_LOGIN: &str = "srql_reader_login";
/// Login user in `srql_writer`: OTLP ingest, loads and summary maintenance.
pub const WRITER_LOGIN: &str = "srql_writer_login";

const USERS: [&str; 3] = [SUPERUSER, READER_LOGIN, WRITER_LOGIN];

/// User name to password.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    passwords: BTreeMap<String, String>,
}

impl Credentials {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(FILE_NAME)
    }

    /// Reads the file of `data_dir`; empty when there is none yet.
    pub fn load(data_dir: &Path) -> std::io::Result<Self> {
        let text = match fs::read_to_string(Self::path(data_dir)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e),
        };
        let passwords = text
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(u, p)| (u.to_string(), p.trim().to_string()))
            .collect();
        Ok(Self { passwords })
    }

    /// Gives every user of ours that has none a fresh password; returns the users that
    /// got one (their password must be set in the cluster).
    pub fn fill_missing(&mut self) -> std::io::Result<Vec<&'static str>> {
        let mut added = Vec::new();
        for user in USERS {
            if !self.passwords.contains_key(user) {
                self.passwords
                    .insert(user.to_string(), generate_password()?);
                added.push(user);
            }
        }
        Ok(added)
    }

    /// Writes the file with mode 0600 (replacing it atomically).
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        let path = Self::path(data_dir);
        let tmp = data_dir.join(format!("{FILE_NAME}.tmp"));
        let _ = fs::remove_file(&tmp);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        for (user, password) in &self.passwords {
            writeln!(file, "{user} {password}")?;
        }
        file.sync_all()?;
        drop(file);
        // In case a umask or an older file widened it.
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
        fs::rename(&tmp, &path)
    }

    pub fn password(&self, user: &str) -> Option<&str> {
        self.passwords.get(user).map(String::as_str)
    }

    /// Every user with its password.
    pub fn users(&self) -> impl Iterator<Item = (&str, &str)> {
        self.passwords.iter().map(|(u, p)| (u.as_str(), p.as_str()))
    }
}

/// 32 random bytes from the kernel as hex: safe inside SQL literals, URLs and our file.
pub fn generate_password() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A `postgres://` URL for `user` on the Unix socket in `socket_dir`.
pub fn socket_url(
    socket_dir: &Path,
    port: u16,
    user: &str,
    password: &str,
    database: &str,
) -> String {
    format!(
        "postgres://{}:{}@{}:{port}/{}?connect_timeout=10",
        encode(user),
        encode(password),
        encode(&socket_dir.display().to_string()),
        encode(database)
    )
}

/// Percent-encodes everything but unreserved characters, so a path becomes one URL host.
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_urls_parse_as_unix_hosts() {
        let url = socket_url(Path::new("/tmp/a b/pgdata"), 5432, "u", "p@w", "db");
        let config: tokio_postgres::Config = url.parse().unwrap();
        assert_eq!(
            config.get_hosts(),
            &[tokio_postgres::config::Host::Unix("/tmp/a b/pgdata".into())]
        );
        assert_eq!(config.get_password(), Some(&b"p@w"[..]));
        assert_eq!(config.get_dbname(), Some("db"));
    }

    #[test]
    fn the_file_is_private_and_round_trips() {
        let dir = std::env::temp_dir().join(format!("srql-cred-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut c = Credentials::load(&dir).unwrap();
        assert_eq!(c.fill_missing().unwrap().len(), 3);
        assert!(c.fill_missing().unwrap().is_empty());
        c.save(&dir).unwrap();
        use std::os::unix::fs::MetadataExt;
        let mode = fs::metadata(Credentials::path(&dir)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Credentials::load(&dir).unwrap(), c);
        assert_eq!(c.password(SUPERUSER).unwrap().len(), 64);
        fs::remove_dir_all(&dir).unwrap();
    }
}
