import COpenSSL
import Foundation

/// Streaming SHA-256 over OpenSSL's EVP interface, which uses the CPU's SHA extensions.
public final class SHA256Hasher {
    private let context: OpaquePointer

    public init() {
        guard let context = EVP_MD_CTX_new() else {
            fatalError("EVP_MD_CTX_new failed: out of memory")
        }
        self.context = context
        precondition(EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1, "EVP_DigestInit_ex failed")
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    public func update(_ buffer: UnsafeRawBufferPointer) {
        guard buffer.count > 0 else { return }
        precondition(EVP_DigestUpdate(context, buffer.baseAddress, buffer.count) == 1)
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Returns the 32-byte digest; the hasher must not be used afterwards.
    public func finish() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        precondition(EVP_DigestFinal_ex(context, &digest, &length) == 1)
        return Array(digest.prefix(Int(length)))
    }
}

/// One-shot digests, MACs and key derivation.
public enum Digest {
    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        let hasher = SHA256Hasher()
        hasher.update(bytes)
        return hasher.finish()
    }

    /// HMAC-SHA256 of `data` under `key`.
    public static func hmacSHA256(key: [UInt8], data: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let result = key.withUnsafeBytes { keyBuffer in
            data.withUnsafeBytes { dataBuffer in
                HMAC(
                    EVP_sha256(), keyBuffer.baseAddress, Int32(keyBuffer.count),
                    dataBuffer.baseAddress?.assumingMemoryBound(to: UInt8.self), dataBuffer.count,
                    &output, &length)
            }
        }
        precondition(result != nil, "HMAC-SHA256 failed")
        return Array(output.prefix(Int(length)))
    }

    /// PBKDF2-HMAC-SHA256 of `password` (its UTF-8 bytes) with `salt`.
    public static func pbkdf2SHA256(
        password: String, salt: [UInt8], iterations: Int, length: Int = 32
    ) throws -> [UInt8] {
        guard iterations > 0, iterations <= Int(Int32.max) else {
            throw CryptoError.invalidInput("invalid PBKDF2 iteration count \(iterations)")
        }
        let passwordBytes = Array(password.utf8)
        var output = [UInt8](repeating: 0, count: length)
        let result = passwordBytes.withUnsafeBufferPointer { passwordBuffer in
            salt.withUnsafeBufferPointer { saltBuffer in
                passwordBuffer.withMemoryRebound(to: CChar.self) { passwordChars in
                    PKCS5_PBKDF2_HMAC(
                        passwordChars.baseAddress, Int32(passwordChars.count),
                        saltBuffer.baseAddress, Int32(saltBuffer.count), Int32(iterations),
                        EVP_sha256(), Int32(length), &output)
                }
            }
        }
        guard result == 1 else { throw CryptoError.drain("PBKDF2") }
        return output
    }

    /// Compares two byte strings in time that depends only on their length.
    public static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        guard !lhs.isEmpty else { return true }
        return lhs.withUnsafeBytes { left in
            rhs.withUnsafeBytes { right in
                CRYPTO_memcmp(left.baseAddress, right.baseAddress, left.count) == 0
            }
        }
    }
}

/// Cryptographically secure random bytes from OpenSSL's DRBG.
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: count)
        guard count > 0 else { return output }
        precondition(RAND_bytes(&output, Int32(count)) == 1, "RAND_bytes failed")
        return output
    }
}

extension Array where Element == UInt8 {
    /// Lowercase hexadecimal, as digests are shown and sent.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var characters = [UInt8]()
        characters.reserveCapacity(count * 2)
        for byte in self {
            characters.append(digits[Int(byte >> 4)])
            characters.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: characters, as: UTF8.self)
    }

    /// Uppercase hexadecimal pairs separated by colons, as `openssl x509 -fingerprint` shows.
    public var colonHexString: String {
        map { String(format: "%02X", $0) }.joined(separator: ":")
    }

    /// Parses lowercase or uppercase hexadecimal; nil on odd length or a non-hex character.
    public init?(hexString: String) {
        let characters = Array(hexString.utf8)
        guard characters.count % 2 == 0 else { return nil }
        func value(_ character: UInt8) -> UInt8? {
            switch character {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return character - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return character - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return character - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var bytes = [UInt8]()
        bytes.reserveCapacity(characters.count / 2)
        var index = 0
        while index < characters.count {
            guard let high = value(characters[index]), let low = value(characters[index + 1])
            else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        self = bytes
    }
}
