import Foundation
import SFTSCrypto
import SFTSProtocol

/// An issued enrollment token as tokens.json records it; the secret is not stored, the server
/// derives it from its token key.
public struct TokenRecord: Codable, Equatable, Sendable {
    public var user: String
    public var expires: Int64
    public var issuedAt: String
    public var usedAt: String?
    public var usedFrom: String?
    /// When `sfts ca token-cancel` withdrew the token before its use.
    public var cancelledAt: String?

    /// True while the token can still enroll: not used, cancelled or expired at `date`.
    public func isUsable(at date: Date) -> Bool {
        usedAt == nil && cancelledAt == nil && Double(expires) > date.timeIntervalSince1970
    }

    public init(user: String, expires: Int64, issuedAt: String) {
        self.user = user
        self.expires = expires
        self.issuedAt = issuedAt
    }
}

/// Why a token was not accepted.
public enum TokenError: Error, Equatable {
    case unknown
    case wrongUser
    case expired
    case used
    case cancelled
}

/// Issued tokens. Implementations must make ``consume(_:at:from:)`` atomic, so a token
/// works once even when two enrollments race for it.
public protocol TokenStore: Sendable {
    func add(id: String, _ record: TokenRecord) throws
    func token(id: String) throws -> TokenRecord?
    /// Marks the token used; throws ``TokenError`` when it is unknown, expired, used or
    /// cancelled.
    func consume(_ id: String, at date: Date, from address: String) throws
    /// Returns every token on record by id, including used and expired ones from the last week.
    func all() throws -> [String: TokenRecord]
    /// Cancels the usable tokens among `ids` and returns the ids it cancelled.
    func cancel(_ ids: [String], at date: Date) throws -> [String]
}

/// The default token store: tokens.json, from token id to record.
public struct JSONTokenStore: TokenStore {
    private let file: JSONFile<[String: TokenRecord]>

    public init(url: URL) {
        file = JSONFile(url: url, empty: { [:] })
    }

    public func add(id: String, _ record: TokenRecord) throws {
        try file.update { tokens in
            // Forget tokens that expired more than a week ago, used or not.
            let horizon = Int64(Date().timeIntervalSince1970) - 7 * 86400
            tokens = tokens.filter { $0.value.expires > horizon }
            tokens[id] = record
        }
    }

    public func token(id: String) throws -> TokenRecord? {
        try file.read()[id]
    }

    public func consume(_ id: String, at date: Date, from address: String) throws {
        try file.update { tokens in
            guard var record = tokens[id] else { throw TokenError.unknown }
            guard record.usedAt == nil else { throw TokenError.used }
            guard record.cancelledAt == nil else { throw TokenError.cancelled }
            guard Double(record.expires) > date.timeIntervalSince1970 else { throw TokenError.expired }
            record.usedAt = Timestamp.format(date)
            record.usedFrom = address
            tokens[id] = record
        }
    }

    public func all() throws -> [String: TokenRecord] {
        try file.read()
    }

    public func cancel(_ ids: [String], at date: Date) throws -> [String] {
        try file.update { tokens in
            var cancelled: [String] = []
            for id in ids {
                guard var record = tokens[id], record.isUsable(at: date) else { continue }
                record.cancelledAt = Timestamp.format(date)
                tokens[id] = record
                cancelled.append(id)
            }
            return cancelled
        }
    }
}

/// Issues tokens and derives their secrets from certificates/token_key.
public struct TokenIssuer: Sendable {
    public let root: StateRoot
    public let store: TokenStore

    public init(root: StateRoot, store: TokenStore) {
        self.root = root
        self.store = store
    }

    /// The token key, created on first use for state roots made before tokens existed.
    public func key() throws -> [UInt8] {
        if !FileManager.default.fileExists(atPath: root.tokenKey.path) {
            try AtomicFile.withLock(on: root.tokenKey) {
                if !FileManager.default.fileExists(atPath: root.tokenKey.path) {
                    try AtomicFile.write(Data((SecureRandom.bytes(32).hexString + "\n").utf8), to: root.tokenKey)
                }
            }
        }
        let text = try ServerPKI.readText(root.tokenKey).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let key = [UInt8](hexString: text), key.count == 32 else {
            throw StateError(path: root.tokenKey.path, reason: "does not hold a 32-byte hexadecimal key")
        }
        return key
    }

    /// The secret of token `id`, which keys its enrollment proofs.
    public func secret(id: String, user: String, expires: Int64) throws -> [UInt8] {
        Digest.hmacSHA256(
            key: try key(), data: EnrollmentToken.secretInput(id: id, user: user, expires: expires))
    }

    /// Issues a token for `user` that expires after `lifetime` seconds.
    public func issue(user: String, lifetime: TimeInterval, caFingerprint: [UInt8], now: Date = Date()) throws
        -> EnrollmentToken
    {
        let id = SecureRandom.bytes(16).hexString
        let expires = Int64((now + lifetime).timeIntervalSince1970)
        let secret = try secret(id: id, user: user, expires: expires)
        try store.add(id: id, TokenRecord(user: user, expires: expires, issuedAt: Timestamp.format(now)))
        return EnrollmentToken(
            id: id, user: user, expires: expires, secret: secret.hexString, ca: caFingerprint.hexString)
    }
}
