import Foundation
import SFTSClient
import SFTSLogging
import SFTSServer

/// `sfts ca init`.
enum CAInitCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        let root = ServerCommandSupport.root(arguments)
        let keyBits = try arguments.integer("--key-bits", in: 2048...16384) ?? 3072
        var hosts = arguments.allValues("--host").flatMap {
            $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        if hosts.isEmpty {
            hosts = CAInitOptions.defaultHosts
        }
        let passphrase = try Secrets.read(Secrets.pkiPassphrase, from: arguments, confirm: true)
        let length = passphrase.unicodeScalars.count
        guard length >= CAInitializer.minimumPassphraseLength else {
            throw UsageError(
                "the PKI passphrase has \(length) characters; use at least "
                    + "\(CAInitializer.minimumPassphraseLength)")
        }
        if !arguments.flag("--force"), FileManager.default.fileExists(atPath: root.caCertificate.path) {
            throw ClientError(
                .alreadyExists,
                "a CA already exists in \(root.certificatesFolder.path); pass --force to replace it, which "
                    + "invalidates every certificate it issued")
        }
        let options = CAInitOptions(
            hosts: hosts, keyBits: keyBits, passphrase: passphrase, force: arguments.flag("--force"))

        Console.error("Generating \(keyBits)-bit RSA keys for the CA and the server...")
        let result = try CAInitializer.run(root: root, options: options)
        if arguments.flag("--force"), let users = try? JSONUserStore(url: root.users).allUsers(),
            !users.isEmpty
        {
            Console.error(
                "warning: \(users.count) enrolled users hold certificates from the old CA; they enroll again "
                    + "with a token (sfts ca token NAME), or with the new host code and their current password")
        }
        Console.out("CA and server certificate created in \(root.certificatesFolder.path)")
        Console.out("Server certificate names: \(result.serverNames.joined(separator: ", "))")
        Console.out("CA SHA-256 fingerprint: \(result.caFingerprint)")
        Console.out("Host code (give it to users who enroll; keep it secret):")
        Console.out("  \(result.hostCode)")
        return .success
    }
}

/// Helpers shared by the commands that run on the server host.
enum ServerCommandSupport {
    /// The server log, so administrative actions are recorded with the server's own events.
    static func log(_ root: StateRoot) -> Logger {
        (try? Logger(file: root.serverLog)) ?? Logger.discarding
    }

    static func root(_ arguments: ParsedArguments) -> StateRoot {
        let path = arguments.value("--root") ?? FileManager.default.currentDirectoryPath
        return StateRoot(URL(fileURLWithPath: path))
    }

    /// Returns the state root of an existing server. A folder without a CA certificate is
    /// rejected, so an operator command run in the wrong folder neither reports an empty state
    /// nor leaves files there.
    static func existingRoot(_ arguments: ParsedArguments) throws -> StateRoot {
        let root = root(arguments)
        guard FileManager.default.fileExists(atPath: root.caCertificate.path) else {
            throw ClientError(
                .local,
                "\(root.url.path) is not a server state root: it has no certificates/ca_certificate.pem; "
                    + "pass --root with the folder where 'sfts ca init' or 'sfts ca import' ran")
        }
        return root
    }
}
