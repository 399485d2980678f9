import Foundation

/// The reason a new password was rejected.
public struct PasswordPolicyError: Error, Equatable, CustomStringConvertible {
    public let reason: String

    public var description: String { "password rejected: \(reason)" }
}

/// The password rules of NIST SP 800-63B for memorized secrets: a minimum length, a generous
/// maximum, any printable character including Unicode (normalised to NFKC), and a check against
/// a list of blocked passwords and context words. No composition rules.
public struct PasswordPolicy: Sendable {
    public static let defaultMinimumLength = 15
    public static let defaultMaximumLength = 128

    public let minimumLength: Int
    public let maximumLength: Int
    /// Lowercased, NFKC-normalised passwords that are refused outright.
    public let blocked: Set<String>

    public init(
        minimumLength: Int = defaultMinimumLength, maximumLength: Int = defaultMaximumLength,
        blocked: Set<String> = []
    ) {
        self.minimumLength = minimumLength
        self.maximumLength = maximumLength
        self.blocked = Set(blocked.map { PasswordPolicy.normalize($0).lowercased() })
    }

    /// Normalises a password to NFKC, so the same password typed on different systems derives
    /// the same verifier.
    public static func normalize(_ password: String) -> String {
        password.precomposedStringWithCompatibilityMapping
    }

    /// Checks a new password for `user`; throws the first rule it breaks.
    public func check(_ password: String, user: String) throws {
        let normalized = PasswordPolicy.normalize(password)
        let length = normalized.unicodeScalars.count
        if length < minimumLength {
            throw PasswordPolicyError(
                reason: "it has \(length) characters; use at least \(minimumLength), "
                    + "for example a few unrelated words")
        }
        if length > maximumLength {
            throw PasswordPolicyError(
                reason: "it has \(length) characters; the maximum is \(maximumLength)")
        }
        if normalized.unicodeScalars.contains(where: {
            $0.value < 0x20 || (0x7F...0x9F).contains($0.value)
        }) {
            throw PasswordPolicyError(reason: "it contains a control character")
        }
        let lowered = normalized.lowercased()
        if blocked.contains(lowered) {
            throw PasswordPolicyError(
                reason: "it is on the list of common or breached passwords; choose another")
        }
        if user.count >= 3, lowered.contains(user.lowercased()) {
            throw PasswordPolicyError(reason: "it contains the user name '\(user)' (in upper or lower case)")
        }
        if Set(lowered.unicodeScalars).count < 5 {
            throw PasswordPolicyError(
                reason: "it repeats too few distinct characters; choose a less repetitive one")
        }
    }
}
