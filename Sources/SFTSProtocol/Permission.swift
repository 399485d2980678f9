import Foundation

/// The permissions roles.json grants. Each command needs one, named in its denial message.
public enum Permission: String, CaseIterable, Codable, Sendable {
    /// `put`: store a new file.
    case upload
    /// `get`: fetch a file.
    case download
    /// `ls`: list folders.
    case ls
    /// `rm`, and replacing an existing file with `put --force`.
    case delete
    /// `passwd` and `renew`: change one's own password and certificate.
    case update
    /// Accepted in roles.json but checked by no request: roles and users change only through
    /// `sfts user` on the server host.
    case modify
    /// Accepted but not checked: `help` in a shell works for every role.
    case help
    /// Accepted but not checked: `exit` in a shell works for every role.
    case exit
}

/// Request ids: the client makes a fresh one for every request, and the server rejects repeats.
public enum RequestID {
    /// Makes a random id (a UUID in lowercase).
    public static func make() -> String {
        UUID().uuidString.lowercased()
    }

    /// Accepts 8 to 64 ASCII letters, digits and `-`.
    public static func isValid(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        guard (8...64).contains(bytes.count) else { return false }
        return bytes.allSatisfy {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0)
                || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "-")
        }
    }
}
