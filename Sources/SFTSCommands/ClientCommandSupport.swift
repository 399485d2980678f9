import Foundation
import SFTSClient
import SFTSLogging
import SFTSProtocol

/// Helpers the client commands share: the home folder, the client log, the profile and login.
enum ClientCommandSupport {
    static func home() -> ClientHome {
        ClientHome.fromEnvironment()
    }

    /// Opens the client log, or returns a logger that drops events when the log cannot be opened.
    static func logger(_ home: ClientHome) -> Logger {
        do {
            return try Logger(file: home.clientLog)
        } catch {
            Console.error("sfts: warning: \(error.localizedDescription); continuing without a log")
            return Logger.discarding
        }
    }

    /// Renews the client certificate after a successful command when less than a third of its
    /// lifetime is left. A failed renewal is reported but does not fail the command.
    static func renewIfDue(_ client: FileClient) {
        guard client.certificateNeedsRenewal else { return }
        do {
            let renewed = try client.renew()
            Console.error(
                "sfts: renewed the client certificate; the new one is valid until \(Timestamp.format(renewed.notAfter))"
            )
        } catch {
            Console.error(
                "sfts: warning: renewing the client certificate, which expires at "
                    + "\(Timestamp.format(client.certificateExpiry)), failed: \(ExitCode.classify(error).1)")
        }
    }

    /// Loads the profile and logs in: with the profile's login session when one is open and
    /// `allowSession` is set, otherwise with the password, which is read only then.
    static func connect(_ arguments: ParsedArguments, allowSession: Bool = true) throws -> FileClient {
        let home = home()
        let profile = try Profile.load(arguments.value("--profile") ?? "default", home: home)
        let password = { try Secrets.read(Secrets.password, from: arguments) }
        return try FileClient.connect(
            profile: profile, credentials: allowSession ? .sessionOrPassword(password) : .password(password),
            logger: logger(home))
    }

    /// Prints the time of each phase to standard error when SFTS_TIMING is set, for finding
    /// where a one-shot command spends its time.
    static func reportTiming(_ client: FileClient) {
        guard let value = ProcessInfo.processInfo.environment["SFTS_TIMING"], !value.isEmpty, value != "0" else {
            return
        }
        client.markRequestDone()
        var fields = client.phases.map { "\($0.name)=\(String(format: "%.1f", $0.seconds * 1000))ms" }
        fields.append("total=\(String(format: "%.1f", Date().timeIntervalSince(CommandLineTool.startTime) * 1000))ms")
        Console.error("sfts: timing: " + fields.joined(separator: " "))
    }
}

/// `sfts enroll`.
enum EnrollCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        guard let server = arguments.value("--server") else {
            throw UsageError("missing --server HOST; usage: \(CommandCatalog.enroll.usage)")
        }
        // A token, when given, replaces the host code and names the user.
        var token: EnrollmentToken?
        let tokenVariable = ProcessInfo.processInfo.environment["SFTS_ENROLL_TOKEN"] ?? ""
        if arguments.value("--token-file") != nil || !tokenVariable.isEmpty {
            let text = try Secrets.read(Secrets.enrollmentToken, from: arguments)
            guard let parsed = EnrollmentToken.parse(text) else {
                throw UsageError("the enrollment token is not valid: copy it whole from 'sfts ca token' output")
            }
            token = parsed
        }
        guard let user = arguments.value("--user") ?? token?.user else {
            throw UsageError("missing --user NAME; usage: \(CommandCatalog.enroll.usage)")
        }
        let hostCode = token == nil ? try Secrets.read(Secrets.hostCode, from: arguments) : ""
        let password = try Secrets.read(Secrets.password, from: arguments, confirm: true)
        var request = EnrollmentRequest(
            server: server, port: try arguments.port("--port") ?? 8443,
            enrollmentPort: try arguments.port("--csr-port") ?? 8444, user: user,
            password: password, hostCode: hostCode,
            keyBits: try arguments.integer("--key-bits", in: 2048...16384) ?? 3072,
            profileName: arguments.value("--profile") ?? "default", force: arguments.flag("--force"))
        request.token = token

        if let pinned = arguments.value("--ca-fingerprint") {
            guard Enrollment.parseFingerprint(pinned) != nil else {
                throw UsageError(
                    "invalid --ca-fingerprint '\(pinned)': expected 32 bytes of hexadecimal, such as AB:CD:...")
            }
            request.caFingerprint = pinned
        }
        let home = ClientCommandSupport.home()
        let result = try Enrollment.enroll(request, home: home, logger: ClientCommandSupport.logger(home))
        let profile = result.profile
        Console.out("Enrolled as \(user) on \(server); profile '\(profile.name)' saved in \(profile.folder.path)")
        Console.out("CA SHA-256 fingerprint: \(profile.settings.caFingerprint)")
        if arguments.value("--ca-fingerprint") == nil && token == nil {
            Console.out(
                "Compare it with the fingerprint the operator gave you; --ca-fingerprint makes enroll check it.")
        }
        if result.role == "registered" {
            Console.out("Role: registered, which may list and download; ask the operator for more rights.")
        } else {
            Console.out("Role: \(result.role)")
        }
        return .success
    }
}

/// `sfts passwd`.
enum PasswdCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        let client = try ClientCommandSupport.connect(arguments, allowSession: false)
        defer { client.close() }
        let newPassword = try Secrets.read(Secrets.newPassword, from: arguments)
        try client.changePassword(to: newPassword)
        Console.out("password changed for \(client.user)")
        return .success
    }
}

/// `sfts renew`.
enum RenewCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        let client = try ClientCommandSupport.connect(arguments, allowSession: false)
        defer { client.close() }
        let previous = client.certificateExpiry
        let renewed = try client.renew()
        Console.out(
            "renewed the client certificate of \(client.user): serial \(renewed.serialNumberHex), valid until "
                + "\(Timestamp.format(renewed.notAfter)); it replaces one valid until \(Timestamp.format(previous))")
        return .success
    }
}

/// `sfts login`: opens a login session for scripts of many commands.
enum LoginCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        let lifetime = try arguments.duration("--ttl", in: 60...(12 * 3600)) ?? 15 * 60
        let client = try ClientCommandSupport.connect(arguments, allowSession: false)
        defer { client.close() }
        let expires = try client.openSession(lifetime: lifetime)
        Console.out(
            "login session for \(client.user) open until \(Timestamp.format(expires)); commands of this profile "
                + "need no password until then, and 'sfts logout' ends it")
        return .success
    }
}

/// `sfts logout`: ends the profile's login session.
enum LogoutCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        let profile = try Profile.load(
            arguments.value("--profile") ?? "default", home: ClientCommandSupport.home())
        let hadSession = profile.activeSession() != nil
        profile.clearSession()
        Console.out(hadSession ? "login session of profile '\(profile.name)' ended" : "no login session was open")
        return .success
    }
}

/// `sfts help`.
enum HelpCommand {
    /// Prints help for the command `topic` names, as separate words or one quoted string.
    static func run(topic: [String]) throws -> ExitCode {
        if topic == ["--help"] || topic == ["-h"] {
            Console.out(CommandCatalog.help.help)
            return .success
        }
        let words = topic.flatMap { $0.split(separator: " ").map(String.init) }
        guard !words.isEmpty else {
            Console.out(CommandCatalog.overview)
            return .success
        }
        let group = CommandCatalog.all.filter { $0.path.count > 1 && $0.path[0] == words[0] }
        if words.count == 1, !group.isEmpty {
            let width = group.map { $0.path.joined(separator: " ").count }.max()! + 2
            Console.out("Subcommands of 'sfts \(words[0])':")
            for spec in group {
                let name = spec.path.joined(separator: " ")
                Console.out("  " + name.padding(toLength: width, withPad: " ", startingAt: 0) + spec.summary)
            }
            Console.out("Run 'sfts help \(words[0]) SUBCOMMAND' for one subcommand's options.")
            return .success
        }
        guard let (spec, used) = CommandCatalog.match(words), used == words.count else {
            let topic = words.joined(separator: " ")
            throw UsageError("no help for '\(topic)'; run 'sfts help' for the list of commands")
        }
        Console.out(spec.help)
        return .success
    }
}
