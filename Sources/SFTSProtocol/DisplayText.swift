import Foundation

/// Text from the other side, made safe for a terminal line: control and format characters,
/// which could move the cursor, colour the terminal or reorder what is shown, become `\u{…}`.
public enum DisplayText {
    /// True for characters that must not reach a terminal as they are.
    public static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator:
            return true
        default:
            return false
        }
    }

    /// Returns `text` as it is, or in single quotes with its unsafe characters escaped, for a
    /// name or path inside a message.
    public static func quotedIfUnsafe(_ text: String) -> String {
        text.unicodeScalars.contains(where: isUnsafe) ? "'" + escaped(text) + "'" : text
    }

    /// Returns `text` with each unsafe character replaced by its `\u{…}` escape.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isUnsafe) else { return text }
        var result = ""
        for scalar in text.unicodeScalars {
            if isUnsafe(scalar) {
                result += String(format: "\\u{%X}", scalar.value)
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
