//! Users, roles and passwords. Passwords are hashed with argon2id; verifying a hash costs
//! tens of milliseconds on purpose, so API requests with HTTP Basic credentials are
//! checked against a short-lived in-memory cache of successful verifications (keyed by a
//! keyed hash of the credentials and tied to the stored hash, so a password change or a
//! lost cache only costs one more verification).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    pub password_hash: String,
    pub is_active: bool,
    pub date_added: i64,
    pub date_modified: i64,
    pub last_login: Option<i64>,
}

impl std::fmt::Debug for User {
    // Never print the hash.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .finish()
    }
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
    pub fn full_name(&self) -> String {
        let n = format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_owned();
        if n.is_empty() {
            self.username.clone()
        } else {
            n
        }
    }
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Checks a new password's strength; the message is for the user.
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < 8 {
        return Err("the password must have at least 8 characters".into());
    }
    if password.len() > 1024 {
        return Err("the password must have at most 1024 bytes".into());
    }
    Ok(())
}

/// Usernames: 1–64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn check_username(username: &str) -> Result<(), String> {
    if username.is_empty() || username.chars().count() > 64 {
        return Err("the user name must have 1 to 64 characters".into());
    }
    if !username
        .chars()
        .all(|c| c.is_alphanumeric() || "._-@".contains(c))
    {
        return Err("the user name may contain letters, digits and . _ - @".into());
    }
    Ok(())
}

/// A random password for the first admin, 20 characters from an unambiguous alphabet.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Remembers recent successful Basic-auth verifications.
pub struct CredentialCache {
    key: [u8; 32],
    entries: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

const CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_MAX: usize = 10_000;

impl Default for CredentialCache {
    fn default() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        CredentialCache {
            key,
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl CredentialCache {
    fn fingerprint(&self, username: &str, password: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(username.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Verifies `password` for `user`, from the cache when this exact pair was verified
    /// against this exact stored hash recently.
    pub fn verify(&self, user: &User, password: &str) -> bool {
        let fp = self.fingerprint(&user.username, password);
        {
            let entries = self.entries.lock().expect("credential cache poisoned");
            if let Some((hash, at)) = entries.get(&fp)
                && at.elapsed() < CACHE_TTL
                && subtle::ConstantTimeEq::ct_eq(hash.as_bytes(), user.password_hash.as_bytes())
                    .into()
            {
                return true;
            }
        }
        if !verify_password(password, &user.password_hash) {
            return false;
        }
        let mut entries = self.entries.lock().expect("credential cache poisoned");
        if entries.len() >= CACHE_MAX {
            entries.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(fp, (user.password_hash.clone(), Instant::now()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &a));
        assert!(!verify_password("wrong horse", &a));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn cache_is_tied_to_the_stored_hash() {
        let cache = CredentialCache::default();
        let mut user = User {
            id: 1,
            username: "ada".into(),
            email: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            role: Role::Admin,
            password_hash: hash_password("first password").unwrap(),
            is_active: true,
            date_added: 0,
            date_modified: 0,
            last_login: None,
        };
        assert!(cache.verify(&user, "first password"));
        assert!(cache.verify(&user, "first password"));
        assert!(!cache.verify(&user, "other"));
        user.password_hash = hash_password("second password").unwrap();
        assert!(
            !cache.verify(&user, "first password"),
            "old password must stop working after a change"
        );
        assert!(cache.verify(&user, "second password"));
    }

    #[test]
    fn usernames_and_passwords() {
        assert!(check_username("admin").is_ok());
        assert!(check_username("a.b-c_d@e").is_ok());
        assert!(check_username("").is_err());
        assert!(check_username("has space").is_err());
        assert!(check_username("<script>").is_err());
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("long enough").is_ok());
        assert_eq!(random_password().len(), 20);
    }
}
