import COpenSSL
import Foundation

/// The server's private CA: a key and its self-signed certificate.
///
/// Every certificate it issues carries only extensions the CA chose (RFC 5280 section 4.2):
/// nothing is copied from a CSR.
public final class CertificateAuthority: @unchecked Sendable {
    public let certificate: Certificate
    public let key: PrivateKey

    /// Clock skew allowed for peers whose clocks run a little behind.
    static let backdate: TimeInterval = 5 * 60

    public init(certificate: Certificate, key: PrivateKey) throws {
        guard certificate.matches(key) else {
            throw CryptoError.invalidInput("the CA key does not match the CA certificate")
        }
        guard certificate.isCertificateAuthority else {
            throw CryptoError.invalidInput("the CA certificate is not marked as a CA")
        }
        self.certificate = certificate
        self.key = key
    }

    /// Creates a self-signed CA certificate for `key`: CA:TRUE with path length 0, so it can
    /// sign only end-entity certificates, and key usage keyCertSign and cRLSign.
    public static func create(commonName: String, key: PrivateKey, validityDays: Int) throws
        -> CertificateAuthority
    {
        let now = Date()
        let certificate = try buildCertificate(
            subjectCommonName: commonName, subjectKey: key.publicKey, issuer: nil, signingKey: key,
            notBefore: now - backdate, notAfter: now + Double(validityDays) * 86400,
            extensions: [
                (NID_basic_constraints, "critical,CA:TRUE,pathlen:0"),
                (NID_key_usage, "critical,keyCertSign,cRLSign"),
                (NID_subject_key_identifier, "hash"),
                (NID_authority_key_identifier, "keyid:always"),
            ])
        return try CertificateAuthority(certificate: certificate, key: key)
    }

    /// Issues a TLS server certificate for `publicKey` with the given SANs.
    public func issueServerCertificate(
        commonName: String, publicKey: PublicKey, dnsNames: [String], ipAddresses: [String],
        validityDays: Int
    ) throws -> Certificate {
        let names = dnsNames.map { "DNS:\($0)" } + ipAddresses.map { "IP:\($0)" }
        guard !names.isEmpty else {
            throw CryptoError.invalidInput("a server certificate needs at least one host name")
        }
        var extensions = endEntityExtensions(extendedKeyUsage: "serverAuth")
        extensions.append((NID_subject_alt_name, names.joined(separator: ",")))
        return try issue(
            commonName: commonName, publicKey: publicKey, validity: Double(validityDays) * 86400,
            extensions: extensions)
    }

    /// Signs a client CSR for user `expectedName` after the policy checks; throws
    /// `policyViolation` naming the first check that failed.
    ///
    /// The certificate gets the CA's own choice of subject (CN only), CA:FALSE,
    /// digitalSignature and keyEncipherment, clientAuth, and a validity that ends no later
    /// than the CA's.
    public func signClientCertificate(
        _ csr: CertificateSigningRequest, expectedName: String, validity: TimeInterval,
        minimumKeyBits: Int = PrivateKey.minimumRSABits
    ) throws -> Certificate {
        try ClientCSRPolicy(expectedName: expectedName, minimumKeyBits: minimumKeyBits).check(csr)
        guard let publicKey = csr.publicKey else {
            throw CryptoError.policyViolation(check: "public key", reason: "the CSR has no key")
        }
        return try issue(
            commonName: expectedName, publicKey: publicKey, validity: validity,
            extensions: endEntityExtensions(extendedKeyUsage: "clientAuth"))
    }

    private func endEntityExtensions(extendedKeyUsage: String) -> [(Int32, String)] {
        [
            (NID_basic_constraints, "critical,CA:FALSE"),
            (NID_key_usage, "critical,digitalSignature,keyEncipherment"),
            (NID_ext_key_usage, extendedKeyUsage),
            (NID_subject_key_identifier, "hash"),
            (NID_authority_key_identifier, "keyid:always"),
        ]
    }

    private func issue(
        commonName: String, publicKey: PublicKey, validity: TimeInterval,
        extensions: [(Int32, String)]
    ) throws -> Certificate {
        guard validity > 0 else {
            throw CryptoError.invalidInput("invalid validity of \(validity) seconds")
        }
        let now = Date()
        let notAfter = min(now + validity, certificate.notAfter)
        return try CertificateAuthority.buildCertificate(
            subjectCommonName: commonName, subjectKey: publicKey, issuer: certificate,
            signingKey: key, notBefore: now - CertificateAuthority.backdate, notAfter: notAfter,
            extensions: extensions)
    }

    /// Builds and signs a v3 certificate with a random 127-bit serial number.
    private static func buildCertificate(
        subjectCommonName: String, subjectKey: PublicKey, issuer: Certificate?,
        signingKey: PrivateKey, notBefore: Date, notAfter: Date, extensions: [(Int32, String)]
    ) throws -> Certificate {
        OpenSSLErrorQueue.clear()
        guard let x509 = X509_new() else { throw CryptoError.drain("X509_new") }
        let certificate = Certificate(taking: x509)

        guard X509_set_version(x509, 2) == 1 else { throw CryptoError.drain("X509_set_version") }
        var serialBytes = SecureRandom.bytes(16)
        serialBytes[0] &= 0x7F
        serialBytes[0] |= 0x40
        guard let serial = BN_bin2bn(serialBytes, Int32(serialBytes.count), nil) else {
            throw CryptoError.drain("BN_bin2bn")
        }
        defer { BN_free(serial) }
        guard BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x509)) != nil else {
            throw CryptoError.drain("setting the serial number")
        }

        guard let subject = X509_NAME_new() else { throw CryptoError.drain("X509_NAME_new") }
        defer { X509_NAME_free(subject) }
        guard
            X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, subjectCommonName, -1, -1, 0)
                == 1,
            X509_set_subject_name(x509, subject) == 1,
            X509_set_issuer_name(x509, issuer.map { X509_get_subject_name($0.pointer) } ?? subject)
                == 1
        else { throw CryptoError.drain("setting the subject and issuer") }

        var start = time_t(notBefore.timeIntervalSince1970)
        var end = time_t(notAfter.timeIntervalSince1970)
        guard X509_time_adj_ex(X509_getm_notBefore(x509), 0, 0, &start) != nil,
            X509_time_adj_ex(X509_getm_notAfter(x509), 0, 0, &end) != nil
        else { throw CryptoError.drain("setting the validity") }

        guard X509_set_pubkey(x509, subjectKey.pointer) == 1 else {
            throw CryptoError.drain("X509_set_pubkey")
        }

        var context = X509V3_CTX()
        X509V3_set_ctx(&context, issuer?.pointer ?? x509, x509, nil, nil, 0)
        for (nid, value) in extensions {
            guard let extensionPointer = X509V3_EXT_nconf_nid(nil, &context, nid, value) else {
                throw CryptoError.drain("building extension \(String(cString: OBJ_nid2sn(nid)))")
            }
            defer { X509_EXTENSION_free(extensionPointer) }
            guard X509_add_ext(x509, extensionPointer, -1) == 1 else {
                throw CryptoError.drain("X509_add_ext")
            }
        }

        guard X509_sign(x509, signingKey.pointer, EVP_sha256()) > 0 else {
            throw CryptoError.drain("signing the certificate")
        }
        return certificate
    }
}

/// The checks a client CSR must pass before the CA signs it, each failing with a reason that
/// names it.
public struct ClientCSRPolicy: Sendable {
    public let expectedName: String
    public let minimumKeyBits: Int

    /// The largest RSA key accepted, so a CSR cannot make the CA do unbounded work.
    public static let maximumKeyBits = 16384

    public init(expectedName: String, minimumKeyBits: Int = PrivateKey.minimumRSABits) {
        self.expectedName = expectedName
        self.minimumKeyBits = minimumKeyBits
    }

    public func check(_ csr: CertificateSigningRequest) throws {
        guard let key = csr.publicKey else {
            throw CryptoError.policyViolation(check: "public key", reason: "the CSR has no key")
        }
        guard key.isRSA else {
            throw CryptoError.policyViolation(
                check: "key type", reason: "only RSA keys are accepted")
        }
        guard key.bits >= minimumKeyBits, key.bits <= ClientCSRPolicy.maximumKeyBits else {
            throw CryptoError.policyViolation(
                check: "key size",
                reason: "the key has \(key.bits) bits; use \(minimumKeyBits) to "
                    + "\(ClientCSRPolicy.maximumKeyBits)")
        }
        guard csr.hasValidSignature else {
            throw CryptoError.policyViolation(
                check: "proof of possession",
                reason: "the CSR signature does not verify with its own public key")
        }
        let names = csr.subjectCommonNames
        guard names.count == 1, names[0] == expectedName else {
            let shown = names.isEmpty ? "none" : names.joined(separator: ", ")
            throw CryptoError.policyViolation(
                check: "common name",
                reason: "the CSR names \(shown); it must name exactly \(expectedName)")
        }
    }
}
