import Foundation

/// User names: 1 to 32 characters, lowercase ASCII letters, digits, `.`, `_` and `-`, starting
/// with a letter or `_`, as POSIX login names usually are.
///
/// The same name is the client certificate's CN and the login name.
public enum UserName {
    public static let maxLength = 32

    /// Returns nil when `name` is valid, otherwise the reason it is not.
    public static func problem(with name: String) -> String? {
        guard !name.isEmpty else { return "the user name is empty" }
        guard name.utf8.count <= maxLength else {
            return "the user name is longer than \(maxLength) characters"
        }
        let bytes = Array(name.utf8)
        let first = bytes[0]
        guard (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) || first == UInt8(ascii: "_")
        else {
            return "the user name must start with a lowercase letter or '_'"
        }
        for byte in bytes {
            let allowed =
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: "-")
            guard allowed else {
                return "the user name may contain only a-z, 0-9, '.', '_' and '-'"
            }
        }
        return nil
    }

    public static func isValid(_ name: String) -> Bool {
        problem(with: name) == nil
    }
}
