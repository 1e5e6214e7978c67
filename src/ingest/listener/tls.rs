//! RTMPS: the server's TLS identity, read from a PEM certificate chain and private key
//! (the `tls.crt` and `tls.key` of a `kubernetes.io/tls` Secret, as cert-manager writes
//! them), and read again when the files change, so a renewed certificate is served
//! without a restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// How often at most the files are checked for a change.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Where the certificate chain and the private key are, both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// Why the TLS identity cannot be used. Names files, never their contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS {what} {}: {source}", path.display())]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("cannot read the TLS certificate {}: {source}", path.display())]
    Certificate { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("the TLS certificate file {} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("cannot read the TLS private key {}: {source}", path.display())]
    PrivateKey { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("the TLS certificate and private key cannot serve: {0}")]
    Identity(#[source] rustls::Error),
}

/// The acceptor of the current certificate, replaced when the files change.
pub struct TlsIdentity {
    files: TlsFiles,
    current: Mutex<Current>,
}

struct Current {
    acceptor: TlsAcceptor,
    stamp: FileStamp,
    checked: Instant,
}

/// What tells changed files from the ones loaded: a digest of their contents (their
/// times can be equal, and a Secret volume swaps whole files in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp([u8; 32]);

/// The contents of the certificate and key files, read once for both the stamp and the
/// server configuration.
struct PemFiles {
    certificate: Vec<u8>,
    private_key: Vec<u8>,
}

impl TlsIdentity {
    /// Reads the files; an error here stops the process with a clear message.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let pem = PemFiles::read(&files)?;
        let acceptor = pem.acceptor(&files)?;
        Ok(Self { files, current: Mutex::new(Current { acceptor, stamp: pem.stamp(), checked: Instant::now() }) })
    }

    /// The acceptor for a new connection: of the files as they are now, checked at most
    /// every few seconds. Files that changed but do not load leave the previous
    /// certificate in use, with a warning.
    pub fn acceptor(&self) -> TlsAcceptor {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.checked.elapsed() >= RELOAD_CHECK_INTERVAL {
            current.checked = Instant::now();
            let reloaded = PemFiles::read(&self.files).and_then(|pem| {
                let stamp = pem.stamp();
                if stamp == current.stamp { Ok(None) } else { Ok(Some((pem.acceptor(&self.files)?, stamp))) }
            });
            match reloaded {
                Ok(None) => {}
                Ok(Some((acceptor, stamp))) => {
                    tracing::info!(certificate = %self.files.certificate.display(), "TLS certificate reloaded");
                    current.acceptor = acceptor;
                    current.stamp = stamp;
                }
                Err(error) => {
                    tracing::warn!(%error, "the changed TLS files do not load; serving the previous certificate");
                }
            }
        }
        current.acceptor.clone()
    }
}

impl PemFiles {
    fn read(files: &TlsFiles) -> Result<Self, TlsError> {
        let read = |what, path: &PathBuf| {
            std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.clone(), source })
        };
        Ok(Self {
            certificate: read("certificate", &files.certificate)?,
            private_key: read("private key", &files.private_key)?,
        })
    }

    fn stamp(&self) -> FileStamp {
        use sha2::Digest;
        let mut digest = sha2::Sha256::new();
        for contents in [&self.certificate, &self.private_key] {
            digest.update((contents.len() as u64).to_be_bytes());
            digest.update(contents);
        }
        FileStamp(digest.finalize().into())
    }

    /// A TLS 1.2/1.3 server on the ring provider; errors name `files`.
    fn acceptor(&self, files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
        let config = server_config(&self.certificate, &self.private_key).map_err(|problem| match problem {
            PemProblem::Certificate(source) => TlsError::Certificate { path: files.certificate.clone(), source },
            PemProblem::NoCertificate => TlsError::NoCertificate { path: files.certificate.clone() },
            PemProblem::PrivateKey(source) => TlsError::PrivateKey { path: files.private_key.clone(), source },
            PemProblem::Identity(error) => TlsError::Identity(error),
        })?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// What is wrong with a PEM certificate chain and key, wherever they came from.
enum PemProblem {
    Certificate(rustls::pki_types::pem::Error),
    NoCertificate,
    PrivateKey(rustls::pki_types::pem::Error),
    Identity(rustls::Error),
}

/// The server configuration of a PEM certificate chain and its private key: what both
/// the listener and [`check_pem`] build.
fn server_config(certificate: &[u8], private_key: &[u8]) -> Result<ServerConfig, PemProblem> {
    let chain =
        CertificateDer::pem_slice_iter(certificate).collect::<Result<Vec<_>, _>>().map_err(PemProblem::Certificate)?;
    if chain.is_empty() {
        return Err(PemProblem::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(private_key).map_err(PemProblem::PrivateKey)?;
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(PemProblem::Identity)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(PemProblem::Identity)
}

/// Whether a PEM certificate chain and private key (the contents of a `kubernetes.io/tls`
/// Secret) would serve: what the operator checks before it starts a worker with them.
/// The message names what is wrong, never the key.
pub fn check_pem(certificate: &[u8], private_key: &[u8]) -> Result<(), String> {
    server_config(certificate, private_key).map(drop).map_err(|problem| match problem {
        PemProblem::Certificate(error) => format!("tls.crt is not a PEM certificate chain: {error}"),
        PemProblem::NoCertificate => "tls.crt holds no PEM certificate".into(),
        PemProblem::PrivateKey(error) => format!("tls.key is not a PEM private key: {error}"),
        PemProblem::Identity(error) => TlsError::Identity(error).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn write_identity(dir: &Path, name: &str) -> TlsFiles {
        let certified = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("generate a certificate");
        let files =
            TlsFiles { certificate: dir.join(format!("{name}.crt")), private_key: dir.join(format!("{name}.key")) };
        std::fs::write(&files.certificate, certified.cert.pem()).expect("write the certificate");
        std::fs::write(&files.private_key, certified.signing_key.serialize_pem()).expect("write the key");
        files
    }

    #[test]
    fn a_certificate_and_its_key_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = write_identity(dir.path(), "ingest.example");
        assert!(TlsIdentity::load(files).is_ok());
    }

    #[test]
    fn missing_and_mismatched_files_are_named_without_their_contents() {
        let dir = tempfile::tempdir().expect("temp dir");
        let one = write_identity(dir.path(), "one.example");
        let other = write_identity(dir.path(), "other.example");

        let missing = TlsFiles { certificate: dir.path().join("absent.crt"), ..one.clone() };
        let error = TlsIdentity::load(missing).err().expect("a missing certificate fails").to_string();
        assert!(error.contains("absent.crt"), "{error}");

        let swapped = TlsFiles { certificate: one.private_key.clone(), private_key: one.private_key.clone() };
        let error = TlsIdentity::load(swapped).err().expect("a key is no certificate").to_string();
        assert!(error.contains("holds no PEM certificate"), "{error}");

        let mismatched = TlsFiles { certificate: one.certificate.clone(), private_key: other.private_key.clone() };
        let error = TlsIdentity::load(mismatched).err().expect("another certificate's key fails").to_string();
        assert!(error.contains("cannot serve"), "{error}");
        let key = std::fs::read_to_string(&other.private_key).expect("read the key");
        let secret_line = key.lines().nth(1).expect("a key line");
        assert!(!error.contains(secret_line), "the error shows the key: {error}");
    }

    #[test]
    fn pem_contents_are_checked_as_the_operator_sees_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let one = write_identity(dir.path(), "one.example");
        let other = write_identity(dir.path(), "other.example");
        let read = |path: &Path| std::fs::read(path).expect("read");
        assert_eq!(check_pem(&read(&one.certificate), &read(&one.private_key)), Ok(()));
        let mismatch = check_pem(&read(&one.certificate), &read(&other.private_key)).expect_err("mismatched");
        assert!(mismatch.contains("cannot serve"), "{mismatch}");
        let empty = check_pem(b"", &read(&one.private_key)).expect_err("no certificate");
        assert!(empty.contains("no PEM certificate"), "{empty}");
        let no_key = check_pem(&read(&one.certificate), b"-----BEGIN NOTHING-----").expect_err("no key");
        assert!(no_key.starts_with("tls.key"), "{no_key}");
    }
}
