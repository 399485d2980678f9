import COpenSSL
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An X.509 certificate (an owned X509).
public final class Certificate: @unchecked Sendable {
    package let pointer: OpaquePointer

    /// The use a certificate is checked for, as OpenSSL's purposes define it.
    public enum Purpose: Sendable {
        case tlsServer
        case tlsClient

        var openSSLValue: Int32 {
            switch self {
            case .tlsServer: return X509_PURPOSE_SSL_SERVER
            case .tlsClient: return X509_PURPOSE_SSL_CLIENT
            }
        }
    }

    /// Wraps an X509 whose reference the caller hands over.
    package init(taking pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        X509_free(pointer)
    }

    /// Loads the first certificate in `pem`.
    public convenience init(pem: String) throws {
        let bio = try MemoryBIO(Array(pem.utf8))
        OpenSSLErrorQueue.clear()
        guard let certificate = PEM_read_bio_X509(bio.pointer, nil, nil, nil) else {
            throw CryptoError.openSSL(
                operation: "reading a PEM certificate", reasons: OpenSSLErrorQueue.drain())
        }
        self.init(taking: certificate)
    }

    /// Loads a certificate from a PEM file.
    public convenience init(contentsOf url: URL) throws {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw CryptoError.invalidInput("cannot read certificate \(url.path): \(error)")
        }
        do {
            try self.init(pem: text)
        } catch {
            throw CryptoError.invalidInput("\(url.path) contains no valid PEM certificate: \(error)")
        }
    }

    /// The certificate as PEM.
    public var pem: String {
        guard let bio = try? MemoryBIO(), PEM_write_bio_X509(bio.pointer, pointer) == 1 else {
            return ""
        }
        return bio.string
    }

    /// The certificate as DER.
    public var der: [UInt8] {
        var output: UnsafeMutablePointer<UInt8>?
        let length = i2d_X509(pointer, &output)
        guard length > 0, let output else { return [] }
        defer { sfts_OPENSSL_free(output) }
        return Array(UnsafeBufferPointer(start: output, count: Int(length)))
    }

    /// The SHA-256 digest of the DER encoding, as `openssl x509 -fingerprint -sha256` shows it.
    public var sha256Fingerprint: [UInt8] {
        Digest.sha256(der)
    }

    /// The subject's common names, normally exactly one.
    public var subjectCommonNames: [String] {
        commonNames(in: X509_get_subject_name(pointer))
    }

    /// The subject's common name when there is exactly one.
    public var subjectCommonName: String? {
        let names = subjectCommonNames
        return names.count == 1 ? names[0] : nil
    }

    /// The serial number in uppercase hexadecimal, as `openssl x509 -serial` shows it.
    public var serialNumberHex: String {
        X509_get0_serialNumber(pointer).map(hexString) ?? ""
    }

    public var notBefore: Date { asn1Date(X509_get0_notBefore(pointer)) }

    public var notAfter: Date { asn1Date(X509_get0_notAfter(pointer)) }

    /// True when the extended key usage allows TLS server authentication.
    public var isTLSServer: Bool {
        X509_check_purpose(pointer, X509_PURPOSE_SSL_SERVER, 0) == 1
    }

    /// True when the certificate may sign CRLs: its key usage includes cRLSign, or it has no
    /// key usage extension.
    public var allowsCRLSigning: Bool {
        X509_get_key_usage(pointer) & UInt32(KU_CRL_SIGN) != 0
    }

    /// True when basic constraints mark the certificate as a CA.
    public var isCertificateAuthority: Bool { X509_check_ca(pointer) != 0 }

    /// The subject public key.
    public var publicKey: PublicKey? {
        guard let key = X509_get_pubkey(pointer) else { return nil }
        return PublicKey(taking: key)
    }

    /// True when `key` is this certificate's private key.
    public func matches(_ key: PrivateKey) -> Bool {
        X509_check_private_key(pointer, key.pointer) == 1
    }

    /// The DNS names and IP addresses in the subject alternative name extension.
    public var subjectAlternativeNames: [String] {
        guard let extensionValue = X509_get_ext_d2i(pointer, NID_subject_alt_name, nil, nil) else { return [] }
        let names = OpaquePointer(extensionValue)
        defer { GENERAL_NAMES_free(names) }
        var result: [String] = []
        for index in 0..<OPENSSL_sk_num(names) {
            guard let entry = OPENSSL_sk_value(names, index) else { continue }
            var type: Int32 = 0
            let name = entry.assumingMemoryBound(to: GENERAL_NAME.self)
            guard let value = GENERAL_NAME_get0_value(name, &type) else { continue }
            let string = value.assumingMemoryBound(to: ASN1_STRING.self)
            guard let data = ASN1_STRING_get0_data(string) else { continue }
            let bytes = [UInt8](UnsafeBufferPointer(start: data, count: Int(ASN1_STRING_length(string))))
            switch type {
            case GEN_DNS:
                result.append(String(decoding: bytes, as: UTF8.self))
            case GEN_IPADD where bytes.count == 4 || bytes.count == 16:
                var text = [CChar](repeating: 0, count: 64)
                let family = bytes.count == 4 ? AF_INET : AF_INET6
                if inet_ntop(family, bytes, &text, socklen_t(text.count)) != nil {
                    result.append(String(cString: text))
                }
            default:
                continue
            }
        }
        return result
    }

    /// True when the SANs name `host`, a DNS name or an IP address, as TLS clients check it.
    public func matchesHost(_ host: String) -> Bool {
        if X509_check_ip_asc(pointer, host, 0) == 1 {
            return true
        }
        return X509_check_host(pointer, host, host.utf8.count, 0, nil) == 1
    }

    /// The certificate as `openssl x509 -text` prints it, for diagnostics and tests.
    public var text: String {
        guard let bio = try? MemoryBIO(), X509_print(bio.pointer, pointer) == 1 else { return "" }
        return bio.string
    }

    /// Verifies the chain from this certificate to one of `roots` for `purpose` at `date`.
    public func verify(trusting roots: [Certificate], purpose: Purpose, at date: Date = Date())
        throws
    {
        OpenSSLErrorQueue.clear()
        guard let store = X509_STORE_new() else { throw CryptoError.drain("X509_STORE_new") }
        defer { X509_STORE_free(store) }
        for root in roots {
            guard X509_STORE_add_cert(store, root.pointer) == 1 else {
                throw CryptoError.drain("adding a trusted certificate")
            }
        }
        guard let context = X509_STORE_CTX_new() else {
            throw CryptoError.drain("X509_STORE_CTX_new")
        }
        defer { X509_STORE_CTX_free(context) }
        guard X509_STORE_CTX_init(context, store, pointer, nil) == 1 else {
            throw CryptoError.drain("X509_STORE_CTX_init")
        }
        X509_STORE_CTX_set_purpose(context, purpose.openSSLValue)
        X509_STORE_CTX_set_time(context, 0, time_t(date.timeIntervalSince1970))
        if X509_verify_cert(context) != 1 {
            let code = X509_STORE_CTX_get_error(context)
            let reason = String(cString: X509_verify_cert_error_string(Int(code)))
            OpenSSLErrorQueue.clear()
            throw CryptoError.certificateRejected(reason)
        }
    }
}

/// Reads every common name in an X509_NAME as UTF-8.
func commonNames(in name: OpaquePointer?) -> [String] {
    guard let name else { return [] }
    var names: [String] = []
    var index: Int32 = -1
    while true {
        index = X509_NAME_get_index_by_NID(name, NID_commonName, index)
        if index < 0 { break }
        guard let entry = X509_NAME_get_entry(name, index),
            let data = X509_NAME_ENTRY_get_data(entry)
        else { continue }
        var output: UnsafeMutablePointer<UInt8>?
        let length = ASN1_STRING_to_UTF8(&output, data)
        guard length >= 0, let output else { continue }
        names.append(String(decoding: UnsafeBufferPointer(start: output, count: Int(length)), as: UTF8.self))
        sfts_OPENSSL_free(output)
    }
    return names
}

/// Reads every PEM certificate in `text`, in order.
public func certificates(inPEM text: String) throws -> [Certificate] {
    let bio = try MemoryBIO(Array(text.utf8))
    var result: [Certificate] = []
    while let certificate = PEM_read_bio_X509(bio.pointer, nil, nil, nil) {
        result.append(Certificate(taking: certificate))
    }
    OpenSSLErrorQueue.clear()
    return result
}
