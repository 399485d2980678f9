import Foundation
import SFTSClient
import SFTSCrypto
import SFTSLogging
import SFTSProtocol
import SFTSServer

/// `sfts ca revoke` and `sfts ca list`, run on the server host.
enum CACommands {
    static func revoke(_ arguments: ParsedArguments) throws -> ExitCode {
        let root = try ServerCommandSupport.existingRoot(arguments)
        let target = arguments.positional(0)!
        let reasonName = arguments.value("--reason") ?? RevocationReason.unspecified.rawValue
        guard let reason = RevocationReason(rawValue: reasonName) else {
            let known = RevocationReason.allCases.map(\.rawValue).joined(separator: ", ")
            throw UsageError("unknown --reason '\(reasonName)'; use one of: \(known)")
        }
        let issued = FolderIssuedCertificateStore(folder: root.issuedFolder)
        let users = JSONUserStore(url: root.users)
        let first = try revocationTargets(target, root: root, issued: issued, users: users)
        if let server = first.certificates.first(where: \.isTLSServer) {
            throw UsageError(
                "\(server.serialNumberHex) is a server certificate, which clients do not check against the CRL; "
                    + "replace it with 'sfts ca server-cert' and SIGHUP instead")
        }
        let passphrase = try Secrets.read(Secrets.pkiPassphrase, from: arguments)
        let authority = try ServerPKI.loadAuthority(root: root, passphrase: passphrase)
        let name = first.certificates[0].subjectCommonName ?? "?"
        let store = JSONRevocationStore(url: root.revocations)
        let entry = RevocationRecord(name: name, revokedAt: Timestamp.format(Date()), reason: reason)

        // The user may renew while this command waits for the passphrase, so the targets are
        // read again after each round of revocations until a round finds nothing new. Each
        // round writes the CRL, after which the server refuses any further renewal.
        var added: [String] = []
        var list: CertificateRevocationList
        var targets = first
        var rounds = 0
        repeat {
            var newly: [String] = []
            for certificate in targets.certificates where try store.revoke(serial: certificate.serialNumberHex, entry) {
                newly.append(certificate.serialNumberHex)
            }
            // The CRL is written again either way, so a CRL file that lost an entry is repaired.
            list = try RevocationListFile.write(root: root, authority: authority, store: store)
            added += newly
            rounds += 1
            guard !newly.isEmpty, rounds < 10 else { break }
            targets = try revocationTargets(target, root: root, issued: issued, users: users, user: targets.user)
        } while true
        if let user = targets.user, try users.user(named: user)?.previousCertificateFingerprint != nil {
            try users.modify(user) { $0.previousCertificateFingerprint = nil }
        }
        guard !added.isEmpty else {
            throw ClientError(
                .alreadyExists,
                "certificate \(first.certificates[0].serialNumberHex) of '\(name)' was already revoked; the CRL was "
                    + "written again")
        }
        let log = ServerCommandSupport.log(root)
        for serial in added {
            log.warning("certificate.revoked", ["name": name, "serial": serial, "reason": reason.rawValue])
            Console.out("revoked certificate \(serial) of '\(name)' (\(reason.rawValue))")
        }
        Console.out(
            "\(root.revocationList.path) now lists \(list.revokedSerials.count) "
                + (list.revokedSerials.count == 1 ? "certificate" : "certificates")
                + "; a running server rejects the revoked ones from their next handshake or request.")
        return .success
    }

    /// Finds the certificates `ca revoke TARGET` revokes, and the user whose record they belong to.
    ///
    /// By name, every certificate that still logs in: the current one and, after a renewal,
    /// the one it replaced, which stays accepted until the renewed one is used. By serial,
    /// that certificate, and when it is a user's current one, the one it replaced as well.
    /// `user`, once known, keeps later rounds on the same record.
    private static func revocationTargets(
        _ target: String, root: StateRoot, issued: FolderIssuedCertificateStore, users: JSONUserStore,
        user known: String? = nil
    ) throws -> (certificates: [Certificate], user: String?) {
        var certificates: [Certificate] = []
        var user: String?
        if known == nil, let bySerial = try issued.certificate(serial: target), try users.user(named: target) == nil {
            certificates = [bySerial]
            if let name = bySerial.subjectCommonName, let record = try users.user(named: name),
                record.certificateSerial == bySerial.serialNumberHex
            {
                user = name
            }
        } else {
            user = known ?? target
        }
        if let user, let record = try users.user(named: user) {
            if let current = try issued.certificate(serial: record.certificateSerial),
                !certificates.contains(where: { $0.serialNumberHex == current.serialNumberHex })
            {
                certificates.append(current)
            }
            if let previous = record.previousCertificateFingerprint,
                let old = try issued.all().first(where: { $0.sha256Fingerprint.hexString == previous })
            {
                certificates.append(old)
            }
        }
        guard !certificates.isEmpty else {
            if let user, try users.user(named: user) != nil {
                throw ClientError(.notFound, "the certificate of '\(user)' is not in \(root.issuedFolder.path)")
            }
            throw ClientError(
                .notFound, "'\(target)' is neither an enrolled user nor an issued serial; 'sfts ca list' shows both")
        }
        return (certificates, user)
    }

    static func list(_ arguments: ParsedArguments) throws -> ExitCode {
        let root = try ServerCommandSupport.existingRoot(arguments)
        let certificates = try FolderIssuedCertificateStore(folder: root.issuedFolder).all()
        guard !certificates.isEmpty else {
            Console.error("no certificates in \(root.issuedFolder.path)")
            return .success
        }
        let revoked = try JSONRevocationStore(url: root.revocations).index().revoked
        // A serial only in crl.pem, as after revoked.json was restored from a backup, is
        // still revoked; the next CRL write adds it back to revoked.json.
        let inCRL = Set(
            (try? CertificateRevocationList(pem: String(contentsOf: root.revocationList, encoding: .utf8)))?
                .revokedSerials ?? [])
        let users = try JSONUserStore(url: root.users).allUsers()
        let now = Date()
        var rows = [["SERIAL", "NAME", "USE", "NOT BEFORE", "NOT AFTER", "STATUS"]]
        for certificate in certificates {
            let serial = certificate.serialNumberHex
            let name = certificate.subjectCommonName ?? "?"
            var status: String
            if let record = revoked[serial] {
                status = "revoked \(record.revokedAt) (\(record.reason.rawValue))"
            } else if inCRL.contains(serial) {
                status = "revoked (in crl.pem, missing from revoked.json)"
            } else if certificate.notAfter < now {
                status = "expired"
            } else {
                status = "valid"
                if let user = users[name], user.certificateSerial != serial, !certificate.isTLSServer {
                    let accepted = user.previousCertificateFingerprint == certificate.sha256Fingerprint.hexString
                    status += accepted ? ", renewed (logs in until the renewed one does)" : ", superseded"
                }
            }
            rows.append([
                serial, Console.displayName(name), certificate.isTLSServer ? "server" : "client",
                LogLine.timestamp(certificate.notBefore), LogLine.timestamp(certificate.notAfter), status,
            ])
        }
        Console.out(Table.render(rows))
        return .success
    }
}

/// `sfts ca token`: issues a one-time enrollment token and prints it alone on stdout, so
/// `$(sfts ca token bob)` captures it.
enum CATokenCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        let root = try ServerCommandSupport.existingRoot(arguments)
        let user = arguments.positional(0)!
        if let problem = UserName.problem(with: user) {
            throw UsageError("invalid user name '\(user)': \(problem)")
        }
        let lifetime = try arguments.duration("--ttl", in: 1...(30 * 86400)) ?? 86400
        let ca = try Certificate(contentsOf: root.caCertificate)
        let issuer = TokenIssuer(root: root, store: JSONTokenStore(url: root.tokens))
        let token = try issuer.issue(user: user, lifetime: lifetime, caFingerprint: ca.sha256Fingerprint)
        ServerCommandSupport.log(root).info(
            "token.issued", ["user": user, "token.id": token.id, "expires": Timestamp.format(token.expiryDate)])
        Console.out(token.text)
        Console.error(
            "token \(token.id) for '\(user)', valid once until \(Timestamp.format(token.expiryDate)); "
                + "'sfts ca token-cancel \(token.id)' withdraws it")
        return .success
    }

    static func list(_ arguments: ParsedArguments) throws -> ExitCode {
        let root = try ServerCommandSupport.existingRoot(arguments)
        let tokens = try JSONTokenStore(url: root.tokens).all()
        guard !tokens.isEmpty else {
            Console.error("no tokens in \(root.tokens.path)")
            return .success
        }
        let now = Date()
        var rows = [["ID", "USER", "ISSUED", "EXPIRES", "STATUS"]]
        for (id, record) in tokens.sorted(by: { $0.value.issuedAt < $1.value.issuedAt }) {
            let expires = Date(timeIntervalSince1970: Double(record.expires))
            let status: String
            if let usedAt = record.usedAt {
                status = "used \(usedAt) from \(record.usedFrom ?? "?")"
            } else if let cancelledAt = record.cancelledAt {
                status = "cancelled \(cancelledAt)"
            } else if expires <= now {
                status = "expired"
            } else {
                status = "unused"
            }
            rows.append([id, Console.displayName(record.user), record.issuedAt, Timestamp.format(expires), status])
        }
        Console.out(Table.render(rows))
        return .success
    }

    static func cancel(_ arguments: ParsedArguments) throws -> ExitCode {
        let root = try ServerCommandSupport.existingRoot(arguments)
        let target = arguments.positional(0)!
        let store = JSONTokenStore(url: root.tokens)
        let tokens = try store.all()
        let now = Date()
        let chosen = tokens[target] != nil ? [target] : tokens.filter { $0.value.user == target }.map(\.key)
        guard !chosen.isEmpty else {
            throw ClientError(
                .notFound, "'\(target)' is neither a token id nor the user of a token; 'sfts ca tokens' lists them")
        }
        let cancelled = try store.cancel(chosen.sorted(), at: now)
        guard !cancelled.isEmpty else {
            throw ClientError(
                .notFound,
                "no unused token for '\(target)': it was used, cancelled or has expired; see 'sfts ca tokens'")
        }
        let log = ServerCommandSupport.log(root)
        for id in cancelled {
            log.warning("token.cancelled", ["token.id": id, "user": tokens[id]?.user ?? "?"])
            Console.out("cancelled token \(id) for '\(tokens[id]?.user ?? "?")'")
        }
        return .success
    }
}

/// `sfts ca import`: brings a CA and server certificate made elsewhere into a state root.
enum CAImportCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        let root = ServerCommandSupport.root(arguments)
        func required(_ option: String) throws -> String {
            guard let value = arguments.value(option) else {
                throw UsageError("missing \(option) F; usage: \(CommandCatalog.caImport.usage)")
            }
            return value
        }
        let caCertificatePath = try required("--ca-certificate")
        let caKeyPath = try required("--ca-key")
        let serverCertificatePath = try required("--server-certificate")
        let serverKeyPath = try required("--server-key")
        if !arguments.flag("--force"), FileManager.default.fileExists(atPath: root.caCertificate.path) {
            throw ClientError(
                .alreadyExists,
                "a CA already exists in \(root.certificatesFolder.path); pass --force to replace it, which "
                    + "invalidates every certificate it issued")
        }
        let passphrase = try Secrets.read(Secrets.pkiPassphrase, from: arguments, confirm: true)
        guard passphrase.unicodeScalars.count >= CAInitializer.minimumPassphraseLength else {
            throw UsageError(
                "the PKI passphrase has \(passphrase.unicodeScalars.count) characters; use at least "
                    + "\(CAInitializer.minimumPassphraseLength)")
        }

        func key(_ path: String, _ what: String) throws -> PrivateKey {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw UsageError("cannot read \(what) \(path)")
            }
            return try PrivateKey(pem: text, passphrase: passphrase, what: "\(path) with the PKI passphrase")
        }
        let result = try CAInitializer.importExisting(
            root: root, caCertificate: try Certificate(contentsOf: URL(fileURLWithPath: caCertificatePath)),
            caKey: try key(caKeyPath, "the CA key"),
            serverCertificate: try Certificate(contentsOf: URL(fileURLWithPath: serverCertificatePath)),
            serverKey: try key(serverKeyPath, "the server key"), passphrase: passphrase,
            force: arguments.flag("--force"))
        Console.out("Imported the CA and server certificate into \(root.certificatesFolder.path)")
        Console.out("Server certificate names: \(result.serverNames.joined(separator: ", "))")
        Console.out("CA SHA-256 fingerprint: \(result.caFingerprint)")
        Console.out("Host code (give it to users who enroll; keep it secret):")
        Console.out("  \(result.hostCode)")
        return .success
    }
}

/// `sfts ca server-cert`: rotates the server key and certificate.
enum CAServerCertificateCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        let root = try ServerCommandSupport.existingRoot(arguments)
        var hosts = arguments.allValues("--host").flatMap {
            $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        if hosts.isEmpty {
            // Keep the names the current certificate serves under.
            hosts = (try? Certificate(contentsOf: root.serverCertificate))?.subjectAlternativeNames ?? []
        }
        if hosts.isEmpty {
            hosts = CAInitOptions.defaultHosts
        }
        let keyBits = try arguments.integer("--key-bits", in: 2048...16384) ?? 3072
        let passphrase = try Secrets.read(Secrets.pkiPassphrase, from: arguments)
        let certificate = try CAInitializer.rotateServerCertificate(
            root: root, hosts: hosts, keyBits: keyBits, passphrase: passphrase)
        ServerCommandSupport.log(root).info(
            "server-certificate.issued",
            [
                "serial": certificate.serialNumberHex,
                "names": certificate.subjectAlternativeNames.joined(separator: ","),
            ])
        Console.out(
            "new server certificate \(certificate.serialNumberHex) for \(certificate.subjectAlternativeNames.joined(separator: ", ")), "
                + "valid until \(Timestamp.format(certificate.notAfter))")
        Console.out("Send SIGHUP to the running server (kill -HUP PID) to use it; open connections are not dropped.")
        return .success
    }
}

/// `sfts ca sign`: signs a CSR made elsewhere, for people who make their own keys.
enum CASignCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        let root = try ServerCommandSupport.existingRoot(arguments)
        let path = arguments.positional(0)!
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw UsageError("cannot read the CSR \(path)")
        }
        let csr = try CertificateSigningRequest(pem: text)
        let names = csr.subjectCommonNames
        guard names.count == 1, let user = names.first else {
            throw ClientError(.rejected, "the CSR must name exactly one common name; it names \(names.count)")
        }
        if let problem = UserName.problem(with: user) {
            throw ClientError(.rejected, "the CSR's common name '\(user)' is not a valid user name: \(problem)")
        }
        let lifetime = try arguments.duration("--cert-lifetime", in: 5...(3650 * 86400)) ?? 90 * 86400
        let passphrase = try Secrets.read(Secrets.pkiPassphrase, from: arguments)
        let authority = try ServerPKI.loadAuthority(root: root, passphrase: passphrase)
        let certificate: Certificate
        do {
            certificate = try authority.signClientCertificate(csr, expectedName: user, validity: lifetime)
        } catch let error as CryptoError {
            throw ClientError(.rejected, error.description)
        }
        try FolderIssuedCertificateStore(folder: root.issuedFolder).record(certificate)

        let users = JSONUserStore(url: root.users)
        var note =
            "no user '\(user)' is enrolled, so this certificate cannot log in; enroll the user first, then "
            + "sign again to make it the current one"
        if try users.user(named: user) != nil {
            try users.modify(user) { $0.replaceCertificate(certificate) }
            note = "it is now the current certificate of '\(user)'"
        }
        ServerCommandSupport.log(root).info(
            "certificate.signed", ["user": user, "serial": certificate.serialNumberHex, "source": "ca sign"])
        if let out = arguments.value("--out") {
            try Data(certificate.pem.utf8).write(to: URL(fileURLWithPath: out))
            Console.out("wrote \(out)")
        } else {
            FileHandle.standardOutput.write(Data(certificate.pem.utf8))
        }
        Console.error(
            "signed certificate \(certificate.serialNumberHex) for '\(user)', valid until "
                + "\(Timestamp.format(certificate.notAfter)); \(note)")
        return .success
    }
}
