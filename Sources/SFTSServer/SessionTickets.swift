import Foundation
import SFTSCrypto
import SFTSProtocol

/// Login session tickets: a script that runs many commands logs in with the password once,
/// then presents the ticket in place of the password proof until it expires.
///
/// A ticket is `payload.mac`, both base64url: the payload names the user, the SHA-256
/// fingerprint of the client certificate it was issued to, the time the password last
/// changed and the expiry; the MAC is HMAC-SHA256 under certificates/session_key. So a
/// ticket works only with its certificate, ends when the password changes, and needs no
/// server-side list.
public struct SessionTicketIssuer: Sendable {
    public let root: StateRoot

    /// The longest session a client may ask for.
    public static let maximumLifetime: TimeInterval = 12 * 3600

    public init(root: StateRoot) {
        self.root = root
    }

    private struct Payload: Codable {
        let u: String
        let f: String
        let p: String
        let e: Int64
        let n: String
    }

    /// The ticket key, created on first use.
    func key() throws -> [UInt8] {
        let url = root.certificatesFolder.appendingPathComponent("session_key")
        if !FileManager.default.fileExists(atPath: url.path) {
            try AtomicFile.withLock(on: url) {
                if !FileManager.default.fileExists(atPath: url.path) {
                    try AtomicFile.write(Data((SecureRandom.bytes(32).hexString + "\n").utf8), to: url)
                }
            }
        }
        let text = try ServerPKI.readText(url).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let key = [UInt8](hexString: text), key.count == 32 else {
            throw StateError(path: url.path, reason: "does not hold a 32-byte hexadecimal key")
        }
        return key
    }

    /// Issues a ticket for `user` on the certificate with `fingerprint`.
    public func issue(
        user: String, fingerprint: String, passwordChangedAt: String, lifetime: TimeInterval, now: Date = Date()
    ) throws -> (ticket: String, expires: Date) {
        let expires = now + min(lifetime, SessionTicketIssuer.maximumLifetime)
        let payload = Payload(
            u: user, f: fingerprint, p: passwordChangedAt, e: Int64(expires.timeIntervalSince1970),
            n: SecureRandom.bytes(8).hexString)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = Self.base64URL(try encoder.encode(payload))
        let mac = Digest.hmacSHA256(key: try key(), data: Array(body.utf8))
        return (body + "." + Self.base64URL(Data(mac)), Date(timeIntervalSince1970: Double(payload.e)))
    }

    /// Checks a ticket against the user, certificate and password it must belong to. Throws
    /// a ``StateError`` when the ticket key cannot be read.
    public func isValid(
        _ ticket: String, user: String, fingerprint: String, passwordChangedAt: String, now: Date = Date()
    ) throws -> Bool {
        let parts = ticket.split(separator: ".", omittingEmptySubsequences: false)
        // An unreadable key is the server's fault, not the ticket's, so it is thrown.
        let key = try key()
        guard ticket.count < 2048, parts.count == 2,
            let mac = Self.decodeBase64URL(String(parts[1])),
            Digest.constantTimeEqual(Array(mac), Digest.hmacSHA256(key: key, data: Array(parts[0].utf8))),
            let json = Self.decodeBase64URL(String(parts[0])),
            let payload = try? JSONDecoder().decode(Payload.self, from: json)
        else { return false }
        return payload.u == user && payload.f == fingerprint && payload.p == passwordChangedAt
            && Double(payload.e) > now.timeIntervalSince1970
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decodeBase64URL(_ text: String) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 {
            base64 += "="
        }
        return Data(base64Encoded: base64)
    }
}
