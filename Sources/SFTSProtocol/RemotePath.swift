import Foundation

/// The reason a remote name was rejected.
public struct InvalidNameError: Error, Equatable, CustomStringConvertible {
    public let name: String
    public let reason: String

    public var description: String {
        "invalid remote name \(RemotePath.quoted(name)): \(reason)"
    }
}

/// A validated path inside the served directory: relative, NFC-normalised, split into
/// components that are never empty, `.`, `..` or reserved.
public struct RemotePath: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The longest accepted path, in UTF-8 bytes.
    public static let maxPathBytes = 1024
    /// The longest accepted component, in UTF-8 bytes (the usual NAME_MAX).
    public static let maxComponentBytes = 255
    /// Names that start with this prefix belong to the server (temporary files).
    public static let reservedPrefix = ".sfts-"
    /// The deepest accepted path, in components, so every folder stays reachable by the
    /// server's own walks, such as the clean-up of abandoned uploads.
    public static let maxComponents = 32

    public let components: [String]

    /// The path as sent on the wire: components joined by `/`.
    public var description: String { components.joined(separator: "/") }

    /// The final component.
    public var lastComponent: String { components.last ?? "" }

    /// True for the top of the served directory (an empty path, accepted by `list` only).
    public var isRoot: Bool { components.isEmpty }

    /// Validates `text` and normalises it to NFC.
    ///
    /// - Parameter allowRoot: Accepts the empty path, which names the top folder.
    public init(_ text: String, allowRoot: Bool = false) throws {
        func reject(_ reason: String) -> InvalidNameError {
            InvalidNameError(name: text, reason: reason)
        }

        if text.isEmpty {
            guard allowRoot else { throw reject("the name is empty") }
            components = []
            return
        }
        for scalar in text.unicodeScalars {
            if scalar.value == 0 {
                throw reject("it contains a NUL character")
            }
            if RemotePath.isControl(scalar) {
                throw reject("it contains a control character")
            }
            if scalar == "\\" {
                throw reject("it contains a backslash; separate folders with /")
            }
            if RemotePath.isBidirectionalControl(scalar) {
                throw reject("it contains a bidirectional text control character")
            }
            if RemotePath.isInvisible(scalar) {
                throw reject(
                    "it contains the invisible or spacing character "
                        + String(format: "U+%04X", scalar.value) + ", which would make it look like another name")
            }
        }
        let normalized = text.precomposedStringWithCanonicalMapping
        if normalized.hasPrefix("/") {
            throw reject("absolute paths are not allowed; use a path relative to the served folder")
        }
        if normalized.utf8.count > RemotePath.maxPathBytes {
            throw reject("it is longer than \(RemotePath.maxPathBytes) bytes")
        }
        let parts = normalized.split(separator: "/", omittingEmptySubsequences: false).map(
            String.init)
        if parts.count > RemotePath.maxComponents {
            throw reject("it has \(parts.count) levels; the limit is \(RemotePath.maxComponents)")
        }
        for part in parts {
            if part.isEmpty {
                throw reject("it contains an empty component (// or a trailing /)")
            }
            if part == "." || part == ".." {
                throw reject("'.' and '..' components are not allowed")
            }
            if part.hasPrefix(RemotePath.reservedPrefix) {
                throw reject("names starting with \(RemotePath.reservedPrefix) are reserved")
            }
            if part.utf8.count > RemotePath.maxComponentBytes {
                throw reject("a component is longer than \(RemotePath.maxComponentBytes) bytes")
            }
        }
        components = parts
    }

    /// Quotes `name` for one line of a message or a log, escaping control characters.
    public static func quoted(_ name: String) -> String {
        "'" + DisplayText.escaped(name) + "'"
    }

    /// True when `name` contains characters that ``quoted(_:)`` escapes.
    public static func needsQuoting(_ name: String) -> Bool {
        name.unicodeScalars.contains(where: DisplayText.isUnsafe)
    }

    /// Characters that are invisible or look like a plain space: format characters (zero-width
    /// spaces and joiners, the byte order mark, the soft hyphen), non-ASCII spaces such as
    /// U+00A0, private-use and unassigned code points.
    static func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .format, .lineSeparator, .paragraphSeparator, .privateUse, .unassigned, .surrogate:
            return true
        case .spaceSeparator:
            return scalar != " "
        default:
            return false
        }
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028
            || scalar.value == 0x2029
    }

    /// Characters that reorder displayed text, so a name could show as another name.
    static func isBidirectionalControl(_ scalar: Unicode.Scalar) -> Bool {
        (0x202A...0x202E).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value)
            || scalar.value == 0x200E || scalar.value == 0x200F || scalar.value == 0x061C
    }
}
