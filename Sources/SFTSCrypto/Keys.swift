import COpenSSL
import Foundation

/// The passphrase handed to OpenSSL's PEM password callback through its `void *` argument.
private final class PassphraseBox {
    let bytes: [CChar]

    init(_ passphrase: String?) {
        bytes = passphrase.map { Array($0.utf8CString.dropLast()) } ?? []
    }
}

/// Copies the boxed passphrase into OpenSSL's buffer. With no passphrase it returns 0, so an
/// encrypted key fails to load instead of OpenSSL prompting on the terminal.
private let passphraseCallback:
    @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32, UnsafeMutableRawPointer?) -> Int32 =
        { buffer, size, _, context in
            guard let buffer, let context else { return 0 }
            let box = Unmanaged<PassphraseBox>.fromOpaque(context).takeUnretainedValue()
            guard !box.bytes.isEmpty, box.bytes.count <= Int(size) else { return 0 }
            box.bytes.withUnsafeBufferPointer { source in
                buffer.update(from: source.baseAddress!, count: source.count)
            }
            return Int32(box.bytes.count)
        }

/// An RSA private key (an owned EVP_PKEY).
public final class PrivateKey: @unchecked Sendable {
    package let pointer: OpaquePointer

    /// The smallest RSA key accepted anywhere in the system.
    public static let minimumRSABits = 2048

    init(taking pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        EVP_PKEY_free(pointer)
    }

    /// Generates an RSA key of `bits` bits with public exponent 65537.
    public static func generateRSA(bits: Int) throws -> PrivateKey {
        guard bits >= minimumRSABits, bits <= 16384 else {
            throw CryptoError.invalidInput(
                "invalid RSA key size \(bits); use \(minimumRSABits) to 16384 bits")
        }
        OpenSSLErrorQueue.clear()
        guard let context = EVP_PKEY_CTX_new_from_name(nil, "RSA", nil) else {
            throw CryptoError.drain("EVP_PKEY_CTX_new_from_name")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_keygen_init(context) == 1,
            EVP_PKEY_CTX_set_rsa_keygen_bits(context, Int32(bits)) == 1
        else { throw CryptoError.drain("RSA key generation setup") }
        var key: OpaquePointer?
        guard EVP_PKEY_generate(context, &key) == 1, let key else {
            throw CryptoError.drain("RSA key generation")
        }
        return PrivateKey(taking: key)
    }

    /// Loads a PEM private key, decrypting it with `passphrase` when it is encrypted.
    ///
    /// - Parameter what: Names the key in errors, for example "the CA key".
    public convenience init(pem: String, passphrase: String?, what: String = "the private key")
        throws
    {
        let bio = try MemoryBIO(Array(pem.utf8))
        let box = PassphraseBox(passphrase)
        OpenSSLErrorQueue.clear()
        let key = withExtendedLifetime(box) {
            PEM_read_bio_PrivateKey(
                bio.pointer, nil, passphraseCallback, Unmanaged.passUnretained(box).toOpaque())
        }
        guard let key else {
            let reasons = OpenSSLErrorQueue.drain()
            if pem.contains("ENCRYPTED") {
                throw CryptoError.wrongPassphrase(what: what)
            }
            throw CryptoError.openSSL(operation: "loading \(what)", reasons: reasons)
        }
        self.init(taking: key)
    }

    /// PBKDF2 iterations for encrypted key files: as many as a password verifier gets, so a
    /// stolen key file is no cheaper to guess against than a stolen verifier.
    public static let encryptionIterations = 600_000

    /// Encodes the key as PKCS#8 PEM. With a passphrase it is encrypted under PBES2: AES-256-CBC
    /// with a key from PBKDF2-HMAC-SHA256 over `iterations` rounds and a random salt.
    public func pem(passphrase: String?, iterations: Int = PrivateKey.encryptionIterations) throws -> String {
        let bio = try MemoryBIO()
        OpenSSLErrorQueue.clear()
        guard let passphrase else {
            guard PEM_write_bio_PrivateKey(bio.pointer, pointer, nil, nil, 0, nil, nil) == 1 else {
                throw CryptoError.drain("writing the private key")
            }
            return bio.string
        }
        guard let info = EVP_PKEY2PKCS8(pointer) else { throw CryptoError.drain("EVP_PKEY2PKCS8") }
        defer { PKCS8_PRIV_KEY_INFO_free(info) }
        var bytes = Array(passphrase.utf8CString.dropLast())
        defer {
            for index in bytes.indices { bytes[index] = 0 }
        }
        var salt = SecureRandom.bytes(16)
        // A PBE NID of -1 with a cipher selects PBES2, whose PRF is HMAC-SHA256 in OpenSSL 3.
        guard
            let encrypted = PKCS8_encrypt(
                -1, EVP_aes_256_cbc(), &bytes, Int32(bytes.count), &salt, Int32(salt.count), Int32(iterations),
                info)
        else { throw CryptoError.drain("encrypting the private key") }
        defer { X509_SIG_free(encrypted) }
        guard PEM_write_bio_PKCS8(bio.pointer, encrypted) == 1 else {
            throw CryptoError.drain("writing the private key")
        }
        return bio.string
    }

    /// The key size in bits.
    public var bits: Int { Int(EVP_PKEY_get_bits(pointer)) }

    /// The matching public key.
    public var publicKey: PublicKey {
        EVP_PKEY_up_ref(pointer)
        return PublicKey(taking: pointer)
    }

    /// Signs `message` with RSA-PSS: SHA-256, MGF1 with SHA-256, salt as long as the digest.
    public func signPSS(_ message: [UInt8]) throws -> [UInt8] {
        OpenSSLErrorQueue.clear()
        guard let context = EVP_MD_CTX_new() else { throw CryptoError.drain("EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(context) }
        var keyContext: OpaquePointer?
        guard EVP_DigestSignInit(context, &keyContext, EVP_sha256(), nil, pointer) == 1,
            let keyContext, configurePSS(keyContext)
        else { throw CryptoError.drain("RSA-PSS signing setup") }

        var length = 0
        guard EVP_DigestSign(context, nil, &length, message, message.count) == 1 else {
            throw CryptoError.drain("RSA-PSS signing")
        }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(context, &signature, &length, message, message.count) == 1 else {
            throw CryptoError.drain("RSA-PSS signing")
        }
        return Array(signature.prefix(length))
    }
}

/// A public key (an owned EVP_PKEY).
public final class PublicKey: @unchecked Sendable {
    package let pointer: OpaquePointer

    init(taking pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        EVP_PKEY_free(pointer)
    }

    /// The key size in bits.
    public var bits: Int { Int(EVP_PKEY_get_bits(pointer)) }

    public var isRSA: Bool { EVP_PKEY_get_base_id(pointer) == EVP_PKEY_RSA }

    /// The SubjectPublicKeyInfo in DER.
    public var der: [UInt8] {
        var output: UnsafeMutablePointer<UInt8>?
        let length = i2d_PUBKEY(pointer, &output)
        guard length > 0, let output else { return [] }
        defer { sfts_OPENSSL_free(output) }
        return Array(UnsafeBufferPointer(start: output, count: Int(length)))
    }

    /// Checks an RSA-PSS signature made by ``PrivateKey/signPSS(_:)``.
    public func verifyPSS(signature: [UInt8], message: [UInt8]) -> Bool {
        OpenSSLErrorQueue.clear()
        defer { OpenSSLErrorQueue.clear() }
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        var keyContext: OpaquePointer?
        guard EVP_DigestVerifyInit(context, &keyContext, EVP_sha256(), nil, pointer) == 1,
            let keyContext, configurePSS(keyContext)
        else { return false }
        return EVP_DigestVerify(context, signature, signature.count, message, message.count) == 1
    }
}

private func configurePSS(_ keyContext: OpaquePointer) -> Bool {
    EVP_PKEY_CTX_set_rsa_padding(keyContext, RSA_PKCS1_PSS_PADDING) == 1
        && EVP_PKEY_CTX_set_rsa_pss_saltlen(keyContext, RSA_PSS_SALTLEN_DIGEST) == 1
        && EVP_PKEY_CTX_set_rsa_mgf1_md(keyContext, EVP_sha256()) == 1
}
