//! TLS configuration for `tls+tcp://` and `wss://`: the host's certificate
//! and key (the user's PEM, optionally an encrypted PKCS#8 key, or a
//! zero-config single-use CA made here), and the daemon's trust anchors.
//! rustls with the `ring` provider only; no OpenSSL.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use pkcs8::der::pem::PemLabel;
use pkcs8::{EncryptedPrivateKeyInfo, SecretDocument};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: &str, e: impl fmt::Display) -> Error {
    Error::Io(format!("{what}: {e}"))
}

/// The host's side of TLS: a certificate chain and its private key.
#[derive(Clone)]
pub struct TlsServerConfig {
    pub(crate) config: Arc<ServerConfig>,
}

impl fmt::Debug for TlsServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsServerConfig { .. }")
    }
}

/// The daemon's side of TLS: the certificate authorities it trusts.
#[derive(Clone)]
pub struct TlsClientConfig {
    pub(crate) config: Arc<ClientConfig>,
}

impl fmt::Debug for TlsClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsClientConfig { .. }")
    }
}

/// What `zero_config` makes: the host's configuration and the PEM of the
/// single-use CA that signed its certificate, to hand to daemons.
#[derive(Clone, Debug)]
pub struct ZeroConfig {
    pub server: TlsServerConfig,
    pub ca_pem: String,
}

fn certificates(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(&format!("cannot read the {what}"), e))?;
    if certs.is_empty() {
        return Err(Error::Io(format!(
            "no '-----BEGIN CERTIFICATE-----' block found in the {what}"
        )));
    }
    Ok(certs)
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

fn private_key(pem: &str, password: Option<&str>) -> Result<PrivateKeyDer<'static>, Error> {
    if let Some(start) = pem.find(ENCRYPTED_BEGIN) {
        let block = &pem[start..];
        let end = block
            .find(ENCRYPTED_END)
            .ok_or_else(|| Error::Io("unterminated ENCRYPTED PRIVATE KEY block".to_string()))?;
        let block = &block[..end + ENCRYPTED_END.len()];
        let password = password.ok_or_else(|| {
            Error::Io("the private key is encrypted, but no password was given".to_string())
        })?;
        let (label, document) = SecretDocument::from_pem(block)
            .map_err(|e| tls_error("cannot read the encrypted private key", e))?;
        EncryptedPrivateKeyInfo::validate_pem_label(label)
            .map_err(|e| tls_error("cannot read the encrypted private key", e))?;
        let info = EncryptedPrivateKeyInfo::try_from(document.as_bytes())
            .map_err(|e| tls_error("cannot read the encrypted private key", e))?;
        let decrypted = info.decrypt(password).map_err(|_| {
            Error::Io(
                "cannot decrypt the private key: wrong password or unsupported encryption"
                    .to_string(),
            )
        })?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            decrypted.as_bytes().to_vec(),
        )));
    }
    if pem.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(Error::Io(
            "the private key uses legacy PEM encryption: convert it to encrypted PKCS#8 \
             (openssl pkcs8 -topk8)"
                .to_string(),
        ));
    }
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| tls_error("cannot read the private key", e))
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsServerConfig, Error> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("cannot configure TLS", e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls_error("the certificate and key cannot be used", e))?;
    Ok(TlsServerConfig {
        config: Arc::new(config),
    })
}

impl TlsServerConfig {
    /// From PEM text: `cert_chain_pem` holds the server's certificate first,
    /// then any intermediates; `key_pem` its private key (PKCS#8, SEC1 or
    /// PKCS#1), or an "ENCRYPTED PRIVATE KEY" (PKCS#8, PBES2) opened with
    /// `password`. Both may be the same text holding every block.
    pub fn from_pem(
        cert_chain_pem: &str,
        key_pem: &str,
        password: Option<&str>,
    ) -> Result<TlsServerConfig, Error> {
        let chain = certificates(cert_chain_pem, "certificate chain")?;
        let key = private_key(key_pem, password)?;
        server_config(chain, key)
    }
}

impl TlsClientConfig {
    /// Trusts the CA certificate(s) in `ca_pem`; the server's certificate must
    /// chain to one of them and name the host of the URL dialled.
    pub fn from_pem(ca_pem: &str) -> Result<TlsClientConfig, Error> {
        let mut roots = RootCertStore::empty();
        for cert in certificates(ca_pem, "CA certificate")? {
            roots
                .add(cert)
                .map_err(|e| tls_error("cannot use the CA certificate", e))?;
        }
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("cannot configure TLS", e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsClientConfig {
            config: Arc::new(config),
        })
    }
}

/// A single-use CA and a server certificate it signed for `host` (an IP
/// address SAN when `host` is an address, else a DNS name; a loopback host
/// also gets `localhost`, 127.0.0.1 and ::1). ECDSA P-256 keys.
pub fn zero_config(host: &str) -> Result<ZeroConfig, Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
    };
    let failed = |e: rcgen::Error| Error::Io(format!("cannot make a zero-config certificate: {e}"));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(Error::Io(
            "cannot make a zero-config certificate: empty host name".to_string(),
        ));
    }

    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    // A name of its own, so that another single-use CA is never taken for
    // this one.
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("mirai single-use CA {:016x}", rand::random::<u64>()),
    );
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(failed)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut sans = Vec::new();
    let loopback = match host.parse::<IpAddr>() {
        Ok(ip) => {
            sans.push(SanType::IpAddress(ip));
            ip.is_loopback()
        }
        Err(_) => {
            if rustls_pki_types::DnsName::try_from(host).is_err() {
                return Err(Error::Io(format!(
                    "cannot make a zero-config certificate: '{host}' is not a host name"
                )));
            }
            let name = host.try_into().map_err(failed)?;
            sans.push(SanType::DnsName(name));
            host.eq_ignore_ascii_case("localhost")
        }
    };
    if loopback {
        for extra in [
            SanType::DnsName("localhost".try_into().map_err(failed)?),
            SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
            SanType::IpAddress(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        ] {
            if !sans.contains(&extra) {
                sans.push(extra);
            }
        }
    }
    let server_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    params.distinguished_name.push(DnType::CommonName, host);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&server_key, &issuer).map_err(failed)?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let server = server_config(vec![cert.der().clone(), ca_cert.der().clone()], key)?;
    Ok(ZeroConfig {
        server,
        ca_pem: ca_cert.pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_config_makes_a_usable_pair() {
        for host in ["127.0.0.1", "::1", "[::1]", "example.org", "localhost"] {
            let zero = zero_config(host).unwrap();
            assert!(zero.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
            TlsClientConfig::from_pem(&zero.ca_pem).unwrap();
        }
        assert!(zero_config("").is_err());
        assert!(zero_config("not a host name!").is_err());
    }

    #[test]
    fn bad_pem_is_a_clear_error() {
        let err = TlsClientConfig::from_pem("nothing here").unwrap_err();
        assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");
        let err = TlsServerConfig::from_pem("", "", None).unwrap_err();
        assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");
        let zero = zero_config("127.0.0.1").unwrap();
        let err = TlsServerConfig::from_pem(&zero.ca_pem, "no key", None).unwrap_err();
        assert!(err.to_string().contains("private key"), "{err}");
        let encrypted = format!("{ENCRYPTED_BEGIN}\nAAAA\n{ENCRYPTED_END}\n");
        let err = TlsServerConfig::from_pem(&zero.ca_pem, &encrypted, None).unwrap_err();
        assert!(err.to_string().contains("no password"), "{err}");
        let err = TlsServerConfig::from_pem(&zero.ca_pem, &encrypted, Some("x")).unwrap_err();
        assert!(err.to_string().contains("encrypted private key"), "{err}");
    }
}
