import Foundation

/// A stored password verifier in the style of SCRAM-SHA-256 (RFC 5802, RFC 7677).
///
/// The server keeps StoredKey = SHA-256(ClientKey) and ServerKey, never the password or
/// ClientKey, so a stolen verifier cannot log in without first cracking PBKDF2.
public struct PasswordVerifier: Equatable, Sendable {
    /// The default PBKDF2-HMAC-SHA256 iteration count.
    public static let defaultIterations = 600_000
    public static let saltBytes = 16

    public let salt: [UInt8]
    public let iterations: Int
    public let storedKey: [UInt8]
    public let serverKey: [UInt8]

    public init(salt: [UInt8], iterations: Int, storedKey: [UInt8], serverKey: [UInt8]) {
        self.salt = salt
        self.iterations = iterations
        self.storedKey = storedKey
        self.serverKey = serverKey
    }

    /// Derives a verifier for a password that is already normalised, with a fresh salt.
    public static func derive(
        password: String, iterations: Int = defaultIterations,
        salt: [UInt8] = SecureRandom.bytes(saltBytes)
    ) throws -> PasswordVerifier {
        let keys = try SCRAM.keys(password: password, salt: salt, iterations: iterations)
        return PasswordVerifier(
            salt: salt, iterations: iterations, storedKey: Digest.sha256(keys.clientKey),
            serverKey: keys.serverKey)
    }
}

/// The SCRAM computations on both sides of a login.
public enum SCRAM {
    /// ClientKey and ServerKey, derived from the password on the client.
    public struct Keys: Sendable {
        public let clientKey: [UInt8]
        public let serverKey: [UInt8]
    }

    /// Derives ClientKey and ServerKey: SaltedPassword = PBKDF2-HMAC-SHA256(password, salt,
    /// iterations), then HMAC(SaltedPassword, "Client Key") and HMAC(SaltedPassword,
    /// "Server Key").
    public static func keys(password: String, salt: [UInt8], iterations: Int) throws -> Keys {
        let salted = try Digest.pbkdf2SHA256(password: password, salt: salt, iterations: iterations)
        return Keys(
            clientKey: Digest.hmacSHA256(key: salted, data: Array("Client Key".utf8)),
            serverKey: Digest.hmacSHA256(key: salted, data: Array("Server Key".utf8)))
    }

    /// ClientProof = ClientKey XOR HMAC(SHA-256(ClientKey), AuthMessage).
    public static func clientProof(clientKey: [UInt8], authMessage: [UInt8]) -> [UInt8] {
        let signature = Digest.hmacSHA256(key: Digest.sha256(clientKey), data: authMessage)
        return zip(clientKey, signature).map { $0 ^ $1 }
    }

    /// Recovers ClientKey from the proof and checks that it hashes to StoredKey.
    public static func verifyClientProof(proof: [UInt8], storedKey: [UInt8], authMessage: [UInt8])
        -> Bool
    {
        let signature = Digest.hmacSHA256(key: storedKey, data: authMessage)
        guard proof.count == signature.count else { return false }
        let clientKey = zip(proof, signature).map { $0 ^ $1 }
        return Digest.constantTimeEqual(Digest.sha256(clientKey), storedKey)
    }

    /// ServerSignature = HMAC(ServerKey, AuthMessage), which the client checks to confirm that the
    /// server holds its verifier.
    public static func serverSignature(serverKey: [UInt8], authMessage: [UInt8]) -> [UInt8] {
        Digest.hmacSHA256(key: serverKey, data: authMessage)
    }
}
