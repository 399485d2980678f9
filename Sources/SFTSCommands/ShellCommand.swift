import Foundation
import SFTSClient
import SFTSProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// `sfts shell`: many commands over one connection and one login, typed at a prompt or read
/// from a batch file. A batch stops at its first failure, as `sftp -b` does, unless the
/// command starts with `-`.
enum ShellCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        let output = ClientOutput(arguments)
        let input: LineInput
        var interactive = false
        if let batch = arguments.value("--batch"), batch != "-" {
            let descriptor = open(batch, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else {
                throw UsageError("cannot read batch file \(batch): \(String(cString: strerror(errno)))")
            }
            input = LineInput(descriptor: descriptor, closes: true)
        } else {
            interactive = arguments.value("--batch") == nil && isatty(STDIN_FILENO) == 1
            input = LineInput(descriptor: STDIN_FILENO, closes: false)
        }

        let client = try reportingFailure(output) { try ClientCommandSupport.connect(arguments) }
        defer { client.close() }
        if interactive {
            Console.out(
                "Logged in as \(client.user) (role \(DisplayText.escaped(client.role))). "
                    + "Type 'help' for the commands, 'exit' or Ctrl-D to leave.")
        }
        let session = ShellSession(client: client, output: output, interactive: interactive)
        let code = session.run(input)
        if code == .success {
            ClientCommandSupport.renewIfDue(client)
        }
        return code
    }
}

/// One shell session's command loop.
final class ShellSession {
    private let client: FileClient
    private let output: ClientOutput
    private let interactive: Bool
    static let prompt = "sfts> "

    init(client: FileClient, output: ClientOutput, interactive: Bool) {
        self.client = client
        self.output = output
        self.interactive = interactive
    }

    /// Reads and runs commands until `exit`, the end of input, a failure in a batch, or a lost
    /// connection. Returns the exit code the process ends with.
    func run(_ input: LineInput) -> ExitCode {
        var number = 0
        while true {
            if interactive {
                Console.write(Self.prompt)
            }
            let line: String?
            do {
                if interactive { PromptInterrupt.install() }
                defer { if interactive { PromptInterrupt.restore() } }
                line = try input.readLine(idle: client.keepaliveInterval) { try self.client.ping() }
            } catch is PromptInterrupt {
                // The terminal discarded the typed line, so a new prompt follows.
                Console.write("\n")
                continue
            } catch {
                let (code, message) = ExitCode.classify(error)
                if interactive { Console.write("\n") }
                Console.error("sfts: error: \(message)")
                output.failure(error)
                return code
            }
            guard let line else {
                if interactive { Console.write("\n") }
                return .success
            }
            number += 1
            var text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty || text.hasPrefix("#") { continue }
            let tolerant = text.hasPrefix("-")
            if tolerant { text.removeFirst() }
            if !interactive && !output.quiet {
                Console.error(Self.prompt + line)
            }

            switch execute(text) {
            case .next:
                continue
            case .exit:
                return .success
            case .failed(let code, let closed):
                if closed {
                    Console.error("sfts: the connection to the server is closed; the session ends")
                    return code
                }
                if !interactive && !tolerant {
                    Console.error("sfts: batch stopped at line \(number); the commands after it did not run")
                    return code
                }
            }
        }
    }

    enum Outcome: Equatable {
        case next
        case exit
        /// A failed command: its exit code, and whether the connection is gone with it.
        case failed(ExitCode, closed: Bool)
    }

    /// Runs one command line and reports its failure on standard error.
    func execute(_ line: String) -> Outcome {
        do {
            let words = try CommandWords.split(line)
            guard let name = words.first else { return .next }
            if ["exit", "quit", "bye"].contains(name) {
                guard words.count == 1 else { throw UsageError("\(name) takes no arguments") }
                return .exit
            }
            guard let spec = ShellCatalog.all.first(where: { $0.path == [name] }) else {
                throw UsageError("unknown command '\(name)'; type 'help' for the commands")
            }
            let arguments = try ParsedArguments.parse(Array(words.dropFirst()), spec: spec)
            if arguments.helpRequested {
                Console.out(spec.help)
                return .next
            }
            try dispatch(spec, arguments)
            return .next
        } catch {
            let (code, message) = ExitCode.classify(error)
            Console.error("sfts: error: \(message)")
            output.failure(error)
            var closed = false
            if let error = error as? ClientError {
                // The server closes the connection after these, while local failures leave it open.
                closed = error.kind == .network || error.kind == .authentication
            }
            return .failed(code, closed: closed)
        }
    }

    /// Runs `body`, such as a password prompt, while another thread pings the server at the
    /// keepalive interval, so a slow answer does not let the idle timeout end the session.
    /// The connection is used by that thread alone until it has stopped.
    private func whileKeepingAlive<T>(_ body: () throws -> T) rethrows -> T {
        guard let interval = client.keepaliveInterval else { return try body() }
        let stop = DispatchSemaphore(value: 0)
        let stopped = DispatchSemaphore(value: 0)
        let client = self.client
        let pinger = Thread {
            // A failed ping ends the pinging; the next command reports the lost connection.
            while stop.wait(timeout: .now() + interval) == .timedOut {
                do {
                    try client.ping()
                } catch {
                    break
                }
            }
            stopped.signal()
        }
        pinger.start()
        defer {
            stop.signal()
            stopped.wait()
        }
        return try body()
    }

    /// Expands a leading `~` or `~/` in a local path typed at the prompt to the home folder,
    /// as a login shell would expand it before a one-shot command.
    static func localPath(_ word: String) -> String {
        guard word == "~" || word.hasPrefix("~/"), let home = ProcessInfo.processInfo.environment["HOME"],
            !home.isEmpty
        else { return word }
        return home + word.dropFirst()
    }

    private func dispatch(_ spec: CommandSpec, _ arguments: ParsedArguments) throws {
        let force = arguments.flag("--force")
        let recursive = arguments.flag("--recursive")
        switch spec.name {
        case "put":
            try TransferActions.put(
                client, local: Self.localPath(arguments.positional(0)!), remote: arguments.positional(1),
                recursive: recursive, force: force, output: output)
        case "get":
            let local = arguments.positional(1).map(Self.localPath)
            if !recursive {
                _ = try FileClient.downloadTarget(remote: arguments.positional(0)!, localPath: local, force: force)
            }
            try TransferActions.get(
                client, remote: arguments.positional(0)!, local: local, recursive: recursive, force: force,
                output: output)
        case "ls":
            try TransferActions.list(
                client, path: arguments.positional(0) ?? "", long: arguments.flag("--long"), output: output)
        case "rm":
            try TransferActions.remove(client, remote: arguments.positional(0)!, output: output)
        case "passwd":
            let newPassword = try whileKeepingAlive { try Secrets.read(Secrets.newPassword, from: arguments) }
            try client.changePassword(to: newPassword)
            output.result("password changed for \(client.user)", ["event": "passwd", "user": client.user])
        case "lcd":
            let folder = Self.localPath(arguments.positional(0)!)
            guard chdir(folder) == 0 else {
                throw ClientError(
                    .local, "cannot change the local folder to \(folder): \(String(cString: strerror(errno)))")
            }
            if !output.json && interactive {
                Console.out("local folder: \(FileManager.default.currentDirectoryPath)")
            }
        case "lpwd":
            output.result(
                FileManager.default.currentDirectoryPath,
                ["event": "lpwd", "path": FileManager.default.currentDirectoryPath])
        case "help":
            if let topic = arguments.positional(0) {
                guard let spec = ShellCatalog.all.first(where: { $0.name == topic }) else {
                    throw UsageError("no help for '\(topic)'; type 'help' for the commands")
                }
                Console.out(spec.help)
            } else {
                Console.out(ShellCatalog.overview(permissions: Set(client.permissions), role: client.role))
            }
        default:
            throw UsageError("unknown command '\(spec.name)'; type 'help' for the commands")
        }
    }
}

/// The commands `sfts shell` accepts, with the permission each needs.
enum ShellCatalog {
    static let recursive = OptionSpec(
        "--recursive", short: "-r", help: "transfer a folder and everything in it, keeping relative paths")

    static let put = CommandSpec(
        ["put"], summary: "Upload a file, or a folder with -r.",
        positionals: CommandCatalog.put.positionals,
        options: [recursive, OptionSpec("--force", help: "replace existing remote files")], program: "")
    static let get = CommandSpec(
        ["get"], summary: "Download a file, or a folder with -r.",
        positionals: CommandCatalog.get.positionals,
        options: [recursive, OptionSpec("--force", help: "replace existing local files")], program: "")
    static let ls = CommandSpec(
        ["ls"], summary: "List a remote folder.", positionals: CommandCatalog.ls.positionals,
        options: [OptionSpec("--long", short: "-l", help: "show size, modification time, uploader and SHA-256")],
        program: "")
    static let rm = CommandSpec(
        ["rm"], summary: "Remove a remote file or empty folder.", positionals: CommandCatalog.rm.positionals,
        options: [], program: "")
    static let passwd = CommandSpec(
        ["passwd"], summary: "Change your password; the session stays open.",
        options: [
            OptionSpec(
                "--new-password-file", value: "F",
                help: "read the new password from F (else SFTS_NEW_PASSWORD, else a prompt)")
        ], program: "")
    static let lcd = CommandSpec(
        ["lcd"], summary: "Change the local folder.",
        positionals: [PositionalSpec("DIR", help: "the new local folder")], options: [], program: "")
    static let lpwd = CommandSpec(["lpwd"], summary: "Print the local folder.", options: [], program: "")
    static let help = CommandSpec(
        ["help"], summary: "List the commands your role allows, or show one command's help.",
        positionals: [PositionalSpec("COMMAND", required: false, help: "a command, such as put")], options: [],
        program: "")
    static let exit = CommandSpec(
        ["exit"], summary: "End the session (also quit, or Ctrl-D).", options: [], program: "")

    static let all = [put, get, ls, rm, passwd, lcd, lpwd, help, exit]

    /// The permission each remote command needs. Local commands need none.
    static let permission: [String: Permission] = [
        "put": .upload, "get": .download, "ls": .ls, "rm": .delete, "passwd": .update,
    ]

    /// The `help` text: only the commands `permissions` allow.
    static func overview(permissions: Set<String>, role: String) -> String {
        let allowed = all.filter { spec in
            permission[spec.name].map { permissions.contains($0.rawValue) } ?? true
        }
        let width = (allowed.map(\.usage.count).max() ?? 10) + 2
        var lines = ["Commands for role \(DisplayText.escaped(role)):"]
        for spec in allowed {
            lines.append("  " + spec.usage.padding(toLength: width, withPad: " ", startingAt: 0) + spec.summary)
        }
        lines.append("Type 'help COMMAND' for a command's options. A line starting with # is a comment.")
        return lines.joined(separator: "\n")
    }
}

/// Splits a command line into words as a POSIX shell would for plain words: blanks separate
/// words, single quotes keep everything literally, double quotes keep everything but `\"` and
/// `\\`, and a backslash outside quotes takes the next character literally.
enum CommandWords {
    static func split(_ line: String) throws -> [String] {
        // A NUL would cut a path short where it reaches the C library.
        guard !line.unicodeScalars.contains("\0") else {
            throw UsageError("a command line contains a NUL character")
        }
        var words: [String] = []
        var current = ""
        var inWord = false
        var characters = line.makeIterator()
        while let character = characters.next() {
            switch character {
            case " ", "\t":
                if inWord {
                    words.append(current)
                    current = ""
                    inWord = false
                }
            case "'":
                inWord = true
                var closed = false
                while let next = characters.next() {
                    if next == "'" {
                        closed = true
                        break
                    }
                    current.append(next)
                }
                guard closed else { throw UsageError("unmatched ' in: \(line)") }
            case "\"":
                inWord = true
                var closed = false
                while let next = characters.next() {
                    if next == "\"" {
                        closed = true
                        break
                    }
                    if next == "\\" {
                        guard let escaped = characters.next() else { break }
                        if escaped != "\"" && escaped != "\\" {
                            current.append("\\")
                        }
                        current.append(escaped)
                    } else {
                        current.append(next)
                    }
                }
                guard closed else { throw UsageError("unmatched \" in: \(line)") }
            case "\\":
                inWord = true
                guard let escaped = characters.next() else {
                    throw UsageError("a line cannot end with a backslash: \(line)")
                }
                current.append(escaped)
            default:
                inWord = true
                current.append(character)
            }
        }
        if inWord {
            words.append(current)
        }
        return words
    }
}

/// Lines from a file descriptor, with a callback while no input arrives, so an interactive
/// session can keep its connection open while the user thinks.
final class LineInput {
    private let descriptor: Int32
    private let closes: Bool
    private var buffer: [UInt8] = []
    private var ended = false

    /// The longest command line accepted.
    static let maxLineBytes = 64 * 1024

    init(descriptor: Int32, closes: Bool) {
        self.descriptor = descriptor
        self.closes = closes
    }

    deinit {
        if closes {
            close(descriptor)
        }
    }

    /// Returns the next line without its line end, or nil at the end of input. Calls `onIdle`
    /// each time `idle` seconds pass without input, or never when `idle` is nil.
    /// Input that trickles in without a line end does not put off the next `onIdle`.
    func readLine(idle: TimeInterval?, onIdle: () throws -> Void) throws -> String? {
        var nextIdle = idle.map { Date().addingTimeInterval($0) }
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                var line = Array(buffer[..<newline])
                buffer.removeFirst(newline + 1)
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            if ended {
                guard !buffer.isEmpty else { return nil }
                defer { buffer.removeAll() }
                return String(decoding: buffer, as: UTF8.self)
            }
            guard buffer.count <= Self.maxLineBytes else {
                throw UsageError("a command line is longer than \(Self.maxLineBytes) bytes")
            }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let timeout = nextIdle.map { Int32(max(0, $0.timeIntervalSinceNow) * 1000) } ?? -1
            let ready = poll(&poller, 1, timeout)
            if ready == 0 {
                try onIdle()
                nextIdle = idle.map { Date().addingTimeInterval($0) }
                continue
            }
            if ready < 0 {
                if errno == EINTR {
                    if PromptInterrupt.take() { throw PromptInterrupt() }
                    continue
                }
                throw ClientError(.local, "cannot read commands: \(String(cString: strerror(errno)))")
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = read(descriptor, &chunk, chunk.count)
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw ClientError(.local, "cannot read commands: \(String(cString: strerror(errno)))")
            }
            if count == 0 {
                ended = true
            } else {
                buffer += chunk[..<count]
            }
        }
    }
}

/// Ctrl-C at the prompt cancels the line being typed, as in sftp and login shells, instead of
/// ending the session and its login. During a command SIGINT has its default effect again.
struct PromptInterrupt: Error {
    static func install() {
        promptInterrupted = 0
        var action = sigaction()
        action.__sigaction_handler.sa_handler = promptInterruptHandler
        sigemptyset(&action.sa_mask)
        // Without SA_RESTART, so the handler ends the poll for input with EINTR.
        action.sa_flags = 0
        sigaction(SIGINT, &action, nil)
        // A parent may have started this process with SIGINT blocked, which children inherit.
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        sigaddset(&unblocked, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &unblocked, nil)
    }

    static func restore() {
        signal(SIGINT, SIG_DFL)
    }

    /// True once after SIGINT arrived.
    static func take() -> Bool {
        defer { promptInterrupted = 0 }
        return promptInterrupted != 0
    }
}

/// The flag the SIGINT handler sets: a plain global, because a handler may only store to memory.
nonisolated(unsafe) private var promptInterrupted: sig_atomic_t = 0

private func promptInterruptHandler(_: Int32) {
    promptInterrupted = 1
}
