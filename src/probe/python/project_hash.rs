//! The short hash Poetry and Hatch put in the names of a project's environments: the first 8
//! characters of the URL-safe base64 of the SHA-256 of the project's path.

use base64::Engine;
use sha2::{Digest, Sha256};

/// `urlsafe_b64encode(sha256(text))[:8]`; 8 characters are exactly the first 6 bytes.
pub(crate) fn short_urlsafe(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    base64::engine::general_purpose::URL_SAFE.encode(&digest[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poetry_hash_of_a_path() {
        // python3 -c "import base64,hashlib; print(base64.urlsafe_b64encode(
        //     hashlib.sha256(b'/tmp/ptest/My_Proj.x').digest()).decode()[:8])"
        assert_eq!(short_urlsafe("/tmp/ptest/My_Proj.x"), "pTNRyXtF");
    }
}
