import Foundation
import SFTSCrypto

/// One enrolled user as users.json stores it.
public struct UserRecord: Codable, Equatable, Sendable {
    public var role: String
    /// The password verifier: base64 salt, StoredKey and ServerKey, and the PBKDF2 count.
    public var salt: String
    public var iterations: Int
    public var storedKey: String
    public var serverKey: String
    /// The current client certificate; an older certificate for the same name is refused.
    public var certificateSerial: String
    public var certificateFingerprint: String
    public var certificateNotAfter: String
    /// The certificate a renewal replaced, still accepted until the new one logs in, so a
    /// client that lost the renewed certificate on the way can log in and renew again.
    public var previousCertificateFingerprint: String?
    public var enrolledAt: String
    public var passwordChangedAt: String

    public init(
        role: String, verifier: PasswordVerifier, certificate: Certificate, enrolledAt: String
    ) {
        self.role = role
        salt = Data(verifier.salt).base64EncodedString()
        iterations = verifier.iterations
        storedKey = Data(verifier.storedKey).base64EncodedString()
        serverKey = Data(verifier.serverKey).base64EncodedString()
        certificateSerial = certificate.serialNumberHex
        certificateFingerprint = certificate.sha256Fingerprint.hexString
        certificateNotAfter = ISO8601DateFormatter().string(from: certificate.notAfter)
        self.enrolledAt = enrolledAt
        passwordChangedAt = enrolledAt
    }

    /// The verifier, or nil when a field is not valid base64.
    public var verifier: PasswordVerifier? {
        guard let salt = Data(base64Encoded: salt), let storedKey = Data(base64Encoded: storedKey),
            let serverKey = Data(base64Encoded: serverKey)
        else { return nil }
        return PasswordVerifier(
            salt: Array(salt), iterations: iterations, storedKey: Array(storedKey),
            serverKey: Array(serverKey))
    }

    /// Makes `certificate` the user's only current one, as after re-enrollment.
    public mutating func replaceCertificate(_ certificate: Certificate) {
        certificateSerial = certificate.serialNumberHex
        certificateFingerprint = certificate.sha256Fingerprint.hexString
        certificateNotAfter = ISO8601DateFormatter().string(from: certificate.notAfter)
        previousCertificateFingerprint = nil
    }

    /// Makes a renewed certificate current and keeps the one it replaces acceptable until the
    /// renewed one is first used.
    public mutating func renewCertificate(_ certificate: Certificate) {
        let previous = certificateFingerprint
        replaceCertificate(certificate)
        previousCertificateFingerprint = previous
    }

    /// True when a certificate with this SHA-256 fingerprint (lowercase hexadecimal) may log in.
    public func accepts(fingerprint: String) -> Bool {
        fingerprint == certificateFingerprint || fingerprint == previousCertificateFingerprint
    }

    public mutating func setVerifier(_ verifier: PasswordVerifier, at time: String) {
        salt = Data(verifier.salt).base64EncodedString()
        iterations = verifier.iterations
        storedKey = Data(verifier.storedKey).base64EncodedString()
        serverKey = Data(verifier.serverKey).base64EncodedString()
        passwordChangedAt = time
    }
}

/// The reason a user store operation failed.
public enum UserStoreError: Error, Equatable, CustomStringConvertible {
    case alreadyExists(String)
    case notFound(String)

    public var description: String {
        switch self {
        case .alreadyExists(let name):
            return "user '\(name)' is already enrolled; an administrator can remove it with "
                + "'sfts user remove \(name)'"
        case .notFound(let name):
            return "user '\(name)' not found; 'sfts user list' shows the enrolled users"
        }
    }
}

/// The enrolled users. Implementations must make each call atomic against concurrent writers,
/// including other processes.
public protocol UserStore: Sendable {
    func user(named name: String) throws -> UserRecord?
    func allUsers() throws -> [String: UserRecord]
    /// Adds a user; throws `alreadyExists` when the name is taken.
    func add(_ name: String, _ record: UserRecord) throws
    /// Changes a user; throws `notFound` when there is none.
    func modify(_ name: String, _ change: (inout UserRecord) throws -> Void) throws
    /// Removes a user and returns the removed record; throws `notFound` when there is none.
    @discardableResult
    func remove(_ name: String) throws -> UserRecord
}

/// The default user store: users.json, a JSON object from user name to record.
public struct JSONUserStore: UserStore {
    private let file: JSONFile<[String: UserRecord]>

    public init(url: URL) {
        file = JSONFile(url: url, empty: { [:] })
    }

    public func user(named name: String) throws -> UserRecord? {
        try file.read()[name]
    }

    public func allUsers() throws -> [String: UserRecord] {
        try file.read()
    }

    public func add(_ name: String, _ record: UserRecord) throws {
        try file.update { users in
            guard users[name] == nil else { throw UserStoreError.alreadyExists(name) }
            users[name] = record
        }
    }

    public func modify(_ name: String, _ change: (inout UserRecord) throws -> Void) throws {
        try file.update { users in
            guard var record = users[name] else { throw UserStoreError.notFound(name) }
            try change(&record)
            users[name] = record
        }
    }

    @discardableResult
    public func remove(_ name: String) throws -> UserRecord {
        try file.update { users in
            guard let record = users.removeValue(forKey: name) else {
                throw UserStoreError.notFound(name)
            }
            return record
        }
    }
}
