import Foundation

/// The enrollment host code: 32 characters of Crockford base32 (160 bits), shown in groups
/// of four so people can read it out and type it.
public enum HostCode {
    public static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    public static let length = 32

    /// Formats 20 random bytes as `XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`.
    public static func format(randomBytes: [UInt8]) -> String {
        precondition(randomBytes.count * 8 >= length * 5, "not enough random bytes")
        var characters: [Character] = []
        var buffer = 0
        var bits = 0
        for byte in randomBytes {
            buffer = (buffer << 8) | Int(byte)
            bits += 8
            while bits >= 5, characters.count < length {
                bits -= 5
                characters.append(alphabet[(buffer >> bits) & 0x1F])
            }
            buffer &= (1 << bits) - 1
        }
        return grouped(String(characters))
    }

    /// Writes a canonical code in groups of four separated by `-`.
    public static func grouped(_ canonical: String) -> String {
        let characters = Array(canonical)
        var groups: [String] = []
        var index = 0
        while index < characters.count {
            groups.append(String(characters[index..<min(index + 4, characters.count)]))
            index += 4
        }
        return groups.joined(separator: "-")
    }

    /// Reduces a code as typed to its canonical form: case, spaces and dashes ignored, and the
    /// look-alikes O, I and L read as 0, 1 and 1. Returns nil for anything else.
    public static func normalize(_ typed: String) -> String? {
        var result = ""
        for character in typed.uppercased() {
            switch character {
            case " ", "-", "\t", "\n", "\r":
                continue
            case "O":
                result.append("0")
            case "I", "L":
                result.append("1")
            default:
                guard alphabet.contains(character) else { return nil }
                result.append(character)
            }
        }
        return result.count == length ? result : nil
    }
}
