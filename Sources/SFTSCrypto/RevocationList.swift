import COpenSSL
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// CRL reason codes of RFC 5280 section 5.3.1 that a user CA has use for.
public enum RevocationReason: String, CaseIterable, Codable, Sendable {
    case unspecified
    case keyCompromise
    case affiliationChanged
    case superseded
    case cessationOfOperation
    case privilegeWithdrawn

    var code: Int {
        switch self {
        case .unspecified: return 0
        case .keyCompromise: return 1
        case .affiliationChanged: return 3
        case .superseded: return 4
        case .cessationOfOperation: return 5
        case .privilegeWithdrawn: return 9
        }
    }
}

/// One revoked certificate in a CRL.
public struct RevokedCertificate: Sendable, Equatable {
    /// The serial number in uppercase hexadecimal, as ``Certificate/serialNumberHex`` gives it.
    public let serialNumberHex: String
    public let date: Date
    public let reason: RevocationReason

    public init(serialNumberHex: String, date: Date, reason: RevocationReason) {
        self.serialNumberHex = serialNumberHex
        self.date = date
        self.reason = reason
    }
}

/// An X.509 v2 certificate revocation list (an owned X509_CRL).
public final class CertificateRevocationList: @unchecked Sendable {
    package let pointer: OpaquePointer

    fileprivate init(taking pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        X509_CRL_free(pointer)
    }

    /// Loads a PEM CRL.
    public convenience init(pem: String) throws {
        let bio = try MemoryBIO(Array(pem.utf8))
        OpenSSLErrorQueue.clear()
        guard let crl = PEM_read_bio_X509_CRL(bio.pointer, nil, nil, nil) else {
            throw CryptoError.openSSL(operation: "reading a PEM CRL", reasons: OpenSSLErrorQueue.drain())
        }
        self.init(taking: crl)
    }

    public var pem: String {
        guard let bio = try? MemoryBIO(), PEM_write_bio_X509_CRL(bio.pointer, pointer) == 1 else { return "" }
        return bio.string
    }

    public var lastUpdate: Date { asn1Date(X509_CRL_get0_lastUpdate(pointer)) }

    /// When the CRL expires; a CRL without nextUpdate never does.
    public var nextUpdate: Date {
        guard let time = X509_CRL_get0_nextUpdate(pointer) else { return .distantFuture }
        return asn1Date(time)
    }

    /// The serial numbers the CRL lists, in uppercase hexadecimal.
    public var revokedSerials: [String] {
        guard let stack = X509_CRL_get_REVOKED(pointer) else { return [] }
        var serials: [String] = []
        for index in 0..<OPENSSL_sk_num(stack) {
            guard let entry = OPENSSL_sk_value(stack, index),
                let serial = X509_REVOKED_get0_serialNumber(OpaquePointer(entry))
            else { continue }
            serials.append(hexString(serial))
        }
        return serials
    }

    /// True when `issuer`'s key signed this CRL.
    public func isSigned(by issuer: Certificate) -> Bool {
        guard let key = X509_get0_pubkey(issuer.pointer) else { return false }
        let valid = X509_CRL_verify(pointer, key) == 1
        OpenSSLErrorQueue.clear()
        return valid
    }
}

extension CertificateAuthority {
    /// Issues a CRL listing `revoked`, valid for `validity` seconds, with CRL number `number`
    /// and the CA's key identifier (RFC 5280 sections 5.2.1 and 5.2.3).
    public func issueRevocationList(revoked: [RevokedCertificate], number: Int, validity: TimeInterval) throws
        -> CertificateRevocationList
    {
        OpenSSLErrorQueue.clear()
        guard let crl = X509_CRL_new() else { throw CryptoError.drain("X509_CRL_new") }
        let list = CertificateRevocationList(taking: crl)

        let now = Date()
        guard X509_CRL_set_version(crl, 1) == 1,
            X509_CRL_set_issuer_name(crl, X509_get_subject_name(certificate.pointer)) == 1,
            setTime(now, { X509_CRL_set1_lastUpdate(crl, $0) }),
            setTime(now + validity, { X509_CRL_set1_nextUpdate(crl, $0) })
        else { throw CryptoError.drain("building the CRL") }

        for entry in revoked {
            guard let revokedEntry = X509_REVOKED_new() else { throw CryptoError.drain("X509_REVOKED_new") }
            var added = false
            defer {
                if !added { X509_REVOKED_free(revokedEntry) }
            }
            var number: OpaquePointer? = nil
            guard BN_hex2bn(&number, entry.serialNumberHex) > 0, let number else {
                throw CryptoError.invalidInput("invalid serial number \(entry.serialNumberHex)")
            }
            defer { BN_free(number) }
            guard let serial = BN_to_ASN1_INTEGER(number, nil) else { throw CryptoError.drain("BN_to_ASN1_INTEGER") }
            defer { ASN1_INTEGER_free(serial) }
            guard let reason = ASN1_ENUMERATED_new() else { throw CryptoError.drain("ASN1_ENUMERATED_new") }
            defer { ASN1_ENUMERATED_free(reason) }
            guard X509_REVOKED_set_serialNumber(revokedEntry, serial) == 1,
                setTime(
                    entry.date, { X509_REVOKED_set_revocationDate(revokedEntry, UnsafeMutablePointer(mutating: $0)) }),
                ASN1_ENUMERATED_set(reason, entry.reason.code) == 1,
                X509_REVOKED_add1_ext_i2d(revokedEntry, NID_crl_reason, reason, 0, 0) == 1,
                X509_CRL_add0_revoked(crl, revokedEntry) == 1
            else { throw CryptoError.drain("adding a revoked certificate") }
            added = true
        }

        guard let crlNumber = ASN1_INTEGER_new() else { throw CryptoError.drain("ASN1_INTEGER_new") }
        defer { ASN1_INTEGER_free(crlNumber) }
        var context = X509V3_CTX()
        X509V3_set_ctx(&context, certificate.pointer, nil, nil, crl, 0)
        guard ASN1_INTEGER_set(crlNumber, number) == 1,
            X509_CRL_add1_ext_i2d(crl, NID_crl_number, crlNumber, 0, 0) == 1,
            let keyIdentifier = X509V3_EXT_nconf_nid(nil, &context, NID_authority_key_identifier, "keyid:always")
        else { throw CryptoError.drain("adding the CRL extensions") }
        defer { X509_EXTENSION_free(keyIdentifier) }
        guard X509_CRL_add_ext(crl, keyIdentifier, -1) == 1, X509_CRL_sort(crl) == 1,
            X509_CRL_sign(crl, key.pointer, EVP_sha256()) > 0
        else { throw CryptoError.drain("signing the CRL") }
        return list
    }
}

/// Builds an ASN1_TIME for `date` and hands it to `apply`, which must copy it.
private func setTime(_ date: Date, _ apply: (UnsafePointer<ASN1_TIME>) -> Int32) -> Bool {
    guard let time = ASN1_TIME_set(nil, time_t(date.timeIntervalSince1970)) else { return false }
    defer { ASN1_TIME_free(time) }
    return apply(time) == 1
}

func asn1Date(_ time: UnsafePointer<ASN1_TIME>?) -> Date {
    var parts = tm()
    guard let time, ASN1_TIME_to_tm(time, &parts) == 1 else { return Date(timeIntervalSince1970: 0) }
    return Date(timeIntervalSince1970: Double(timegm(&parts)))
}

/// An ASN1_INTEGER in uppercase hexadecimal.
func hexString(_ integer: UnsafePointer<ASN1_INTEGER>) -> String {
    guard let number = ASN1_INTEGER_to_BN(integer, nil) else { return "" }
    defer { BN_free(number) }
    guard let hex = BN_bn2hex(number) else { return "" }
    defer { sfts_OPENSSL_free(hex) }
    return String(cString: hex)
}
