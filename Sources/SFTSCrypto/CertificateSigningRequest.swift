import COpenSSL
import Foundation

/// A PKCS#10 certificate signing request (an owned X509_REQ).
public final class CertificateSigningRequest: @unchecked Sendable {
    let pointer: OpaquePointer

    private init(taking pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        X509_REQ_free(pointer)
    }

    /// Makes a CSR for `commonName`, signed with `key`. It requests no extensions: the CA
    /// decides them.
    public static func create(commonName: String, key: PrivateKey) throws -> CertificateSigningRequest {
        OpenSSLErrorQueue.clear()
        guard let request = X509_REQ_new() else { throw CryptoError.drain("X509_REQ_new") }
        let csr = CertificateSigningRequest(taking: request)
        guard X509_REQ_set_version(request, 0) == 1,
            let name = X509_REQ_get_subject_name(request),
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, commonName, -1, -1, 0) == 1,
            X509_REQ_set_pubkey(request, key.pointer) == 1,
            X509_REQ_sign(request, key.pointer, EVP_sha256()) > 0
        else { throw CryptoError.drain("creating the CSR") }
        return csr
    }

    /// Loads a PEM CSR.
    public convenience init(pem: String) throws {
        let bio = try MemoryBIO(Array(pem.utf8))
        OpenSSLErrorQueue.clear()
        guard let request = PEM_read_bio_X509_REQ(bio.pointer, nil, nil, nil) else {
            throw CryptoError.openSSL(
                operation: "reading a PEM certificate request", reasons: OpenSSLErrorQueue.drain())
        }
        self.init(taking: request)
    }

    public var pem: String {
        guard let bio = try? MemoryBIO(), PEM_write_bio_X509_REQ(bio.pointer, pointer) == 1 else {
            return ""
        }
        return bio.string
    }

    public var subjectCommonNames: [String] {
        commonNames(in: X509_REQ_get_subject_name(pointer))
    }

    public var publicKey: PublicKey? {
        guard let key = X509_REQ_get_pubkey(pointer) else { return nil }
        return PublicKey(taking: key)
    }

    /// True when the CSR is signed by the private key of the public key it carries (proof of
    /// possession).
    public var hasValidSignature: Bool {
        guard let key = X509_REQ_get0_pubkey(pointer) else { return false }
        let valid = X509_REQ_verify(pointer, key) == 1
        OpenSSLErrorQueue.clear()
        return valid
    }
}
