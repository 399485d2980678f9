import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Severity of a log event.
public enum LogLevel: Int, Comparable, Sendable {
    case debug = 0
    case info = 1
    case warning = 2
    case error = 3

    /// The label written in each line.
    public var label: String {
        switch self {
        case .debug: return "DEBUG"
        case .info: return "INFO"
        case .warning: return "WARN"
        case .error: return "ERROR"
        }
    }

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool {
        lhs.rawValue < rhs.rawValue
    }
}

/// An event logger that writes one line per event: an ISO 8601 UTC timestamp, the level, the
/// event name and `key=value` fields.
///
/// Values are escaped so that no user-supplied text can start a new line or fake a field.
/// Callers never pass secrets: the logger cannot tell them apart from other values.
public final class Logger: @unchecked Sendable {
    private let fileDescriptor: Int32?
    private let mirrorToStandardError: Bool
    private let minimumLevel: LogLevel
    private let lock = NSLock()

    /// A logger that drops every event.
    public static let discarding = Logger()

    private init() {
        fileDescriptor = nil
        mirrorToStandardError = false
        minimumLevel = .error
    }

    /// Opens `file` for appending, creating it and its folder (mode 0700) when missing.
    ///
    /// - Parameters:
    ///   - file: The log file, created with mode 0600.
    ///   - mirrorToStandardError: Also writes each line to standard error, as a service does.
    ///   - minimumLevel: Events below this level are dropped.
    public init(file: URL, mirrorToStandardError: Bool = false, minimumLevel: LogLevel = .info)
        throws
    {
        let folder = file.deletingLastPathComponent()
        try FileManager.default.createDirectory(
            at: folder, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        let descriptor = open(file.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw CocoaError(
                .fileWriteNoPermission,
                userInfo: [
                    NSFilePathErrorKey: file.path,
                    NSLocalizedDescriptionKey:
                        "cannot open log file \(file.path): \(String(cString: strerror(errno)))",
                ])
        }
        fileDescriptor = descriptor
        self.mirrorToStandardError = mirrorToStandardError
        self.minimumLevel = minimumLevel
    }

    deinit {
        if let fileDescriptor {
            close(fileDescriptor)
        }
    }

    /// Writes one event line when `level` is at or above the logger's minimum level.
    public func log(_ level: LogLevel, _ event: String, _ fields: KeyValuePairs<String, String>) {
        log(level, event, fields: fields.map { ($0.key, $0.value) })
    }

    /// Writes one event line with fields built at run time.
    public func log(_ level: LogLevel, _ event: String, fields: [(String, String)]) {
        guard level >= minimumLevel, fileDescriptor != nil || mirrorToStandardError else {
            return
        }
        let line = LogLine.format(date: Date(), level: level, event: event, fields: fields)
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))

        lock.lock()
        defer { lock.unlock() }
        if let fileDescriptor {
            writeAll(fileDescriptor, bytes)
        }
        if mirrorToStandardError {
            writeAll(STDERR_FILENO, bytes)
        }
    }

    public func debug(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) {
        log(.debug, event, fields)
    }

    public func info(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) {
        log(.info, event, fields)
    }

    public func warning(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) {
        log(.warning, event, fields)
    }

    public func error(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) {
        log(.error, event, fields)
    }

    private func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}

/// The text format of one log line.
public enum LogLine {
    /// Formats an event as `TIMESTAMP LEVEL EVENT key=value ...` with every value escaped.
    public static func format(
        date: Date, level: LogLevel, event: String, fields: [(String, String)]
    ) -> String {
        var line = timestamp(date)
        line += " "
        line += level.label
        line += " "
        line += escape(event)
        for (key, value) in fields {
            line += " "
            line += escape(key)
            line += "="
            line += escape(value)
        }
        return line
    }

    /// Formats `date` as ISO 8601 UTC with milliseconds, for example `2026-12-04T16:20:19.123Z`.
    public static func timestamp(_ date: Date) -> String {
        let totalMilliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        var seconds = time_t(totalMilliseconds / 1000)
        let milliseconds = Int(totalMilliseconds % 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900,
            Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min),
            Int(parts.tm_sec), milliseconds)
    }

    /// Escapes a value for a log line: control and format characters, line and paragraph
    /// separators, backslashes and quotes become escape sequences, and a value that is empty or contains
    /// a space, a quote or `=` is quoted.
    public static func escape(_ value: String) -> String {
        var escaped = ""
        var needsQuotes = value.isEmpty
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case "\\": escaped += "\\\\"
            case "\"":
                escaped += "\\\""
                needsQuotes = true
            case " ", "=":
                escaped.unicodeScalars.append(scalar)
                needsQuotes = true
            default:
                switch scalar.properties.generalCategory {
                case .control, .format, .lineSeparator, .paragraphSeparator:
                    // Format characters include the bidirectional overrides, which reorder text.
                    escaped += String(format: "\\u{%X}", scalar.value)
                default:
                    escaped.unicodeScalars.append(scalar)
                }
            }
        }
        return needsQuotes ? "\"" + escaped + "\"" : escaped
    }
}
