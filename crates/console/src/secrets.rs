//! The secrets of the console: generated passwords, API tokens, session ids and
//! CSRF tokens. Every one is made from the operating system's random source,
//! shown once, and stored only as a hash.
//!
//! - Passwords are chosen by us but typed by people: argon2id (the crate's
//!   defaults, 19 MiB and 2 passes), so a stolen table costs an attacker dearly
//!   per guess.
//! - Tokens and sessions carry 32 random bytes: SHA-256 is enough. A slow hash
//!   protects guessable secrets; nobody guesses 256 random bits, and a fast hash
//!   keeps every API request cheap. A credential is `<selector>_<secret>`: the
//!   selector finds the row by index, the secret's hash is compared in constant
//!   time, so timing says nothing about a stored value.
//! - The CSRF token of a session is derived from its secret, so it is bound to
//!   that session and needs no storage.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

/// Bytes of a credential's public selector.
const SELECTOR_BYTES: usize = 16;
/// Bytes of a credential's secret (the session id proper).
const SECRET_BYTES: usize = 32;
/// An API token starts with this, so a leaked one is recognisable in a scan.
pub const TOKEN_PREFIX: &str = "ljt_";

/// Why a secret could not be made or checked.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the system's random source failed")]
    Random,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

fn random_bytes<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut bytes = [0u8; N];
    SystemRandom::new().fill(&mut bytes).map_err(|_| SecretError::Random)?;
    Ok(bytes)
}

/// A new credential: what the holder keeps (`text`) and what is stored.
pub struct NewCredential {
    /// `<selector>_<secret>` in hex: the cookie value; a token adds [`TOKEN_PREFIX`].
    pub text: String,
    pub selector: String,
    pub secret_hash: Vec<u8>,
    /// The session's CSRF token (unused for API tokens).
    pub csrf: String,
}

/// The secret never reaches a log line through `{:?}`.
impl std::fmt::Debug for NewCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCredential").field("selector", &self.selector).finish_non_exhaustive()
    }
}

/// Makes a credential from fresh random bytes.
pub fn new_credential() -> Result<NewCredential, SecretError> {
    let selector = hex::encode(random_bytes::<SELECTOR_BYTES>()?);
    let secret = random_bytes::<SECRET_BYTES>()?;
    Ok(NewCredential {
        text: format!("{selector}_{}", hex::encode(secret)),
        selector,
        secret_hash: hash_secret(&secret),
        csrf: csrf_for(&secret),
    })
}

/// A credential as presented: its selector and secret, if it is well formed.
pub struct Presented {
    pub selector: String,
    secret: Vec<u8>,
}

impl Presented {
    /// Reads `<selector>_<secret>` (a cookie value, or a token without its prefix).
    pub fn parse(text: &str) -> Option<Presented> {
        let (selector, secret) = text.split_once('_')?;
        let secret = hex::decode(secret).ok().filter(|s| s.len() == SECRET_BYTES)?;
        let selector_ok = selector.len() == SELECTOR_BYTES * 2 && selector.bytes().all(|b| b.is_ascii_hexdigit());
        selector_ok.then(|| Presented { selector: selector.to_ascii_lowercase(), secret })
    }

    /// Reads an API token (`ljt_<selector>_<secret>`).
    pub fn parse_token(text: &str) -> Option<Presented> {
        Presented::parse(text.trim().strip_prefix(TOKEN_PREFIX)?)
    }

    /// Whether the secret hashes to `stored`, compared in constant time.
    pub fn matches(&self, stored: &[u8]) -> bool {
        bool::from(hash_secret(&self.secret).as_slice().ct_eq(stored))
    }

    /// The CSRF token of the session this secret opens.
    pub fn csrf(&self) -> String {
        csrf_for(&self.secret)
    }
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented").field("selector", &self.selector).finish_non_exhaustive()
    }
}

fn hash_secret(secret: &[u8]) -> Vec<u8> {
    digest(&SHA256, secret).as_ref().to_vec()
}

/// Domain-separated from the stored hash, so neither reveals the other.
fn csrf_for(secret: &[u8]) -> String {
    let mut input = b"lijian-console-csrf:".to_vec();
    input.extend_from_slice(secret);
    hex::encode(digest(&SHA256, &input))
}

/// Whether two tokens (CSRF, login form) are equal, in constant time.
pub fn same_token(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A random value for a one-off form token (the login form's).
pub fn form_token() -> Result<String, SecretError> {
    Ok(hex::encode(random_bytes::<SECRET_BYTES>()?))
}

/// A generated password: 20 characters from a 56-letter alphabet without
/// look-alikes (0/O, 1/l/I), about 116 bits.
pub fn new_password() -> Result<String, SecretError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = String::with_capacity(20);
    while out.len() < 20 {
        for b in random_bytes::<32>()? {
            // Rejection sampling keeps every letter equally likely.
            let limit = 256 - (256 % ALPHABET.len());
            if usize::from(b) < limit && out.len() < 20 {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

/// The argon2id PHC string of `password`, with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, SecretError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?).map_err(|e| SecretError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| SecretError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC string (argon2 compares in
/// constant time). A malformed stored hash matches nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A hash no password matches, verified against for an unknown name so that a
/// login takes as long whether or not the name exists.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("no operator has this password").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_matches_only_its_own_secret() -> Result<(), SecretError> {
        let made = new_credential()?;
        let presented = Presented::parse(&made.text).ok_or(SecretError::Random)?;
        assert_eq!(presented.selector, made.selector);
        assert!(presented.matches(&made.secret_hash));
        assert!(same_token(&presented.csrf(), &made.csrf));
        let other = new_credential()?;
        assert!(!presented.matches(&other.secret_hash));
        assert!(!same_token(&presented.csrf(), &other.csrf));
        // A session's CSRF token is not its stored hash.
        assert_ne!(made.csrf, hex::encode(&made.secret_hash));
        for bad in ["", "abc", &made.selector, &format!("{}_zz", made.selector), &format!("x{}", made.text)] {
            assert!(Presented::parse(bad).is_none(), "{bad}");
        }
        assert!(Presented::parse_token(&format!("{TOKEN_PREFIX}{}", made.text)).is_some());
        assert!(Presented::parse_token(&made.text).is_none());
        Ok(())
    }

    #[test]
    fn secrets_stay_out_of_debug_output() -> Result<(), SecretError> {
        let made = new_credential()?;
        let secret = made.text.split_once('_').map(|(_, s)| s.to_string()).unwrap_or_default();
        let shown = format!("{made:?} {:?}", Presented::parse(&made.text));
        assert!(!shown.contains(&secret) && !shown.contains(&made.csrf), "{shown}");
        Ok(())
    }

    #[test]
    fn passwords_are_long_random_and_verify_against_their_hash() -> Result<(), SecretError> {
        let (a, b) = (new_password()?, new_password()?);
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        let hash = hash_password(&a)?;
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&a, &hash));
        assert!(!verify_password(&b, &hash));
        assert!(!verify_password(&a, "not a hash"));
        assert!(!verify_password(&a, decoy_hash()));
        Ok(())
    }
}
