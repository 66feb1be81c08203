//! TLS for the emulated API servers. kubectl (client-go) only sends a bearer token over
//! TLS, so like a real EKS endpoint every cluster is served over HTTPS, with a certificate
//! for 127.0.0.1/localhost signed by a CA made fresh for each run; the kubeconfig carries
//! that CA as `certificate-authority-data`.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio_rustls::rustls;

/// Failed to make the run's certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("failed to generate the emulator's TLS certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("failed to configure TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// A CA and a server certificate for 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The CA certificate (PEM), for kubeconfig `certificate-authority-data`.
    pub ca_pem: String,
    /// The server configuration every listener uses.
    pub server_config: Arc<rustls::ServerConfig>,
}

impl Tls {
    /// Makes a new CA and server certificate.
    pub fn generate() -> Result<Self, TlsError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "baton-sim-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let cert = params.signed_by(&key, &issuer)?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), ca_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )?;
        // Watches stream over HTTP/1.1 chunked encoding; HTTP/2 is not offered.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            ca_pem: ca_cert.pem(),
            server_config: Arc::new(config),
        })
    }
}
