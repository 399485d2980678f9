import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The sources of one secret: a file named by an option, an environment variable, or a hidden
/// prompt on the terminal. Never argv, where other users could see it.
struct SecretSource {
    let option: String
    let environment: String
    let prompt: String
    /// The name of the secret in messages, for example "password".
    let what: String
    /// Ask twice on a terminal, for a new secret.
    var confirm = false
}

enum Secrets {
    static let password = SecretSource(
        option: "--password-file", environment: "SFTS_PASSWORD", prompt: "Password: ",
        what: "password")
    static let newPassword = SecretSource(
        option: "--new-password-file", environment: "SFTS_NEW_PASSWORD",
        prompt: "New password: ", what: "new password", confirm: true)
    static let pkiPassphrase = SecretSource(
        option: "--passphrase-file", environment: "SFTS_PKI_PASSPHRASE",
        prompt: "PKI passphrase: ", what: "PKI passphrase")
    static let enrollmentToken = SecretSource(
        option: "--token-file", environment: "SFTS_ENROLL_TOKEN", prompt: "Enrollment token: ",
        what: "enrollment token")
    static let hostCode = SecretSource(
        option: "--code-file", environment: "SFTS_HOST_CODE", prompt: "Host code: ",
        what: "host code")

    /// Reads a secret from the first source that has it.
    static func read(
        _ source: SecretSource, from arguments: ParsedArguments, confirm: Bool? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> String {
        if let path = arguments.value(source.option) {
            return try readFile(path, source: source)
        }
        if let value = environment[source.environment], !value.isEmpty {
            return value
        }
        let first = try prompt(source.prompt, missing: source)
        if confirm ?? source.confirm {
            // "New password: " becomes "Repeat new password: ", but "PKI" keeps its capitals.
            let acronym = source.prompt.prefix(2).allSatisfy(\.isUppercase)
            let rest = acronym ? source.prompt : source.prompt.prefix(1).lowercased() + source.prompt.dropFirst()
            let second = try prompt("Repeat \(rest)", missing: source)
            guard first == second else {
                throw UsageError("the two \(source.what) entries differ; nothing was changed")
            }
        }
        return first
    }

    /// Reads the first line of a secret file.
    static func readFile(_ path: String, source: SecretSource) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UsageError("cannot read \(source.what) file \(path) given to \(source.option)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw UsageError("\(source.what) file \(path) is not UTF-8 text")
        }
        // Split on scalars: Swift reads "\r\n" as one Character, which equals neither "\r" nor "\n".
        let scalars = text.unicodeScalars
        let end = scalars.firstIndex { $0 == "\n" || $0 == "\r" } ?? scalars.endIndex
        let secret = String(scalars[scalars.startIndex..<end])
        guard !secret.isEmpty else {
            throw UsageError("\(source.what) file \(path) is empty")
        }
        return secret
    }

    /// Prompts on the controlling terminal with echo off, as ssh does, so it works while
    /// standard input is a pipe or a file.
    static func prompt(_ text: String, missing source: SecretSource) throws -> String {
        let terminal = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)
        guard terminal >= 0 else {
            throw UsageError(
                "no \(source.what) given: pass \(source.option) F or set \(source.environment) "
                    + "(there is no terminal to prompt on)")
        }
        defer { close(terminal) }
        var saved = termios()
        let hasTermios = tcgetattr(terminal, &saved) == 0
        if hasTermios {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            // TCSANOW keeps anything typed ahead, which TCSAFLUSH would drop.
            tcsetattr(terminal, TCSANOW, &quiet)
        }
        defer {
            if hasTermios {
                var restore = saved
                tcsetattr(terminal, TCSANOW, &restore)
            }
        }
        _ = text.withCString { write(terminal, $0, strlen($0)) }

        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = Glibc.read(terminal, &byte, 1)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 || byte == UInt8(ascii: "\n") { break }
            if byte != UInt8(ascii: "\r") {
                bytes.append(byte)
            }
            if bytes.count > 4096 { break }
        }
        _ = write(terminal, "\n", 1)
        guard !bytes.isEmpty else { throw UsageError("no input given at the prompt") }
        return String(decoding: bytes, as: UTF8.self)
    }
}
