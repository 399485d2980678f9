import Foundation
import SFTSCrypto
import SFTSProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// The `sfts` command line: parses arguments, runs one subcommand, and turns errors into a
/// message on standard error and an exit code.
public enum CommandLineTool {
    /// When `run` began, for `SFTS_TIMING`.
    nonisolated(unsafe) static var startTime = Date()

    /// Runs the command line `arguments` (without the program name) and returns the exit code.
    public static func run(_ arguments: [String]) -> Int32 {
        startTime = Date()
        // A peer that closes during a write must fail that write, not kill the process.
        signal(SIGPIPE, SIG_IGN)
        do {
            return try dispatch(arguments).rawValue
        } catch {
            let (code, message) = ExitCode.classify(error)
            Console.error("sfts: error: \(message)")
            return code.rawValue
        }
    }

    static func dispatch(_ arguments: [String]) throws -> ExitCode {
        guard let first = arguments.first else {
            Console.error(CommandCatalog.overview)
            return .usage
        }
        switch first {
        case "--version", "-V":
            Console.out("sfts \(SFTSVersion.current) (\(OpenSSLInfo.version))")
            return .success
        case "--help", "-h":
            Console.out(CommandCatalog.overview)
            return .success
        case "help":
            return try HelpCommand.run(topic: Array(arguments.dropFirst()))
        default:
            break
        }

        guard let (spec, used) = CommandCatalog.match(arguments) else {
            let groups = Set(CommandCatalog.all.filter { $0.path.count > 1 }.map { $0.path[0] })
            if groups.contains(first) {
                let choices = CommandCatalog.all.filter { $0.path[0] == first }.map {
                    $0.path[1]
                }
                throw UsageError(
                    "'sfts \(first)' needs a subcommand: \(choices.joined(separator: ", "))")
            }
            throw UsageError("unknown command '\(first)'; run 'sfts help' for the list")
        }
        let parsed = try ParsedArguments.parse(Array(arguments.dropFirst(used)), spec: spec)
        if parsed.helpRequested {
            Console.out(spec.help)
            return .success
        }

        switch spec.path {
        case CommandCatalog.caInit.path: return try CAInitCommand.run(parsed)
        case CommandCatalog.caToken.path: return try CATokenCommand.run(parsed)
        case CommandCatalog.caTokens.path: return try CATokenCommand.list(parsed)
        case CommandCatalog.caTokenCancel.path: return try CATokenCommand.cancel(parsed)
        case CommandCatalog.caImport.path: return try CAImportCommand.run(parsed)
        case CommandCatalog.caServerCertificate.path: return try CAServerCertificateCommand.run(parsed)
        case CommandCatalog.caSign.path: return try CASignCommand.run(parsed)
        case CommandCatalog.caRevoke.path: return try CACommands.revoke(parsed)
        case CommandCatalog.caList.path: return try CACommands.list(parsed)
        case CommandCatalog.serve.path: return try ServeCommand.run(parsed, enrollmentOnly: false)
        case CommandCatalog.csrServe.path: return try ServeCommand.run(parsed, enrollmentOnly: true)
        case CommandCatalog.enroll.path: return try EnrollCommand.run(parsed)
        case CommandCatalog.put.path: return try PutCommand.run(parsed)
        case CommandCatalog.get.path: return try GetCommand.run(parsed)
        case CommandCatalog.ls.path: return try ListCommand.run(parsed)
        case CommandCatalog.rm.path: return try RemoveCommand.run(parsed)
        case CommandCatalog.passwd.path: return try PasswdCommand.run(parsed)
        case CommandCatalog.renew.path: return try RenewCommand.run(parsed)
        case CommandCatalog.login.path: return try LoginCommand.run(parsed)
        case CommandCatalog.logout.path: return try LogoutCommand.run(parsed)
        case CommandCatalog.userList.path: return try UserCommand.list(parsed)
        case CommandCatalog.userRole.path: return try UserCommand.role(parsed)
        case CommandCatalog.userRemove.path: return try UserCommand.remove(parsed)
        case CommandCatalog.blockList.path: return try BlockCommand.list(parsed)
        case CommandCatalog.blockLift.path: return try BlockCommand.lift(parsed)
        case CommandCatalog.demo.path: return try DemoCommand.run(parsed)
        case CommandCatalog.shell.path: return try ShellCommand.run(parsed)
        case CommandCatalog.completion.path: return try CompletionCommand.run(parsed)
        default:
            throw UsageError("command '\(spec.name)' is not implemented")
        }
    }
}

/// Standard output for results, standard error for diagnostics.
enum Console {
    static func out(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    /// Writes `text` to standard output without a line end, as a prompt.
    static func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// Writes a diagnostic line to standard error. Messages may quote values from the server or
    /// from file names, so control characters other than line ends and tabs are escaped here
    /// as well as where the value is quoted.
    static func error(_ text: String) {
        FileHandle.standardError.write(Data((terminalSafe(text) + "\n").utf8))
    }

    /// `text` with every control or format character but line ends and tabs escaped.
    static func terminalSafe(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.split(separator: "\t", omittingEmptySubsequences: false)
                .map { DisplayText.escaped(String($0)) }.joined(separator: "\t")
        }.joined(separator: "\n")
    }

    /// Quotes a name that could disturb a terminal, such as one with control characters.
    static func displayName(_ name: String) -> String {
        DisplayText.quotedIfUnsafe(name)
    }
}
