//! `hash_password`: RabbitMQ's default password hash
//! (`rabbit_password_hashing_sha256`): base64 of a random 4-byte salt
//! followed by SHA-256(salt ++ password). Computed here, without the
//! broker, as `rabbitmqctl hash_password` (RabbitMQ 3.12's; 3.10 has no
//! such command) needs no running node. The broker checks these hashes
//! in `warren_broker::auth::passwords`; the test suite logs in with one.

use std::io::Read;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::commands::Ctx;
use crate::output::println_safe;
use crate::{Failure, EX_DATAERR, EX_SOFTWARE};

/// The hash of `password` with `salt`.
pub(crate) fn hash_with_salt(salt: [u8; 4], password: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    let mut out = salt.to_vec();
    out.extend_from_slice(&h.finalize());
    base64::engine::general_purpose::STANDARD.encode(out)
}

fn salt() -> Result<[u8; 4], Failure> {
    let mut s = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut s))
        .map_err(|e| {
            Failure::new(
                EX_SOFTWARE,
                format!("Error:\ncannot read random bytes for the salt: {e}"),
            )
        })?;
    Ok(s)
}

pub(crate) fn hash_password(c: &Ctx) -> Result<(), Failure> {
    let password = match c.line.positional.first() {
        Some(p) => {
            if p.is_empty() {
                return Err(Failure::new(
                    EX_DATAERR,
                    "Error (argument validation): password cannot be an empty string",
                ));
            }
            c.out.info(&format!("Will hash password {p}"));
            p.clone()
        }
        None => {
            c.out.info("Will hash provided password");
            let mut s = String::new();
            let _ = std::io::stdin().read_to_string(&mut s);
            let p = s.lines().next().unwrap_or("").to_string();
            if p.is_empty() {
                return Err(Failure::new(
                    crate::EX_USAGE,
                    "Error (argument validation): not enough arguments.",
                ));
            }
            p
        }
    };
    let hash = hash_with_salt(salt()?, &password);
    if c.out.json {
        // rabbitmqctl's JSON formatter prints a string result this way.
        println_safe(&serde_json::json!({ "message": hash }).to_string());
    } else {
        println_safe(&hash);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbitmq_worked_example() {
        // RabbitMQ's passwords guide: "test12" with salt 908D C60A.
        assert_eq!(
            hash_with_salt([0x90, 0x8D, 0xC6, 0x0A], "test12"),
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
        );
        assert_ne!(salt().unwrap(), [0; 4]);
    }
}
