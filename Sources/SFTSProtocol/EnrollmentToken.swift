import Foundation

/// A one-time enrollment token as `sfts ca token` prints it: `sfts-token-` followed by
/// base64url JSON with the token id, the user name it is bound to, its expiry, the secret the
/// enrollment proofs are keyed with, and the CA certificate's SHA-256 fingerprint, which the
/// client pins before it trusts anything the server sends.
public struct EnrollmentToken: Codable, Equatable, Sendable {
    public static let prefix = "sfts-token-"

    /// 16 random bytes in lowercase hexadecimal; the server looks the token up by it.
    public let id: String
    public let user: String
    /// The expiry in seconds since 1970.
    public let expires: Int64
    /// 32 bytes in lowercase hexadecimal, derived by the server from its token key.
    public let secret: String
    /// The CA certificate's SHA-256 fingerprint in lowercase hexadecimal.
    public let ca: String

    public init(id: String, user: String, expires: Int64, secret: String, ca: String) {
        self.id = id
        self.user = user
        self.expires = expires
        self.secret = secret
        self.ca = ca
    }

    public var expiryDate: Date { Date(timeIntervalSince1970: Double(expires)) }

    /// The token's text form.
    public var text: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(self)) ?? Data()
        let base64 = data.base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return EnrollmentToken.prefix + base64
    }

    /// Parses a token's text form, ignoring surrounding white space; nil when it is not one.
    public static func parse(_ text: String) -> EnrollmentToken? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix(prefix), trimmed.count < 4096 else { return nil }
        var base64 = String(trimmed.dropFirst(prefix.count)).replacingOccurrences(of: "-", with: "+")
            .replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 {
            base64 += "="
        }
        guard let data = Data(base64Encoded: base64),
            let token = try? JSONDecoder().decode(EnrollmentToken.self, from: data),
            token.id.count == 32, token.secret.count == 64, token.ca.count == 64,
            UserName.isValid(token.user)
        else { return nil }
        return token
    }

    /// The transcript the server derives the token secret from.
    public static func secretInput(id: String, user: String, expires: Int64) -> [UInt8] {
        var transcript = Transcript(label: "sfts-enrollment-token-v1")
        transcript.append(id)
        transcript.append(user)
        transcript.append(UInt64(max(expires, 0)))
        return transcript.bytes
    }
}
