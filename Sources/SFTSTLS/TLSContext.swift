import COpenSSL
import Foundation
import SFTSCrypto

/// The TLS policy every sfts endpoint uses.
public enum TLSPolicy {
    /// TLS 1.2 suites: ECDHE key exchange with AES-GCM only.
    public static let tls12CipherList =
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
        + "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
    /// TLS 1.3 suites: the AES-GCM ones only.
    public static let tls13CipherSuites = "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256"
    /// Key exchange groups, strongest common first.
    public static let groups = "X25519:P-256:P-384"
}

/// An SSL_CTX configured with ``TLSPolicy``: TLS 1.2 minimum, no compression, no
/// renegotiation, no session tickets.
public final class TLSContext: @unchecked Sendable {
    let pointer: OpaquePointer
    /// Whether connections check the peer's certificate against a CA.
    public let verifiesPeer: Bool

    private init(server: Bool, verifiesPeer: Bool) throws {
        OpenSSLErrorQueue.clear()
        guard let context = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()) else {
            throw TLSError.configuration("SSL_CTX_new failed: \(OpenSSLErrorQueue.drain())")
        }
        pointer = context
        self.verifiesPeer = verifiesPeer

        let options =
            sfts_SSL_OP_NO_COMPRESSION | sfts_SSL_OP_NO_RENEGOTIATION
            | sfts_SSL_OP_CIPHER_SERVER_PREFERENCE | sfts_SSL_OP_NO_TICKET
        SSL_CTX_set_options(context, options)
        guard sfts_SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) == 1,
            SSL_CTX_set_cipher_list(context, TLSPolicy.tls12CipherList) == 1,
            SSL_CTX_set_ciphersuites(context, TLSPolicy.tls13CipherSuites) == 1,
            sfts_SSL_CTX_set1_groups_list(context, TLSPolicy.groups) == 1
        else {
            throw TLSError.configuration("applying the TLS policy: \(OpenSSLErrorQueue.drain())")
        }
        sfts_SSL_CTX_set_auto_retry(context)
        SSL_CTX_set_num_tickets(context, 0)
        if server {
            sfts_SSL_CTX_disable_session_cache(context)
        }
    }

    deinit {
        SSL_CTX_free(pointer)
    }

    /// A server context presenting `certificate` (with `chain` after it).
    ///
    /// - Parameters:
    ///   - clientCA: When given, every client must present a certificate issued by it for TLS
    ///     client authentication, or the handshake fails. When nil, no certificate is requested
    ///     (the enrollment service).
    ///   - revocationList: A CRL from `clientCA`; client certificates it lists are rejected in
    ///     the handshake.
    public static func server(
        certificate: Certificate, key: PrivateKey, chain: [Certificate] = [],
        clientCA: Certificate?, revocationList: CertificateRevocationList? = nil
    ) throws -> TLSContext {
        let context = try TLSContext(server: true, verifiesPeer: clientCA != nil)
        try context.use(certificate: certificate, key: key, chain: chain)
        if let clientCA {
            guard let store = SSL_CTX_get_cert_store(context.pointer),
                X509_STORE_add_cert(store, clientCA.pointer) == 1,
                SSL_CTX_add_client_CA(context.pointer, clientCA.pointer) == 1
            else {
                throw TLSError.configuration("trusting the client CA: \(OpenSSLErrorQueue.drain())")
            }
            if let revocationList {
                guard X509_STORE_add_crl(store, revocationList.pointer) == 1,
                    X509_STORE_set_flags(store, UInt(X509_V_FLAG_CRL_CHECK)) == 1
                else {
                    throw TLSError.configuration("loading the CRL: \(OpenSSLErrorQueue.drain())")
                }
            }
            X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(context.pointer), X509_PURPOSE_SSL_CLIENT)
            SSL_CTX_set_verify(context.pointer, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        } else {
            SSL_CTX_set_verify(context.pointer, SSL_VERIFY_NONE, nil)
        }
        return context
    }

    /// A client context.
    ///
    /// - Parameters:
    ///   - trusting: The CA the server certificate must chain to. When nil the server is not
    ///     verified by TLS, which only enrollment does: it authenticates the channel through
    ///     the host code proof instead.
    ///   - certificate: The client certificate, with `key`, for mutual TLS.
    public static func client(
        trusting ca: Certificate?, certificate: Certificate? = nil, key: PrivateKey? = nil
    ) throws -> TLSContext {
        let context = try TLSContext(server: false, verifiesPeer: ca != nil)
        if let certificate, let key {
            try context.use(certificate: certificate, key: key, chain: [])
        }
        if let ca {
            guard let store = SSL_CTX_get_cert_store(context.pointer),
                X509_STORE_add_cert(store, ca.pointer) == 1
            else {
                throw TLSError.configuration("trusting the CA: \(OpenSSLErrorQueue.drain())")
            }
            X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(context.pointer), X509_PURPOSE_SSL_SERVER)
            SSL_CTX_set_verify(context.pointer, SSL_VERIFY_PEER, nil)
        } else {
            SSL_CTX_set_verify(context.pointer, SSL_VERIFY_NONE, nil)
        }
        return context
    }

    private func use(certificate: Certificate, key: PrivateKey, chain: [Certificate]) throws {
        guard SSL_CTX_use_certificate(pointer, certificate.pointer) == 1,
            SSL_CTX_use_PrivateKey(pointer, key.pointer) == 1,
            SSL_CTX_check_private_key(pointer) == 1
        else {
            throw TLSError.configuration(
                "loading the certificate and key: \(OpenSSLErrorQueue.drain().joined(separator: "; "))")
        }
        for extra in chain {
            guard sfts_SSL_CTX_add1_chain_cert(pointer, extra.pointer) == 1 else {
                throw TLSError.configuration("adding a chain certificate: \(OpenSSLErrorQueue.drain())")
            }
        }
    }
}
